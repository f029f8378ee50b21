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

// sigNames are the names kill(1) and systemd write.
var sigNames = map[os.Signal]string{
	syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT",
	syscall.SIGKILL: "SIGKILL", syscall.SIGTERM: "SIGTERM", syscall.SIGSTOP: "SIGSTOP",
	syscall.SIGUSR1: "SIGUSR1", syscall.SIGUSR2: "SIGUSR2", syscall.SIGWINCH: "SIGWINCH",
	syscall.SIGTTIN: "SIGTTIN", syscall.SIGTTOU: "SIGTTOU", syscall.SIGALRM: "SIGALRM",
	syscall.SIGCHLD: "SIGCHLD", syscall.SIGCONT: "SIGCONT", syscall.SIGPIPE: "SIGPIPE",
	syscall.SIGTSTP: "SIGTSTP",
}
