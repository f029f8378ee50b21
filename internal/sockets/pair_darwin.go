package sockets

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// socketpair sets close-on-exec after the fact, as macOS has no
// SOCK_CLOEXEC; holding syscall.ForkLock keeps a concurrent fork from
// inheriting the pair in between, as the standard library does.
func socketpair() ([2]int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return fds, err
	}
	unix.CloseOnExec(fds[0])
	unix.CloseOnExec(fds[1])
	return fds, nil
}
