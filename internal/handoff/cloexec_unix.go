//go:build unix

package handoff

import "golang.org/x/sys/unix"

// MarkInherited marks the sockets s names close-on-exec, so that a process
// the program starts does not inherit them. Descriptors that are not
// sockets (a leaked marker names whatever the process has there) are left
// alone. The package's init calls it before main runs.
func MarkInherited(s Spec) {
	for _, fd := range append([]int{s.Ctl}, s.Fds...) {
		if _, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err == nil {
			unix.CloseOnExec(fd)
		}
	}
}
