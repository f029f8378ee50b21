package prefork_test

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY returns a pseudo-terminal's controller and a terminal on it.
// FreeBSD's posix_openpt(2) grants and unlocks at once.
func openPTY(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	fd, _, errno := unix.Syscall(unix.SYS_POSIX_OPENPT, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC), 0, 0)
	if errno != 0 {
		t.Skipf("no pseudo-terminals here: %v", errno)
	}
	ptmx := os.NewFile(fd, "ptmx")
	t.Cleanup(func() { ptmx.Close() })
	n, err := unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pts.Close() })
	return ptmx, pts
}
