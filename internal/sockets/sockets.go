// Package sockets parses gracefork's listen addresses and binds them.
//
// An address is "host:port" (TCP; host may be empty, a name, an IPv4 or a
// bracketed IPv6 literal; port 0 picks a free one), "unix:/path", or
// "fd://N": a listening socket the parent process passed as descriptor N.
package sockets

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Addr is a parsed listen address.
type Addr struct {
	Network string // "tcp", "unix", or "fd" for a passed descriptor
	Address string // host:port, the socket's path, or the descriptor's number
}

// String gives the address as Parse reads it.
func (a Addr) String() string {
	switch a.Network {
	case "unix":
		return "unix:" + a.Address
	case "fd":
		return "fd://" + a.Address
	}
	return a.Address
}

// Parse reads a listen address. The error says what is wrong with it but not
// where it came from; the caller names the field.
func Parse(s string) (Addr, error) {
	if s == "" {
		return Addr{}, errors.New("empty address")
	}
	if path, ok := strings.CutPrefix(s, "unix:"); ok {
		return parseUnix(path)
	}
	if n, ok := strings.CutPrefix(s, "fd://"); ok {
		return parseFD(n)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "address "+s+": ")
		if strings.Contains(s, "/") {
			msg += fmt.Sprintf(`; for a unix socket write "unix:%s"`, s)
		} else if _, err := strconv.Atoi(s); err == nil {
			msg += fmt.Sprintf(`; for port %s on every address write ":%s"`, s, s)
		} else {
			msg += `; write "host:port", such as ":8080" or "127.0.0.1:8080"`
		}
		return Addr{}, errors.New(msg)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return Addr{}, fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if strings.ContainsAny(host, " /\\") {
		return Addr{}, fmt.Errorf("host %q is not a host name or IP address", host)
	}
	return Addr{Network: "tcp", Address: net.JoinHostPort(host, port)}, nil
}

func parseUnix(path string) (Addr, error) {
	if path == "" {
		return Addr{}, errors.New("unix: address without a path")
	}
	if len(path) > maxUnixPath {
		return Addr{}, fmt.Errorf("unix socket path is %d bytes long, the limit is %d", len(path), maxUnixPath)
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return Addr{}, fmt.Errorf("directory %s: %w", dir, unwrapPath(err))
	}
	if !st.IsDir() {
		return Addr{}, fmt.Errorf("%s is not a directory", dir)
	}
	return Addr{Network: "unix", Address: path}, nil
}

// parseFD reads the N of "fd://N". Descriptors 0 to 2 are the standard
// streams, never a listening socket.
func parseFD(n string) (Addr, error) {
	fd, err := strconv.Atoi(n)
	if err != nil || fd < 3 || strconv.Itoa(fd) != n {
		return Addr{}, fmt.Errorf("fd://%s: want a descriptor number of 3 or more, such as fd://3", n)
	}
	return Addr{Network: "fd", Address: n}, nil
}

// FD returns the descriptor number of an "fd" address.
func (a Addr) FD() int {
	n, _ := strconv.Atoi(a.Address)
	return n
}

// OpenFD takes the listening socket the parent passed as a's descriptor:
// it checks that it is one, and returns a listener on a close-on-exec
// duplicate, the original closed, so that no process this one starts
// inherits the socket by accident.
func OpenFD(a Addr) (net.Listener, error) {
	fd := a.FD()
	if err := CheckListener(fd); err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), a.String())
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("fd %d: %w", fd, err)
	}
	return ln, nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ErrInUse is wrapped by [RemoveStale] when something answers on the socket.
var ErrInUse = errors.New("address already in use")

// RemoveStale removes a unix socket file that nothing listens on any more,
// left behind by a process that died. A socket that answers is in use; a path
// that is not a socket is never touched.
func RemoveStale(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	c, err := net.Dial("unix", path)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s: %w (a process answers on it)", path, ErrInUse)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s: cannot tell whether it is stale: %w", path, err)
	}
	return os.Remove(path)
}

// ListenConfig returns the configuration every gracefork socket is bound
// with: SO_REUSEADDR, so a restarted master binds while old connections sit
// in TIME_WAIT. SO_REUSEPORT is deliberately not set: the master's socket is
// shared by inheritance, and without SO_REUSEPORT a second instance started
// by mistake fails with "address already in use" instead of silently taking
// half the traffic.
func ListenConfig() *net.ListenConfig {
	return &net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
		if !strings.HasPrefix(network, "tcp") {
			return nil
		}
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = setReuseAddr(fd)
		})
		return errors.Join(err, serr)
	}}
}

// Perm is what a unix socket's file gets when it is bound: its mode
// (0 leaves what the umask gives) and its owner and group (-1 leaves
// them unchanged).
type Perm struct {
	Mode     fs.FileMode
	UID, GID int
}

// NoPerm changes nothing.
var NoPerm = Perm{UID: -1, GID: -1}

// Listen binds a with ListenConfig; a unix socket's file then gets p.
func Listen(a Addr, p Perm) (net.Listener, error) {
	if a.Network != "unix" || p == NoPerm {
		return ListenConfig().Listen(context.Background(), a.Network, a.Address)
	}
	ln, err := listenPerm(a.Address, p)
	if err != nil {
		return nil, err
	}
	if p.UID >= 0 || p.GID >= 0 {
		if err := os.Lchown(a.Address, p.UID, p.GID); err != nil {
			ln.Close() // unlinks the path
			return nil, fmt.Errorf("socket owner: %w", unwrapPath(err))
		}
	}
	return ln, nil
}

// File returns a duplicate of a listener's descriptor for a child to inherit.
func File(ln net.Listener) (*os.File, error) {
	f, ok := ln.(interface{ File() (*os.File, error) })
	if !ok {
		return nil, fmt.Errorf("listener %T has no file descriptor", ln)
	}
	return f.File()
}
