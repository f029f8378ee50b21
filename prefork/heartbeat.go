package prefork

import (
	"syscall"
	"time"
)

// heartbeatInterval is how often a worker reports.
const heartbeatInterval = time.Second

// watchHeartbeat (re)arms the end of a serving worker that falls silent:
// stopped (SIGSTOP), wedged, or swapped out for longer than
// HeartbeatTimeout. The connections it accepted would hang for ever; its
// slot is restarted as after a crash, once it has said why it hung (see
// abort).
func (m *master) watchHeartbeat(w *worker) {
	stopTimer(w.beatTimer)
	w.beatTimer = m.after(m.cfg.HeartbeatTimeout, func() {
		if _, live := m.workers[w]; !live || w.stopping || w.killed {
			return
		}
		m.emit(Event{Kind: EventHung, Slot: w.slot, Generation: w.gen, Pid: w.proc.Pid(), Delay: m.cfg.HeartbeatTimeout})
		m.abort(w)
	})
}

// abort ends a hung worker with a stack dump: SIGCONT, in case it was
// stopped, then SIGABRT, which the Go runtime answers by writing every
// goroutine's stack to stderr and exiting with status 2. Its stderr comes
// through the master, which keeps the dump whole in Exit.Stderr (see
// tailWriter): the "exited" record of this unexpected exit is the one
// record, with slot and pid, that says where it hung.
//
// SIGABRT, not SIGQUIT: a worker catches SIGQUIT, Gunicorn's quick-exit
// signal, so the runtime would not see it. Nothing in gracefork catches
// SIGABRT; a program that does (or whose handler never yields the
// process: wedged in the kernel, a stuck write of the dump itself) is
// SIGKILLed killGrace later, as a worker past a drain's deadline is — the
// runtime writes its dump in milliseconds.
//
// Where signals cannot ask for a dump (Windows), the worker is killed at
// once. Otherwise, from now on the worker is dying: it counts as killed, so a heartbeat
// that comes back after SIGCONT does not revive it, and a stop or a reload
// that comes meanwhile does not put its kill off (see stopWorker).
func (m *master) abort(w *worker) {
	if len(dumpSignals) == 0 {
		m.mx.own.leaving(w.gen, causeHung)
		m.kill(w)
		return
	}
	w.killed = true
	m.mx.own.leaving(w.gen, causeHung)
	stopTimer(w.beatTimer)
	for _, sig := range dumpSignals {
		w.proc.Signal(sig)
	}
	stopTimer(w.killTimer)
	w.killTimer = m.after(killGrace, func() {
		if _, live := m.workers[w]; live {
			m.emit(Event{Kind: EventKilled, Slot: w.slot, Generation: w.gen, Pid: w.proc.Pid(), Delay: killGrace})
			w.proc.Signal(syscall.SIGKILL)
		}
	})
}
