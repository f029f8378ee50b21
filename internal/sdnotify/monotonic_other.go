//go:build !unix || netbsd

package sdnotify

// monotonicUsec is zero where there is no systemd, hence no reader of
// MONOTONIC_USEC (and on NetBSD, where x/sys has no CLOCK_MONOTONIC).
func monotonicUsec() int64 { return 0 }
