//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package prefork_test

import (
	"time"

	"golang.org/x/sys/unix"
)

const openExitName = "kqueue EVFILT_PROC"

// openExit returns a kqueue that reports when process pid exits.
func openExit(pid int) (int, error) {
	kq, err := unix.Kqueue()
	if err != nil {
		return -1, err
	}
	ev := []unix.Kevent_t{{}}
	unix.SetKevent(&ev[0], pid, unix.EVFILT_PROC, unix.EV_ADD|unix.EV_ONESHOT)
	ev[0].Fflags = unix.NOTE_EXIT
	if _, err := unix.Kevent(kq, ev, nil, nil); err != nil {
		unix.Close(kq)
		return -1, err
	}
	return kq, nil
}

// awaitExit waits up to ms milliseconds (forever if negative) for the
// process behind the kqueue fd to exit, and reports whether it has.
func awaitExit(fd, ms int) (bool, error) {
	var ts *unix.Timespec
	if ms >= 0 {
		t := unix.NsecToTimespec((time.Duration(ms) * time.Millisecond).Nanoseconds())
		ts = &t
	}
	n, err := unix.Kevent(fd, nil, make([]unix.Kevent_t, 1), ts)
	return n == 1, err
}
