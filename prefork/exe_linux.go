package prefork

import (
	"fmt"
	"os"
	"strings"
)

// runningExecutable names the file this process runs, even after it was
// deleted or replaced on disk.
const runningExecutable = "/proc/self/exe"

// executableOf returns the path of the executable process pid runs, as
// [os.Executable] gives it for this process; the file may since have been
// replaced.
func executableOf(pid int) (string, error) {
	theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return strings.TrimSuffix(theirs, " (deleted)"), err
}
