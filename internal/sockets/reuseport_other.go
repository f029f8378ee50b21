//go:build !linux

package sockets

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"syscall"
)

// ReusePortSupported fails outside Linux: SO_REUSEPORT spreads connections
// over a group's sockets there only (FreeBSD needs SO_REUSEPORT_LB; macOS
// hands every connection to one socket of the group).
func ReusePortSupported() error {
	return fmt.Errorf("per-slot sockets balance connections on linux only, not %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

// ListenReusePort fails outside Linux.
func ListenReusePort(string) (net.Listener, error) { return nil, ReusePortSupported() }

// Queued fails outside Linux.
func Queued(syscall.Conn) (int, error) { return 0, ReusePortSupported() }

// Pause fails outside Linux.
func Pause(syscall.Conn) error { return ReusePortSupported() }

// Resume fails outside Linux.
func Resume(syscall.Conn) error { return ReusePortSupported() }

// Listening fails outside Linux.
func Listening(syscall.Conn) (bool, error) { return false, ReusePortSupported() }

// ReusesPort is false outside Linux: no gracefork socket is per slot there.
func ReusesPort(syscall.Conn) bool { return false }

// pausedSlot is false outside Linux: no socket is paused there.
func pausedSlot(int) bool { return false }

// MigrateReq fails outside Linux.
func MigrateReq() (bool, error) { return false, ReusePortSupported() }
