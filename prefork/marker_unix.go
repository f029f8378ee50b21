//go:build unix

package prefork

import "golang.org/x/sys/unix"

// keepInherited marks the sockets the marker names close-on-exec, so that
// a process the program starts before Serve does not inherit them: a
// listener held by a stray child keeps its port open after every worker
// and the master are gone. Descriptors that are not sockets (a leaked
// marker) are left alone.
func keepInherited(s spec) {
	for _, fd := range append([]int{s.ctl}, s.fds...) {
		if _, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err == nil {
			unix.CloseOnExec(fd)
		}
	}
}
