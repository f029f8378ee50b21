package prefork

import (
	"errors"

	"github.com/gracefork/gracefork/internal/sdnotify"
	"github.com/gracefork/gracefork/signals"
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
	// waiters wait for this pass's outcome (Server.Reload); next for the
	// further pass a reload asked during this one queued.
	waiters []chan error
	next    []chan error
}

// errReloadStopWorkers is a reload's outcome when stop-workers ended it.
var errReloadStopWorkers = errors.New("prefork: reload ended by stop-workers (Scale(0)): no worker serves")

// endReload ends the reload, its queued pass included, and gives every
// waiter err.
func (m *master) endReload(err error) {
	if m.reload.on {
		m.hookReloadEnd(err)
	}
	for _, c := range append(m.reload.waiters, m.reload.next...) {
		c <- err
	}
	m.reload = reloadState{}
}

// finishPass ends this pass of the reload with err for its waiters, and
// reports whether a further pass was asked for, with its waiters.
func (m *master) finishPass(err error) (again bool, next []chan error) {
	if m.reload.on {
		m.hookReloadEnd(err)
	}
	for _, c := range m.reload.waiters {
		c <- err
	}
	again, next = m.reload.again, m.reload.next
	m.reload = reloadState{}
	return again, next
}

// startReload replaces every worker with one started from the binary on
// disk, at most MaxSurge at a time, each new worker ready before its old one
// drains. A reload asked for during one coalesces into a single further
// pass, so that a burst of HUPs cannot pile up workers. reply, if not
// nil, gets the outcome of the pass that covers this call.
func (m *master) startReload(reply chan error) {
	m.startPass(waiting(reply))
}

func waiting(reply chan error) []chan error {
	if reply == nil {
		return nil
	}
	return []chan error{reply}
}

// startPass starts a pass for waiters, or queues them for the next pass
// when one is under way.
func (m *master) startPass(waiters []chan error) {
	if len(m.slots) == 0 && m.scaleRefused() {
		m.emit(Event{Kind: EventActionRefused, Action: signals.Reload, Detail: errScaleDuringUpgrade.Error()})
		for _, c := range waiters {
			c <- errScaleDuringUpgrade
		}
		return
	}
	if len(m.slots) == 0 {
		// After StopWorkers, a reload brings the workers back. systemd
		// (Type=notify-reload) sees it start and end like any other.
		waiters = append(append(waiters, m.reload.waiters...), m.reload.next...)
		m.reload = reloadState{on: true, restore: true, waiters: waiters}
		m.sdNotify(sdnotify.Reloading())
		m.emit(Event{Kind: EventReloadStarted, Workers: m.cfg.Workers})
		m.hookReloadStart()
		m.scaleTo(m.cfg.Workers)
		return
	}
	m.pauseRecycle()
	if m.reload.on {
		m.reload.again = true
		m.reload.next = append(m.reload.next, waiters...)
		m.emit(Event{Kind: EventReloadQueued})
		return
	}
	m.reload = reloadState{on: true, queue: append([]*slot(nil), m.slots...), waiters: waiters}
	m.sdNotify(sdnotify.Reloading())
	m.emit(Event{Kind: EventReloadStarted, Workers: len(m.slots)})
	m.hookReloadStart()
	m.advanceReload()
}

// advanceReload starts replacements while the surge allows, and ends the
// reload once every slot has been replaced.
func (m *master) advanceReload() {
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
	var err error // a pass that brings workers back reports a slot it could not fill
	if m.reload.restore {
		if !m.restored() {
			return
		}
		err = m.degradedErr()
	} else if len(m.reload.queue) > 0 || m.surge() > 0 {
		return
	}
	// The pass is told and logged before its waiters are answered: a
	// Reload that has returned finds READY=1 sent and "reload done" seen.
	m.sdNotify(sdnotify.Ready())
	m.emit(Event{Kind: EventReloadDone, Workers: len(m.slots)})
	again, next := m.finishPass(err)
	if again {
		m.startPass(next)
	}
	m.advanceRecycle() // the recycles that waited for the reload
}

// restored reports whether every slot has a ready worker, or is degraded.
func (m *master) restored() bool {
	for _, s := range m.slots {
		if !s.serves() && !s.degraded {
			return false
		}
	}
	return true
}

// surge counts the replacements booting now: the workers beyond N.
func (m *master) surge() int {
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
func (m *master) reloadFailed(s *slot, exit Exit, spawnErr error) {
	err := &BootError{Slot: s.id, Attempts: 1, Exit: exit, Spawn: spawnErr}
	m.sdNotify(sdnotify.Ready()) // still serving, with the old workers
	m.emit(Event{Kind: EventReloadFailed, Slot: s.id, Exit: exit, Err: err})
	again, next := m.finishPass(err)
	m.abandonReplacements()
	if m.active(s) && s.w == nil && s.next == nil {
		m.bootFailed(s, err)
	}
	switch {
	case again && !m.stopping:
		// A reload asked for after the failing one may bring fixed code.
		m.startPass(next)
	case again:
		for _, c := range next {
			c <- ErrServerClosed
		}
	}
	m.advanceRecycle()
}

// abandonReplacements ends the failed pass's other replacements (with
// MaxSurge above 1 they boot the same broken binary): left booting, a
// later pass would take the old pass's worker for its own, its failure or
// its old code for the new pass's outcome. A replacement whose slot lost
// its worker meanwhile stays, as the slot's refill.
func (m *master) abandonReplacements() {
	for _, o := range m.slots {
		m.endReplacement(o)
	}
}

// endReplacement ends the boot of s's replacement, if one boots: it quits,
// unless s has lost its worker meanwhile and the replacement is all it
// has, in which case it stays, as the slot's refill.
func (m *master) endReplacement(s *slot) {
	w := s.next
	if w == nil {
		return
	}
	s.next = nil
	if s.w == nil {
		s.w = w
		return
	}
	m.stopWorker(w, false)
}

// degradedErr is the boot error of the first slot that could not be
// filled, or nil.
func (m *master) degradedErr() error {
	for _, s := range m.slots {
		if s.degraded && s.lastErr != nil {
			return s.lastErr
		}
	}
	return nil
}
