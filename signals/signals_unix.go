//go:build unix

package signals

import (
	"os"
	"syscall"
)

func defaultMap() Map {
	return Map{
		syscall.SIGHUP:   Reload,
		syscall.SIGTERM:  Shutdown,
		syscall.SIGINT:   Quit,
		syscall.SIGQUIT:  Quit,
		syscall.SIGUSR1:  ReopenLogs,
		syscall.SIGUSR2:  Upgrade,
		syscall.SIGWINCH: StopWorkers,
		syscall.SIGTTIN:  AddWorker,
		syscall.SIGTTOU:  RemoveWorker,
	}
}

// uncatchable reports whether no process can catch sig.
func uncatchable(sig os.Signal) bool { return sig == syscall.SIGKILL || sig == syscall.SIGSTOP }
