//go:build unix

package prefork

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// successorEnv marks an old master that, after an upgrade in a terminal,
// re-executed itself to wait for its successor.
//
// Why: a shell waits for the pid it started. Were the old master to exit,
// the shell would take the terminal back and the new master — its child,
// in the same process group — would be left in the background, out of
// Ctrl-C's reach (tableflip#59). So the old master keeps its pid: it execs
// itself into a waiter that forwards signals to the new master and exits
// with its status. The exec also closes tableflip's close-on-exec pipe,
// which is how the new master learns its parent has gone, so the new
// master can upgrade in turn.
const successorEnv = "GRACEFORK_SUCCESSOR_7QZ3K9"

// runTerminalWaiter makes this process the waiter, and exits with the new
// master's status, when the old master re-executed itself as one: New
// calls it first. A program's work before New is therefore done again in
// the waiter; nothing happens at import.
func runTerminalWaiter() {
	if v := os.Getenv(successorEnv); v != "" {
		os.Exit(waitSuccessor(v))
	}
}

// forwarded are the signals a waiter passes on to the new master.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1,
	syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGTTIN, syscall.SIGTTOU}

// awaitSuccessorInTerminal turns this old master into the waiter, when it
// runs in a terminal; it returns only if it cannot.
func (m *master) awaitSuccessorInTerminal() {
	kids := childPids(os.Getpid())
	if len(kids) != 1 {
		m.emit(Event{Kind: EventSuccessorUnknown, Detail: fmt.Sprint(kids)})
		return
	}
	m.emit(Event{Kind: EventWaitingForSuccessor, Pid: kids[0]})
	env := append(os.Environ(), successorEnv+"="+strconv.Itoa(kids[0]))
	// A Ctrl-C during the exec must not kill the waiter-to-be with the
	// default action: ignored signals stay ignored across exec until the
	// waiter catches them. The new master, in the same process group, gets
	// the Ctrl-C itself.
	signal.Ignore(forwarded...)
	exe, err := runningExecutable, error(nil)
	if exe == "" {
		exe, err = os.Executable() // after a deploy, the new binary: it waits as well
	}
	if err == nil {
		err = syscall.Exec(exe, os.Args, env)
	}
	signal.Reset(forwarded...)
	m.emit(Event{Kind: EventWaiterFailed, Err: err})
}

// waitSuccessor is the waiter: it forwards every catchable signal to the
// new master — a Ctrl-C reaches both, and a second Quit changes nothing —
// and exits as the new master does.
func waitSuccessor(v string) int {
	os.Unsetenv(successorEnv)
	pid, err := strconv.Atoi(v)
	if err != nil || pid <= 0 {
		fmt.Fprintf(os.Stderr, "gracefork: %s=%q is not a pid; this variable is set by gracefork only\n", successorEnv, v)
		return 2
	}
	sigc := make(chan os.Signal, 16)
	signal.Notify(sigc, forwarded...)
	go func() {
		for s := range sigc {
			syscall.Kill(pid, s.(syscall.Signal))
		}
	}()
	var ws unix.WaitStatus
	for {
		_, err = unix.Wait4(pid, &ws, 0, nil)
		if err != unix.EINTR {
			break
		}
	}
	switch {
	case err != nil:
		fmt.Fprintf(os.Stderr, "gracefork: waiting for the new master %d: %v\n", pid, err)
		return 1
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
