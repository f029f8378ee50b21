//go:build unix

package worker

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// pending reports whether bytes wait unread in the connection's socket. It
// peeks without blocking and without taking the connection's read lock,
// which the server's goroutine may hold, blocked in Read.
func (c *trackedConn) pending() bool {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var n int
	rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, _ = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	})
	return n > 0
}
