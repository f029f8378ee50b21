//go:build !unix

package signals

import (
	"os"
	"syscall"
)

// defaultMap holds what Windows delivers: Ctrl-C and Ctrl-Break arrive as
// SIGINT, a console's close, logoff or shutdown as SIGTERM.
func defaultMap() Map {
	return Map{
		syscall.SIGTERM: Shutdown,
		syscall.SIGINT:  Quit,
	}
}

// uncatchable reports whether no process can catch sig.
func uncatchable(sig os.Signal) bool { return sig == syscall.SIGKILL }
