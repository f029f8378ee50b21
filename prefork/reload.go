package prefork

import (
	"os"

	"github.com/gracefork/gracefork/internal/sdnotify"
)

// reloadState is a rolling reload in progress: the slots still to replace,
// and whether another reload was asked for meanwhile.
type reloadState struct {
	on    bool
	queue []*slot
	again bool
	// restore: the reload brings back the workers StopWorkers stopped; it
	// ends once every slot has a ready worker or is degraded.
	restore bool
}

// startReload replaces every worker with one started from the binary on
// disk, at most MaxSurge at a time, each new worker ready before its old one
// drains. A reload asked for during one coalesces into a single further
// pass, so that a burst of HUPs cannot pile up workers.
func (m *Master) startReload() {
	if len(m.slots) == 0 {
		// After StopWorkers, a reload brings the workers back. systemd
		// (Type=notify-reload) sees it start and end like any other.
		m.reload = reloadState{on: true, restore: true}
		m.sdNotify(sdnotify.Reloading())
		m.emit(Event{Kind: EventReloadStarted, Workers: m.cfg.Workers})
		m.scaleTo(m.cfg.Workers)
		return
	}
	if m.reload.on {
		m.reload.again = true
		m.emit(Event{Kind: EventReloadQueued})
		return
	}
	m.reload = reloadState{on: true, queue: append([]*slot(nil), m.slots...)}
	m.sdNotify(sdnotify.Reloading())
	m.emit(Event{Kind: EventReloadStarted, Workers: len(m.slots)})
	m.advanceReload()
}

// advanceReload starts replacements while the surge allows, and ends the
// reload once every slot has been replaced.
func (m *Master) advanceReload() {
	if !m.reload.on {
		return
	}
	for m.surge() < m.cfg.MaxSurge && len(m.reload.queue) > 0 {
		s := m.reload.queue[0]
		m.reload.queue = m.reload.queue[1:]
		// An empty slot is restarting already, from the binary on disk.
		if m.active(s) && s.w != nil && s.next == nil {
			m.spawn(s, true)
			if !m.reload.on {
				return // the spawn failed and ended the reload
			}
		}
	}
	if m.reload.restore {
		if !m.restored() {
			return
		}
	} else if len(m.reload.queue) > 0 || m.surge() > 0 {
		return
	}
	again := m.reload.again
	m.reload = reloadState{}
	m.sdNotify(sdnotify.Ready())
	m.emit(Event{Kind: EventReloadDone, Workers: len(m.slots)})
	if again {
		m.startReload()
	}
}

// restored reports whether every slot has a ready worker, or is degraded.
func (m *Master) restored() bool {
	for _, s := range m.slots {
		if !s.serves() && !s.degraded {
			return false
		}
	}
	return true
}

// surge counts the replacements booting now: the workers beyond N.
func (m *Master) surge() int {
	n := 0
	for _, s := range m.slots {
		if s.next != nil {
			n++
		}
	}
	return n
}

// reloadFailed ends a reload whose new worker did not boot: the old
// workers keep serving, and the new code's failure is logged with its
// stderr. Only a slot left empty meanwhile (its old worker crashed) counts
// the failure towards giving up.
func (m *Master) reloadFailed(s *slot, exit Exit, spawnErr error) {
	err := &BootError{Slot: s.id, Attempts: 1, Exit: exit, Spawn: spawnErr}
	again := m.reload.again
	m.reload = reloadState{}
	m.sdNotify(sdnotify.Ready()) // still serving, with the old workers
	m.emit(Event{Kind: EventReloadFailed, Slot: s.id, Exit: exit, Err: err})
	if m.active(s) && s.w == nil && s.next == nil {
		m.bootFailed(s, err)
	}
	if again && !m.stopping {
		// A reload asked for after the failing one may bring fixed code.
		m.startReload()
	}
}

func (m *Master) addWorker() {
	m.scaleTo(len(m.slots) + 1)
}

// removeWorker drains the highest slot's worker, never the last one.
func (m *Master) removeWorker() {
	if len(m.slots) <= 1 {
		m.cfg.Logger.Warn("remove-worker refused: one worker is the minimum; use stop-workers to stop them all")
		return
	}
	m.scaleTo(len(m.slots) - 1)
}

// stopWorkers drains every worker and keeps the master and its sockets, so
// new connections wait in the kernel's queue until workers come back
// (Reload or AddWorker).
func (m *Master) stopWorkers() {
	if m.reload.on {
		m.sdNotify(sdnotify.Ready()) // the reload systemd saw start ends here
	}
	m.reload = reloadState{} // a queued reload must not bring them back
	m.scaleTo(0)
}

func (m *Master) scaleTo(n int) {
	for len(m.slots) > n {
		s := m.slots[len(m.slots)-1]
		m.slots = m.slots[:len(m.slots)-1]
		m.retire(s)
	}
	for len(m.slots) < n && !m.stopping {
		s := &slot{id: len(m.slots)}
		m.slots = append(m.slots, s)
		m.spawn(s, false)
	}
	m.emit(Event{Kind: EventScaled, Workers: n})
	m.advanceReload()
}

// retire drains the workers of a slot that is no longer active.
func (m *Master) retire(s *slot) {
	cancelRestart(s)
	if s.degraded {
		s.degraded = false
		m.sendStatus() // no longer missing: it is gone
	}
	for _, w := range []*worker{s.next, s.w} {
		if w != nil && !w.stopping {
			m.stopWorker(w, true)
		}
	}
}

// reopenLogs reopens Options.LogFile, which the master and, through their
// output, the workers write to.
func (m *Master) reopenLogs() {
	if m.logFile == nil {
		m.cfg.Logger.Info("reopen-logs: no Options.LogFile to reopen")
		return
	}
	if err := m.logFile.Reopen(); err != nil {
		m.cfg.Logger.Error("reopen-logs failed; still writing to the old file", "file", m.cfg.LogFile, "err", err)
		return
	}
	m.cfg.Logger.Info("log file reopened", "file", m.cfg.LogFile)
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
