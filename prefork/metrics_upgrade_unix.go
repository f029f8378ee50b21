//go:build unix

package prefork

import (
	"os"

	"golang.org/x/sys/unix"
)

// pollable returns f, a pipe passed by tableflip (which leaves it in
// blocking mode), as a file whose Read ends when it is closed.
func pollable(f *os.File) *os.File {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return f
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return f
	}
	name := f.Name()
	f.Close()
	return os.NewFile(uintptr(fd), name)
}
