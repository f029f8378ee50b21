package sockets

import "golang.org/x/sys/unix"

// maxUnixPath is the longest unix socket path: sun_path holds 108 bytes
// with the terminating NUL.
const maxUnixPath = 107

// socketDomain returns the address family of the socket fd.
func socketDomain(fd int) (int, error) {
	return unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
}
