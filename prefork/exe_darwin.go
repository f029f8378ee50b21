package prefork

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// runningExecutable is empty: macOS has no name for the file a process
// runs once it is deleted, so a worker whose binary is gone cannot start.
const runningExecutable = ""

// executableOf returns the path process pid was started from, read from
// the kern.procargs2 sysctl (its argument count, then the path given to
// exec). [os.Executable] gives the same path for this process, made
// absolute; a relative one of another process cannot be, so it is an
// error, and so is another user's process.
func executableOf(pid int) (string, error) {
	b, err := unix.SysctlRaw("kern.procargs2", pid)
	if err != nil {
		return "", err
	}
	if len(b) < 4 {
		return "", errors.New("kern.procargs2: short answer")
	}
	b = b[4:]
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	if p := string(b); filepath.IsAbs(p) {
		return p, nil
	}
	return "", fmt.Errorf("pid %d was started from the relative path %q", pid, b)
}
