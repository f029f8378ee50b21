package prefork

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/gracefork/gracefork/internal/control"
	"github.com/gracefork/gracefork/internal/handoff"
	"github.com/gracefork/gracefork/internal/sockets"
	dto "github.com/prometheus/client_model/go"
)

// Restart backoff: the first restart after a crash is immediate, each
// further one in a row waits twice as long, from minBackoff up to
// maxBackoff. A worker that served for servedWell clears the count: its
// slot restarts at once, however often that happens.
//
// servedWell is one heartbeat interval. A worker that dies within a second
// of its "ready" dies of what it does at start — the same code in every
// attempt, a boot loop in disguise — and backs off; one that served for a
// second took traffic, and its death (a request of death, the OOM killer,
// kill -9) says nothing about the next worker, which costs a process start
// (tens of milliseconds) while its slot's capacity is missing.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 10 * time.Second
	servedWell = time.Second
	// killGrace is how long the master waits past a worker's own deadline
	// before it sends SIGKILL.
	killGrace = 2 * time.Second
	// quitTimeout bounds a quick shutdown.
	quitTimeout = 2 * time.Second
)

// spawn starts a worker for s: its serving worker, or with next its
// replacement during a reload.
func (m *master) spawn(s *slot, next bool) {
	if m.stopping {
		return // giving up or shutting down: a worker started now would never be told to stop
	}
	m.gen++
	w := &worker{s: s, slot: s.id, gen: m.gen, spawnedAt: m.clock.Now(), ctlEnded: make(chan struct{})}
	m.hookBeforeSpawn(w) // queued: the spawn does not wait for it
	proc, ctl, err := m.start(w, next)
	if err != nil {
		m.emit(Event{Kind: EventSpawnFailed, Slot: s.id, Generation: w.gen, Err: err})
		if next {
			m.replacementFailed(s, Exit{}, err)
		} else {
			m.bootFailed(s, &BootError{Slot: s.id, Spawn: err})
		}
		return
	}
	w.proc, w.ctl = proc, ctl
	if next {
		s.next = w
	} else {
		s.w = w
	}
	m.workers[w] = struct{}{}
	m.reading[w] = struct{}{}
	w.bootTimer = m.after(m.cfg.BootTimeout, func() { m.onBootTimeout(w) })
	m.wg.Go(func() { m.awaitExit(w) })
	m.wg.Go(func() { m.readControl(w) })
	m.emit(Event{Kind: EventSpawned, Slot: s.id, Generation: w.gen, Pid: proc.Pid()})
	m.hookAfterSpawn(w)
}

// start makes the worker's control channel and asks the spawner for it;
// reload says the worker replaces one in a reload.
func (m *master) start(w *worker, reload bool) (Process, net.Conn, error) {
	mine, theirs, err := sockets.Pair()
	if err != nil {
		return nil, nil, err
	}
	defer mine.Close()
	marker := handoff.NewSpec(w.slot, w.gen, len(m.files), m.cfg.procs)
	proc, err := m.spawner.Spawn(WorkerSpec{
		Slot: w.slot, Generation: w.gen, Reload: reload, Control: theirs, Listeners: m.listenersFor(w.slot),
		Env: append(m.baseEnv[:len(m.baseEnv):len(m.baseEnv)], marker.EnvEntry()),
	})
	theirs.Close()
	if err != nil {
		return nil, nil, err
	}
	conn, err := net.FileConn(mine)
	if err != nil {
		proc.Signal(syscall.SIGKILL)
		proc.Wait()
		return nil, nil, err
	}
	return proc, conn, nil
}

// awaitExit waits for w's process to end and hands its exit to the loop
// once everything w wrote before it — why it failed (TypeFailed), its
// final metrics snapshot, a last "ready" — has been read and handed over:
// the loop then judges the exit with all the worker said. Its end of the
// channel closed with it, so the reader meets EOF at once; only a
// descendant that inherited the descriptor could keep it open, and the
// reader gives up after ctlLinger.
func (m *master) awaitExit(w *worker) {
	exit := w.proc.Wait()
	w.ctl.SetReadDeadline(time.Now().Add(ctlLinger))
	<-w.ctlEnded
	m.post(exitEvent{w, exit})
}

// readControl reads w's messages until its control channel ends, then
// tells the loop, with the final metrics snapshot w sent, if any.
func (m *master) readControl(w *worker) {
	var final []*dto.MetricFamily
	defer func() {
		m.mx.answered(w, 0, true) // a scrape waits for it no longer
		m.post(ctlDoneEvent{w, final})
		close(w.ctlEnded)
	}()
	for {
		msg, err := control.Read(w.ctl)
		if errors.Is(err, control.ErrType) {
			// A newer worker's message, read whole (a reload to a newer
			// binary): skip it. Killing the worker would turn a deploy
			// into a crash loop.
			m.post(unknownMsgEvent{w, msg.Type.String()})
			continue
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, os.ErrDeadlineExceeded) {
				m.post(ctlErrEvent{w, err})
			}
			return
		}
		if msg.Type == control.TypeMetrics {
			m.onMetrics(w, msg, &final) // here, not in the loop: a snapshot is up to 4 MiB to decode
			continue
		}
		m.post(msgEvent{w, msg})
	}
}

// onUnknownMessage notes a message of a newer worker, skipped.
func (m *master) onUnknownMessage(ev unknownMsgEvent) {
	w := ev.w
	m.emit(Event{Kind: EventUnknownMessage, Slot: w.slot, Generation: w.gen, Pid: w.proc.Pid(), Detail: ev.typ})
}

func (m *master) onMessage(w *worker, msg control.Message) {
	if _, live := m.workers[w]; !live || w.killed {
		// Its exit was handled first, or is on its way: what it said last
		// no longer matters. A worker killed at BootTimeout whose "ready"
		// was already queued must not count as serving.
		return
	}
	switch msg.Type {
	case control.TypeReady:
		m.onReady(w)
	case control.TypeHeartbeat:
		m.onHeartbeat(w, msg)
		m.tellPool(w)
	case control.TypeRetire:
		m.onRetire(w, msg)
	case control.TypeFailed:
		w.failure = msg.Payload // its exit, which follows, quotes it
	case control.TypeListenersClosed:
		if w.closingLns {
			m.emit(Event{Kind: EventStoppedAccepting, Slot: w.slot, Generation: w.gen, Pid: w.proc.Pid()})
		}
		m.listenersClosed(w)
	default:
		// A message for workers, well formed: a bug in the worker, or a
		// build that means something else by it. Not worth a kill.
		m.emit(Event{Kind: EventMisdirectedMessage, Slot: w.slot, Generation: w.gen, Pid: w.proc.Pid(), Detail: msg.Type.String()})
	}
}

func (m *master) onReady(w *worker) {
	if w.ready {
		return
	}
	w.ready = true
	w.readyAt = m.clock.Now()
	w.bootTimer.Stop()
	if !w.stopping {
		m.watchHeartbeat(w)
	}
	if m.cfg.Recycle.Enabled() {
		w.tracker = m.cfg.Recycle.Track()
		if n := w.tracker.Limits().Requests; n > 0 && !w.stopping {
			m.send(w, control.Message{Type: control.TypeRequestLimit, Requests: n})
		}
	}
	m.emit(Event{Kind: EventReady, Slot: w.slot, Generation: w.gen, Pid: w.proc.Pid(), Delay: w.readyAt.Sub(w.spawnedAt)})
	s := w.s
	if s.next == w && !w.stopping && !m.stopping {
		// Replace before retire: the new worker serves, then the old drains.
		old := s.w
		s.w, s.next = w, nil
		cause := causeReload
		if m.recycling(s) {
			cause = causeRecycle
			m.recycled(s, w)
		}
		if old != nil && !old.stopping {
			m.mx.own.leaving(old.gen, cause)
			m.stopWorker(old, true)
		}
		m.advanceReload()
		m.advanceRecycle()
	}
	if s.w == w {
		s.bootFailures = 0
		if s.degraded {
			s.degraded, s.lastErr = false, nil
			m.emit(Event{Kind: EventRestored, Slot: s.id, Generation: w.gen, Pid: w.proc.Pid()})
			if err := m.openSlot(s.id); err != nil { // closed while degraded
				m.emit(Event{Kind: EventSpawnFailed, Slot: s.id, Err: err})
			}
			m.sendStatus()
		}
	}
	m.maybeAnnounce()
	if m.reload.restore {
		m.advanceReload()
	}
}

// kill ends a worker at once. From then on the master ignores what it
// says: a "ready" or heartbeat already queued behind the decision to kill
// must not undo it.
func (m *master) kill(w *worker) {
	w.killed = true
	stopTimer(w.beatTimer)
	w.proc.Signal(syscall.SIGKILL)
}

// onProtocolError kills a worker that sent something unreadable: a master
// cannot supervise what it cannot understand. It is restarted as a crash.
func (m *master) onProtocolError(w *worker, err error) {
	if _, live := m.workers[w]; !live {
		return
	}
	m.emit(Event{Kind: EventProtocolError, Slot: w.slot, Generation: w.gen, Pid: w.proc.Pid(), Err: err})
	m.kill(w)
}

func stopTimer(t Timer) {
	if t != nil {
		t.Stop()
	}
}

func (m *master) onBootTimeout(w *worker) {
	if _, live := m.workers[w]; !live || w.ready || w.stopping {
		return
	}
	w.bootTimedOut = true
	m.emit(Event{Kind: EventBootTimeout, Slot: w.slot, Generation: w.gen, Pid: w.proc.Pid(), Delay: m.cfg.BootTimeout})
	m.kill(w)
}

func (m *master) onExit(w *worker, exit Exit) {
	delete(m.workers, w)
	defer m.listenersClosed(w) // its copies closed with it: a stop's first phase need not wait
	w.exited = true
	w.expected = (w.stopping || m.stopping) && !w.killed
	exit.Failure = w.failure
	if w.ctlDone { // always: awaitExit posts the exit after the reader's end
		w.ctl.Close()
		m.finishMetrics(w)
	}
	w.bootTimer.Stop()
	stopTimer(w.beatTimer)
	if w.killTimer != nil {
		w.killTimer.Stop()
	}
	m.emit(Event{Kind: EventExited, Slot: w.slot, Generation: w.gen, Pid: w.proc.Pid(), Exit: exit, Expected: w.expected})
	m.hookWorkerExit(w, exit)
	s := w.s
	switch {
	case s.next == w:
		s.next = nil
		if !w.stopping && !m.stopping {
			m.replacementFailed(s, exit, nil)
		}
	case s.w == w:
		s.w = nil
		if m.stopping || w.stopping || !m.active(s) || s.next != nil {
			return // leaving on purpose, or a replacement is on its way
		}
		m.crashed(s, w, exit)
	}
}

// crashed restarts the slot of a worker that exited unasked. A worker that
// served for servedWell died of something other than its code — a request,
// the OOM killer, an operator's kill -9 — and its slot restarts at once, as
// often as that happens; one that died young backs off, as a boot loop does.
func (m *master) crashed(s *slot, w *worker, exit Exit) {
	if !w.ready {
		m.bootFailed(s, &BootError{Slot: s.id, Exit: exit, TimedOut: w.bootTimedOut})
		return
	}
	if m.clock.Now().Sub(w.readyAt) >= servedWell {
		s.failures = 0
	}
	s.failures++
	m.scheduleRestart(s)
}

func (m *master) active(s *slot) bool {
	for _, a := range m.slots {
		if a == s {
			return true
		}
	}
	return false
}

// bootFailed counts a worker that never became ready. After
// MaxBootFailures in a row the master gives up — drains the workers that
// serve and makes Run return the *BootError — when no worker can serve:
//
//   - at start, that is before the first "serving" (every slot ready once,
//     READY=1 sent to systemd, tableflip's Ready called during an upgrade):
//     a deploy that cannot fill its slots fails where its operator looks,
//     and during an upgrade the old master serves on;
//   - later, when every slot fails: none has a ready worker, and none has
//     boots left before MaxBootFailures.
//
// Otherwise the slot is degraded: the other workers serve on, and the slot
// retries every maxBackoff, loudly (an error event each time, sd_notify
// STATUS), until a worker of its own is ready again.
func (m *master) bootFailed(s *slot, e *BootError) {
	s.failures++
	s.bootFailures++
	if s.bootFailures < m.cfg.MaxBootFailures {
		m.scheduleRestart(s)
		return
	}
	e.Attempts = s.bootFailures
	if !m.announced || !m.othersServe(s) {
		m.emit(Event{Kind: EventGivingUp, Slot: s.id, Err: e})
		m.stop(true, e)
		return
	}
	s.degraded, s.lastErr = true, e
	m.emit(Event{Kind: EventDegraded, Slot: s.id, Workers: m.serving(), Delay: maxBackoff, Err: e})
	m.pauseDegraded(s)
	m.sendStatus()
	m.restartIn(s, maxBackoff)
	m.advanceReload() // a reload that brings workers back ends with what it could start
}

// othersServe reports whether a slot other than s has a ready worker, or
// boots left before giving up.
func (m *master) othersServe(s *slot) bool {
	for _, o := range m.slots {
		if o != s && (o.serves() || o.bootFailures < m.cfg.MaxBootFailures) {
			return true
		}
	}
	return false
}

func (s *slot) serves() bool { return s.w != nil && s.w.ready && !s.w.stopping && !s.w.killed }

// serving counts the active slots whose worker is ready.
func (m *master) serving() int {
	n := 0
	for _, s := range m.slots {
		if s.serves() {
			n++
		}
	}
	return n
}

func (m *master) scheduleRestart(s *slot) {
	m.restartIn(s, backoff(s.failures))
}

// restartIn spawns the slot's worker after d, replacing any restart
// already pending for it.
func (m *master) restartIn(s *slot, d time.Duration) {
	cancelRestart(s)
	m.emit(Event{Kind: EventRestartScheduled, Slot: s.id, Delay: d})
	if d == 0 {
		m.spawn(s, false)
		return
	}
	s.restart = m.after(d, func() {
		s.restart = nil
		if !m.stopping && s.w == nil && s.next == nil && m.active(s) {
			m.spawn(s, false)
		}
	})
}

// backoff is the wait before the restart that follows n failures in a row:
// none after the first, then minBackoff doubling up to maxBackoff.
func backoff(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	d := minBackoff << min(n-2, 16)
	return min(d, maxBackoff)
}
