//go:build unix

package sockets

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

func setReuseAddr(fd uintptr) error {
	return unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
}

// CheckListener reports whether fd is a listening stream socket, as an
// inherited listener must be — or a slot's own socket that the master
// paused (see Pause), which listens again later.
func CheckListener(fd int) error {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return fmt.Errorf("fd %d is not a socket: %w", fd, err)
	}
	acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err == nil && typ == unix.SOCK_STREAM && acc == 0 && pausedSlot(fd) {
		return nil
	}
	if err != nil || typ != unix.SOCK_STREAM || acc != 1 {
		return fmt.Errorf("fd %d is not a listening stream socket", fd)
	}
	return nil
}

// CheckControl reports whether fd is a connected unix stream socket, as the
// inherited control channel must be.
func CheckControl(fd int) error {
	dom, err := socketDomain(fd)
	if err != nil {
		return fmt.Errorf("fd %d is not a socket: %w", fd, err)
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil || dom != unix.AF_UNIX || typ != unix.SOCK_STREAM {
		return fmt.Errorf("fd %d is not a unix stream socket", fd)
	}
	return nil
}

// Pair returns a connected pair of unix stream sockets: the master keeps
// the first, the worker inherits the second. Both are close-on-exec; exec
// clears the flag on the copy it hands down.
func Pair() (*os.File, *os.File, error) {
	fds, err := socketpair()
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "gracefork-control"), os.NewFile(uintptr(fds[1]), "gracefork-control-worker"), nil
}

// domainByName returns the address family of the socket fd, read from the
// socket's own address: the way where SO_DOMAIN is missing (macOS). It
// builds everywhere so that Linux tests it too.
func domainByName(fd int) (int, error) {
	sa, err := unix.Getsockname(fd)
	switch sa.(type) {
	case *unix.SockaddrUnix:
		return unix.AF_UNIX, nil
	case *unix.SockaddrInet4:
		return unix.AF_INET, nil
	case *unix.SockaddrInet6:
		return unix.AF_INET6, nil
	}
	if errors.Is(err, unix.EAFNOSUPPORT) {
		return unix.AF_UNSPEC, nil // a socket, of a family x/sys does not decode
	}
	return unix.AF_UNSPEC, err
}

// umaskMu serializes the narrowed umask of listenPerm.
var umaskMu sync.Mutex

// listenPerm binds a unix socket whose file is created with p.Mode: the
// umask is narrowed for the bind, so that no client can connect in a
// moment when the mode is wider than asked. The umask is the process's:
// a file another goroutine creates meanwhile gets it too.
func listenPerm(path string, p Perm) (net.Listener, error) {
	if p.Mode == 0 {
		return ListenConfig().Listen(context.Background(), "unix", path)
	}
	umaskMu.Lock()
	old := unix.Umask(int(0o777 &^ p.Mode.Perm()))
	ln, err := ListenConfig().Listen(context.Background(), "unix", path)
	unix.Umask(old)
	umaskMu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, p.Mode.Perm()); err != nil { // the umask only takes away
		ln.Close()
		return nil, fmt.Errorf("socket mode: %w", unwrapPath(err))
	}
	return ln, nil
}
