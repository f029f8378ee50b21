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

// sigNames are the names of the signals Windows delivers.
var sigNames = map[os.Signal]string{
	syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT",
	syscall.SIGKILL: "SIGKILL", syscall.SIGTERM: "SIGTERM",
}
