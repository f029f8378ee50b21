// Package signals says which operating-system signal asks a gracefork master
// for which action. [Default] is Gunicorn's table; a program remaps it
// through prefork.Options.Signals, for instance to make SIGHUP upgrade the
// binary for systemd's ExecReload.
package signals

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
)

// Action is something a master can be asked to do.
type Action int

// The actions. The zero Action is no action.
const (
	// Reload replaces every worker, one by one, with a new one started from
	// the binary on disk; each new worker is ready before its old one drains.
	Reload Action = iota + 1
	// Upgrade starts a new master from the binary on disk that inherits the
	// listening sockets; this master drains and exits once it is ready.
	Upgrade
	// Shutdown drains every worker within the graceful timeout, then exits.
	Shutdown
	// Quit stops every worker at once and exits.
	Quit
	// ReopenLogs reopens the log file in the master and every worker.
	ReopenLogs
	// StopWorkers drains every worker but keeps the master and its sockets,
	// so new connections wait in the kernel's queue.
	StopWorkers
	// AddWorker runs one worker more.
	AddWorker
	// RemoveWorker drains one worker, never the last.
	RemoveWorker
)

var names = [...]string{
	Reload:       "reload",
	Upgrade:      "upgrade",
	Shutdown:     "shutdown",
	Quit:         "quit",
	ReopenLogs:   "reopen-logs",
	StopWorkers:  "stop-workers",
	AddWorker:    "add-worker",
	RemoveWorker: "remove-worker",
}

// String returns the action's name as [ParseAction] reads it.
func (a Action) String() string {
	if a.valid() {
		return names[a]
	}
	return fmt.Sprintf("action(%d)", int(a))
}

func (a Action) valid() bool { return a >= Reload && a <= RemoveWorker }

// ParseAction reads an action by the name [Action.String] gives it.
func ParseAction(s string) (Action, error) {
	for a := Reload; a <= RemoveWorker; a++ {
		if names[a] == s {
			return a, nil
		}
	}
	return 0, fmt.Errorf("signals: unknown action %q (want one of %s)", s, strings.Join(names[1:], ", "))
}

// Map says which signal asks for which action.
type Map map[os.Signal]Action

// Default returns Gunicorn's signal table: HUP reload, TERM graceful
// shutdown, INT and QUIT quick shutdown, USR1 reopen logs, USR2 upgrade,
// WINCH stop workers, TTIN and TTOU one worker more and fewer. On Windows,
// which has none of the others and delivers only Ctrl-C and Ctrl-Break (as
// INT) and a console's close, logoff or shutdown (as TERM), it is INT
// quick shutdown and TERM graceful shutdown.
func Default() Map { return defaultMap() }

// ErrNoShutdown is returned by [Map.Validate] for a map that gives no
// signal for Shutdown or Quit: a process nobody can stop with a signal.
var ErrNoShutdown = errors.New("signals: no signal maps to shutdown or quit")

// Validate reports whether m can be used: every action is known, SIGKILL and
// SIGSTOP (which no process can catch) are absent, and some signal shuts the
// master down.
func (m Map) Validate() error {
	stoppable := false
	for _, sig := range m.Signals() {
		a := m[sig]
		if uncatchable(sig) {
			return fmt.Errorf("signals: %s cannot be caught, so it cannot mean %v", name(sig), a)
		}
		if !a.valid() {
			return fmt.Errorf("signals: %s maps to unknown %v", name(sig), a)
		}
		stoppable = stoppable || a == Shutdown || a == Quit
	}
	if !stoppable {
		return ErrNoShutdown
	}
	return nil
}

// Signals returns the map's signals in a stable order, as signal.Notify takes them.
func (m Map) Signals() []os.Signal {
	sigs := make([]os.Signal, 0, len(m))
	for s := range m {
		sigs = append(sigs, s)
	}
	slices.SortFunc(sigs, func(a, b os.Signal) int { return strings.Compare(a.String(), b.String()) })
	return sigs
}

// String lists the map as a person writes it, in the order of Signals:
// "{SIGHUP: reload, SIGTERM: shutdown}".
func (m Map) String() string {
	parts := make([]string, 0, len(m))
	for _, sig := range m.Signals() {
		parts = append(parts, name(sig)+": "+m[sig].String())
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// name is a signal's name as kill(1) and systemd write it ("SIGHUP"),
// or its description for a signal without a common name.
func name(sig os.Signal) string {
	if n, ok := sigNames[sig]; ok {
		return n
	}
	if s, ok := sig.(syscall.Signal); ok && !strings.HasPrefix(s.String(), "signal ") {
		return fmt.Sprintf("signal %d (%v)", int(s), s)
	}
	return sig.String()
}
