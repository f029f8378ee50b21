package prefork_test

import "golang.org/x/sys/unix"

const openExitName = "pidfd_open"

// openExit returns a descriptor that becomes readable when process pid
// exits.
func openExit(pid int) (int, error) { return unix.PidfdOpen(pid, 0) }

// awaitExit waits up to ms milliseconds (forever if negative) for the
// process behind fd to exit, and reports whether it has.
func awaitExit(fd, ms int) (bool, error) {
	n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
	return n == 1, err
}
