//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package prefork

import "golang.org/x/sys/unix"

const ioctlReadTermios = unix.TIOCGETA
