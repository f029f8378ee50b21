package prefork

import (
	"bytes"

	"golang.org/x/sys/unix"
)

// runningExecutable is empty: FreeBSD has no /proc/self/exe unless procfs
// is mounted, so a worker whose binary is gone cannot start.
const runningExecutable = ""

// executableOf returns the path of the executable process pid runs, from
// the kern.proc.pathname sysctl, the source of [os.Executable] on FreeBSD.
// It fails when the file has since been deleted.
func executableOf(pid int) (string, error) {
	b, err := unix.SysctlRaw("kern.proc.pathname", pid)
	if err != nil {
		return "", err
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b), nil
}
