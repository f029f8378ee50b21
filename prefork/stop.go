package prefork

import (
	"strings"
	"time"

	"github.com/gracefork/gracefork/internal/control"
	"github.com/gracefork/gracefork/internal/sdnotify"
)

// closeListenersWait bounds the first phase of a final stop: how long the
// drain waits for workers that have not said they closed their listeners
// (still booting, stalled, or of an older build).
const closeListenersWait = time.Second

// stop drains (graceful) or quits every worker; no worker starts after it.
// A quit may follow a graceful stop and hurries it; the reverse does nothing.
//
// A final graceful stop — Shutdown, or giving up, by a master that did not
// hand over — has two phases, so that no client is told to reconnect while
// a copy of the socket still accepts:
//
//  1. The master closes its own copies of the sockets, and tells every
//     worker to close its copies (CloseListeners) and to serve the
//     connections it has as before, keep-alive ones included. Each answers
//     ListenersClosed.
//  2. Once every worker has answered or exited — or closeListenersWait has
//     passed — it tells them to drain: each keep-alive client learns from
//     its next answer (Connection: close) to reconnect.
//
// With one phase, the first worker to drain sent its clients away while
// another worker's copy still held the socket open: their reconnects
// queued in its backlog, and the kernel reset them when the last copy
// closed. Now the socket is closed everywhere first, and a reconnect is
// refused at once (ECONNREFUSED: safe to retry elsewhere, never half-sent).
//
// A reload, a scale-down or a handover drains at once, in one phase: other
// workers — this master's, or the new master's — accept on the socket.
func (m *master) stop(graceful bool, err error) {
	if m.stopping && (graceful || m.quitting) {
		return
	}
	m.endShutdownDelay()
	setStopping("stopped")
	if !m.stopping && !m.handedOver {
		m.sdNotify(sdnotify.Stopping())
	}
	m.stopping = true
	m.quitting = !graceful
	// Every worker hears "stopping" before any closes its listeners: it
	// stops balancing, so no client is sent to reconnect into a socket
	// about to close.
	m.updateReadiness()
	m.closeSockets()
	if m.stopErr == nil {
		m.stopErr = err
	}
	m.endReload(ErrServerClosed)
	for _, s := range m.slots {
		cancelRestart(s)
	}
	if graceful && !m.handedOver {
		m.closeListeners()
		return
	}
	m.endCloseWait() // a quit hurries the first phase: every worker quits now
	for _, w := range m.liveWorkers() {
		if !(graceful && w.stopping) {
			m.stopWorker(w, graceful)
		}
	}
}

// closeListeners begins the first phase of a final stop (see stop). A
// worker already stopping (drained by a reload or a scale-down) closed its
// copies when its drain began: the stop does not wait for it. A worker
// still booting is told too, and waited for: it reads its control channel
// once it serves, and may have accepted connections by then, which a quit
// would cut.
func (m *master) closeListeners() {
	for _, w := range m.liveWorkers() {
		if w.stopping {
			continue
		}
		w.closingLns = true
		m.send(w, control.Message{Type: control.TypeCloseListeners})
	}
	m.closingLns = true
	m.closeWaitTimer = m.after(closeListenersWait, func() {
		m.closeWaitTimer = nil
		if !m.closingLns {
			return
		}
		var late []string
		for _, w := range m.liveWorkers() {
			if w.closingLns {
				late = append(late, w.String())
			}
		}
		m.emit(Event{Kind: EventDrainForced, Delay: closeListenersWait, Detail: strings.Join(late, ", ")})
		m.drainAfterClose()
	})
	m.maybeDrainAfterClose()
}

// listenersClosed notes that w has closed its listeners, or exited, during
// the first phase of a stop.
func (m *master) listenersClosed(w *worker) {
	if !w.closingLns {
		return
	}
	w.closingLns = false
	m.maybeDrainAfterClose()
}

// maybeDrainAfterClose begins the second phase once no live worker has a
// listener open.
func (m *master) maybeDrainAfterClose() {
	if !m.closingLns {
		return
	}
	for w := range m.workers {
		if w.closingLns {
			return
		}
	}
	m.drainAfterClose()
}

// drainAfterClose is the second phase of a final stop: drain every worker.
func (m *master) drainAfterClose() {
	m.endCloseWait()
	for _, w := range m.liveWorkers() {
		if !w.stopping {
			m.stopWorker(w, true)
		}
	}
}

// endCloseWait ends the first phase of a stop, if one is under way.
func (m *master) endCloseWait() {
	m.closingLns = false
	if m.closeWaitTimer != nil {
		m.closeWaitTimer.Stop()
		m.closeWaitTimer = nil
	}
	for w := range m.workers {
		w.closingLns = false
	}
}

// closeSockets closes, once, this master's copies of every socket,
// tableflip's included. A stop does it first: the workers then hold the
// last copies, so the socket closes when the last of them stops accepting,
// and a client that comes later is refused at once — instead of queuing
// for nobody, to be reset at the master's exit. Workers need none of
// these: none is spawned once a stop has begun.
//
// Stopping tableflip also ends an upgrade in progress (it kills the new
// master). A new master that never served leaves tableflip alone: its
// Stop would unlink unix sockets handed over as tableflip listeners by an
// older gracefork, which the old master still serves.
func (m *master) closeSockets() {
	if m.closed {
		return
	}
	m.closed = true
	for _, f := range m.files {
		f.Close()
	}
	for _, ln := range m.lns {
		ln.Close()
	}
	for _, ss := range m.slotSocks {
		ss.close()
	}
	if m.upg != nil && !(m.hasParent() && !m.announced) {
		m.upg.Stop()
		<-m.upg.Exit() // closed once tableflip has closed its copies
	}
}
