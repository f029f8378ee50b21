package prefork

import "github.com/gracefork/gracefork/internal/sdnotify"

func (m *master) addWorker() {
	m.scaleTo(len(m.slots) + 1)
}

// removeWorker drains the highest slot's worker, never the last one.
func (m *master) removeWorker() {
	if len(m.slots) <= 1 {
		m.emit(Event{Kind: EventRemoveRefused})
		return
	}
	m.scaleTo(len(m.slots) - 1)
}

// stopWorkers drains every worker and keeps the master and its sockets, so
// new connections wait in the kernel's queue until workers come back
// (Reload or AddWorker).
func (m *master) stopWorkers() {
	if m.reload.on {
		m.sdNotify(sdnotify.Ready()) // the reload systemd saw start ends here
	}
	m.endReload(errReloadStopWorkers) // a queued reload must not bring them back
	m.scaleTo(0)
}

func (m *master) scaleTo(n int) {
	for len(m.slots) > n {
		s := m.slots[len(m.slots)-1]
		m.slots = m.slots[:len(m.slots)-1]
		m.retire(s)
	}
	for len(m.slots) < n && !m.stopping {
		s := &slot{id: len(m.slots)}
		if err := m.openSlot(s.id); err != nil {
			m.emit(Event{Kind: EventSpawnFailed, Slot: s.id, Err: err})
			break
		}
		m.slots = append(m.slots, s)
		m.spawn(s, false)
	}
	m.emit(Event{Kind: EventScaled, Workers: len(m.slots)})
	m.advanceReload()
	m.advanceRecycle()
}

// retire drains the workers of a slot that is no longer active.
func (m *master) retire(s *slot) {
	cancelRestart(s)
	m.dropRecycle(s)
	if s.degraded {
		s.degraded = false
		m.sendStatus() // no longer missing: it is gone
	}
	var ws []*worker
	for _, w := range []*worker{s.next, s.w} {
		if w != nil && !w.stopping {
			m.mx.own.leaving(w.gen, causeScale)
			ws = append(ws, w)
		}
	}
	if m.slotSocks != nil {
		// Its own sockets close first, the moment their queues are
		// empty, while its workers still accept; then they drain.
		m.retireSlot(s, ws)
		return
	}
	for _, w := range ws {
		m.stopWorker(w, true)
	}
}

// scale sets the worker count, for Server.Scale: 0 is stop-workers.
func (m *master) scale(n int) {
	if n == 0 {
		m.stopWorkers()
		return
	}
	m.scaleTo(n)
}
