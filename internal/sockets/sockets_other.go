//go:build !unix

package sockets

import (
	"errors"
	"fmt"
	"net"
	"os"
)

// maxUnixPath is the longest unix socket path: Windows' sun_path holds 108
// bytes with the terminating NUL.
const maxUnixPath = 107

// setReuseAddr does nothing: Windows binds a port whose old connections sit
// in TIME_WAIT without it, and its SO_REUSEADDR would let a second process
// take over a port in use.
func setReuseAddr(uintptr) error { return nil }

// CheckListener fails: inheriting listeners by descriptor number is a unix
// facility.
func CheckListener(fd int) error {
	return fmt.Errorf("fd %d: inherited listeners: %w", fd, errors.ErrUnsupported)
}

// CheckControl fails: inheriting the control channel is a unix facility.
func CheckControl(fd int) error {
	return fmt.Errorf("fd %d: inherited control channel: %w", fd, errors.ErrUnsupported)
}

// Pair fails: the control channel is a unix socket pair.
func Pair() (*os.File, *os.File, error) {
	return nil, nil, fmt.Errorf("socketpair: %w", errors.ErrUnsupported)
}

// listenPerm fails: file modes and owners of unix sockets are a unix
// facility.
func listenPerm(path string, _ Perm) (net.Listener, error) {
	return nil, fmt.Errorf("unix:%s: socket mode and owner: %w", path, errors.ErrUnsupported)
}
