//go:build unix

package prefork

import (
	"errors"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// supported reports whether the master and its workers can run here.
func supported() error { return nil }

// sigWINCH is the signal a terminal sends on a window resize.
var sigWINCH os.Signal = syscall.SIGWINCH

// notifyMasterOnly relays to c the signals of Gunicorn's table that mean
// nothing to a worker.
func notifyMasterOnly(c chan<- os.Signal) {
	signal.Notify(c, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGTTIN, syscall.SIGTTOU)
}

// isTerminal reports whether fd is a terminal.
func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, ioctlReadTermios)
	return err == nil
}

// processGone reports whether no process has the given pid.
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// dupCloexec duplicates fd onto a descriptor above the standard streams,
// close-on-exec.
func dupCloexec(fd uintptr) (int, error) {
	return unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 3)
}

// interactive reports whether the master runs in a terminal, where a
// window resize sends SIGWINCH: Gunicorn's WINCH (stop every worker) is
// then ignored, as Gunicorn ignores it when not daemonized.
func interactive() bool {
	for _, f := range []*os.File{os.Stdin, os.Stdout, os.Stderr} {
		if isTerminal(int(f.Fd())) {
			return true
		}
	}
	return false
}
