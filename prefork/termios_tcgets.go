//go:build aix || linux || solaris || zos

package prefork

import "golang.org/x/sys/unix"

const ioctlReadTermios = unix.TCGETS
