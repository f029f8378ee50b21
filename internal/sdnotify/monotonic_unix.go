//go:build unix && !netbsd

package sdnotify

import "golang.org/x/sys/unix"

func monotonicUsec() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return int64(ts.Sec)*1e6 + int64(ts.Nsec)/1e3
}
