//go:build unix

package prefork

import (
	"os"
	"syscall"
)

// dumpSignals make a hung worker write its goroutines' stacks and exit (see
// abort): SIGCONT in case it was stopped, then SIGABRT.
var dumpSignals = []os.Signal{syscall.SIGCONT, syscall.SIGABRT}
