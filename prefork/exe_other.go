//go:build !linux && !darwin && !freebsd

package prefork

import (
	"errors"
	"runtime"
)

// runningExecutable is empty where the system offers no name for the
// running executable: a worker whose binary is gone cannot start.
const runningExecutable = ""

// executableOf fails: this system offers no way, through x/sys, to learn
// which executable another process runs, so a PID file naming a live
// process counts as stale.
func executableOf(int) (string, error) {
	return "", errors.New("cannot tell another process's executable on " + runtime.GOOS)
}
