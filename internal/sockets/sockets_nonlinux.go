//go:build unix && !linux

package sockets

// maxUnixPath is the longest unix socket path: on the BSDs and macOS
// sun_path holds 104 bytes with the terminating NUL.
const maxUnixPath = 103

// socketDomain returns the address family of the socket fd. macOS has no
// SO_DOMAIN, so the family is read from the socket's own address.
func socketDomain(fd int) (int, error) { return domainByName(fd) }
