package sockets

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ReusePortSupported is nil where per-slot sockets work: Linux, whose
// SO_REUSEPORT spreads new connections over every listening socket of a
// group bound to one address.
func ReusePortSupported() error { return nil }

// ListenReusePort binds a TCP address ("host:port") with SO_REUSEADDR and
// SO_REUSEPORT, so that several sockets of this user can listen on it,
// each with its own accept queue; Linux hands each new connection to one
// of them, by a hash of the client's address and port.
func ListenReusePort(address string) (net.Listener, error) {
	lc := &net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = errors.Join(setReuseAddr(fd), unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1))
		})
		return errors.Join(err, serr)
	}}
	return lc.Listen(context.Background(), "tcp", address)
}

// control runs f on c's descriptor.
func control(c syscall.Conn, f func(fd int) error) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// Queued is how many connections wait in a listening socket's accept
// queue (TCP_INFO's tcpi_unacked, which a listener reports so).
func Queued(c syscall.Conn) (int, error) {
	var n int
	err := control(c, func(fd int) error {
		info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		if err == nil {
			n = int(info.Unacked)
		}
		return err
	})
	return n, err
}

// Pause makes a listening socket stop listening, in every process that
// holds it, at once (shutdown with SHUT_RD): it leaves its SO_REUSEPORT
// group, so new connections go to the others, and the connections in its
// accept queue are reset — or, with net.ipv4.tcp_migrate_req=1, moved to
// another socket of the group. The socket stays bound: Resume makes it
// listen again — on the same port only if it was bound to a port named:
// one bound to port 0 releases it and gets a new one. An accept on a
// paused socket fails with EINVAL.
func Pause(c syscall.Conn) error {
	return control(c, func(fd int) error { return unix.Shutdown(fd, unix.SHUT_RD) })
}

// Resume makes a paused socket listen again; on a listening one it
// changes nothing.
func Resume(c syscall.Conn) error {
	return control(c, func(fd int) error { return unix.Listen(fd, maxBacklog) })
}

// maxBacklog asks for the largest accept queue: the kernel caps it at
// net.core.somaxconn, as Go's own listeners ask.
const maxBacklog = 1<<16 - 1

// Listening reports whether a socket listens (SO_ACCEPTCONN).
func Listening(c syscall.Conn) (bool, error) {
	var on bool
	err := control(c, func(fd int) error {
		v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		on = v == 1
		return err
	})
	return on, err
}

// ReusesPort reports whether a socket was bound with SO_REUSEPORT: in a
// gracefork worker, a socket of its slot's own.
func ReusesPort(c syscall.Conn) bool {
	var on bool
	control(c, func(fd int) error {
		v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT)
		on = err == nil && v == 1
		return err
	})
	return on
}

// pausedSlot reports whether fd, a stream socket that does not listen, is
// a paused slot socket: bound to a port with SO_REUSEPORT.
func pausedSlot(fd int) bool {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT)
	if err != nil || v != 1 {
		return false
	}
	switch sa, _ := unix.Getsockname(fd); sa := sa.(type) {
	case *unix.SockaddrInet4:
		return sa.Port != 0
	case *unix.SockaddrInet6:
		return sa.Port != 0
	}
	return false
}

// MigrateReq reads net.ipv4.tcp_migrate_req: when 1, the connections
// queued in a socket of an SO_REUSEPORT group that stops listening move
// to another socket of the group instead of being reset.
func MigrateReq() (bool, error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_migrate_req")
	if err != nil {
		return false, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return n == 1, err
}
