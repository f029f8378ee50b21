package prefork

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kinfoPidOffset is where struct kinfo_proc (sys/user.h) holds ki_pid,
// followed by ki_ppid: after two ints and eight pointers. x/sys does not
// decode kinfo_proc on FreeBSD.
const kinfoPidOffset = 8 + 8*unsafe.Sizeof(uintptr(0))

// childPids lists the processes whose parent is pid, from the
// kern.proc.proc sysctl: one kinfo_proc per process, each starting with
// its own size.
func childPids(pid int) []int {
	b, err := unix.SysctlRaw("kern.proc.proc")
	for try := 0; err == unix.ENOMEM && try < 3; try++ {
		b, err = unix.SysctlRaw("kern.proc.proc") // the process table grew meanwhile
	}
	if err != nil {
		return nil
	}
	var out []int
	for len(b) >= int(kinfoPidOffset)+8 {
		size := int(binary.NativeEndian.Uint32(b))
		if size < int(kinfoPidOffset)+8 || size > len(b) {
			break
		}
		p := int(int32(binary.NativeEndian.Uint32(b[kinfoPidOffset:])))
		ppid := int(int32(binary.NativeEndian.Uint32(b[kinfoPidOffset+4:])))
		if ppid == pid {
			out = append(out, p)
		}
		b = b[size:]
	}
	return out
}
