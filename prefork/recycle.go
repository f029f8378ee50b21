package prefork

import (
	"time"

	"github.com/gracefork/gracefork/internal/control"
	"github.com/gracefork/gracefork/recycle"
)

// recycleState is the pool's recycling: the workers that reached a limit,
// in the order they did, and the one recycle under way.
//
// A worker that reaches a limit serves on. Its recycle is the reload's
// replace-before-retire for one slot: a replacement boots in s.next, and
// once it is ready the old worker drains. One recycle at a time, starts at
// least MinInterval apart, none while a reload or an upgrade runs (they
// wait in the queue); a replacement that fails leaves the old worker
// serving and is retried after a backoff, without counting towards
// MaxBootFailures.
type recycleState struct {
	queue    []*worker // due, waiting their turn
	cur      *slot     // the slot whose replacement boots now
	old      *worker   // the worker it replaces
	last     time.Time // when the last recycle began
	wait     Timer     // MinInterval or a failed recycle's backoff; nil when none
	failures int       // failed replacements in a row
}

// Recycle retry backoff: a failed replacement (the binary on disk is
// broken, the machine is out of memory) is retried after recycleRetryMin,
// doubling up to recycleRetryMax. The old worker serves meanwhile, so
// there is no hurry, and each attempt costs a process start and an error.
const (
	recycleRetryMin = time.Second
	recycleRetryMax = time.Minute
)

func recycleRetry(failures int) time.Duration {
	return min(recycleRetryMin<<min(max(failures-1, 0), 16), recycleRetryMax)
}

// usage is what a worker's latest heartbeat reported, kept per slot for
// the metrics.
type usage struct {
	requests uint64
	active   uint32
	inflight uint32
	rss      uint64
	at       time.Time // when it came
}

// onHeartbeat keeps a serving worker's counts and checks its limits.
func (m *master) onHeartbeat(w *worker, msg control.Message) {
	w.usage = usage{requests: msg.Requests, active: msg.Active, inflight: msg.InFlight, rss: msg.RSS, at: m.clock.Now()}
	if !w.ready || w.stopping {
		return
	}
	m.watchHeartbeat(w)
	if w.tracker == nil || w.due != nil {
		return
	}
	u := recycle.Usage{Requests: msg.Requests, Age: m.clock.Now().Sub(w.readyAt), RSS: msg.RSS}
	if d, ok := w.tracker.Check(u); ok {
		m.recycleDue(w, d)
	}
}

// onRetire takes a worker's own request to be recycled: a handler of its
// ran away.
func (m *master) onRetire(w *worker, msg control.Message) {
	if msg.Reason != control.RetireRunaway {
		m.emit(Event{Kind: EventMisdirectedMessage, Slot: w.slot, Generation: w.gen, Pid: w.proc.Pid(), Detail: "retire with an unknown reason"})
		return
	}
	if w.ready && !w.stopping && w.due == nil {
		m.recycleDue(w, recycle.Due{Reason: recycle.Runaway, Value: msg.Value, Limit: uint64(m.cfg.RequestTimeout)})
	}
}

// recycleDue queues a worker that reached a limit.
func (m *master) recycleDue(w *worker, d recycle.Due) {
	w.due = &d
	m.emit(Event{Kind: EventRecycleDue, Slot: w.slot, Generation: w.gen, Pid: w.proc.Pid(), Reason: d.Reason, Detail: d.String()})
	m.recycle.queue = append(m.recycle.queue, w)
	m.advanceRecycle()
}

// recyclable reports whether w still waits to be recycled: it serves its
// slot, which has no replacement booting.
func (m *master) recyclable(w *worker) bool {
	_, live := m.workers[w]
	return live && !w.stopping && !w.killed && w.s.w == w && w.s.next == nil && m.active(w.s)
}

// advanceRecycle starts the next recycle when nothing stands in its way.
func (m *master) advanceRecycle() {
	r := &m.recycle
	if r.cur != nil || r.wait != nil || m.reload.on || m.upgrading || m.stopping || m.delaying {
		return
	}
	for len(r.queue) > 0 && !m.recyclable(r.queue[0]) {
		r.queue = r.queue[1:]
	}
	if len(r.queue) == 0 {
		return
	}
	if gap := m.cfg.Recycle.MinInterval - m.clock.Now().Sub(r.last); !r.last.IsZero() && gap > 0 {
		r.wait = m.after(gap, m.recycleWaited)
		return
	}
	w := r.queue[0]
	r.queue = r.queue[1:]
	s := w.s
	r.cur, r.old, r.last = s, w, m.clock.Now()
	m.spawn(s, true)
	if r.cur == s && s.next != nil {
		m.emit(Event{Kind: EventRecycling, Slot: s.id, Generation: s.next.gen, Pid: s.next.proc.Pid(), Reason: w.due.Reason})
	}
}

func (m *master) recycleWaited() {
	m.recycle.wait = nil
	m.advanceRecycle()
}

// recycling reports whether s's replacement boots for a recycle rather
// than a reload.
func (m *master) recycling(s *slot) bool { return m.recycle.cur == s }

// recycled ends the recycle of s: its replacement w is ready and the old
// worker drains (onReady does that, as for a reload).
func (m *master) recycled(s *slot, w *worker) {
	r := &m.recycle
	m.emit(Event{Kind: EventRecycled, Slot: s.id, Generation: w.gen, Pid: w.proc.Pid(), Reason: r.old.due.Reason})
	r.cur, r.old, r.failures = nil, nil, 0
}

// recycleFailed ends a recycle whose replacement did not boot. The old
// worker serves on and goes back to the head of the queue; the recycle is
// tried again after a backoff. A slot whose old worker died meanwhile is
// empty: that counts as a failed boot, as for a reload.
func (m *master) recycleFailed(s *slot, exit Exit, spawnErr error) {
	r := &m.recycle
	old := r.old
	r.cur, r.old = nil, nil
	r.failures++
	delay := recycleRetry(r.failures)
	err := &BootError{Slot: s.id, Attempts: 1, Exit: exit, Spawn: spawnErr}
	m.emit(Event{Kind: EventRecycleFailed, Slot: s.id, Delay: delay, Err: err})
	if m.recyclable(old) {
		r.queue = append([]*worker{old}, r.queue...)
	}
	stopTimer(r.wait)
	r.wait = m.after(delay, m.recycleWaited)
	if m.active(s) && s.w == nil && s.next == nil {
		m.bootFailed(s, err)
	}
}

// replacementFailed ends the boot of a slot's replacement that failed: a
// recycle's or a reload's.
func (m *master) replacementFailed(s *slot, exit Exit, spawnErr error) {
	if m.recycling(s) {
		m.recycleFailed(s, exit, spawnErr)
		return
	}
	m.reloadFailed(s, exit, spawnErr)
}

// pauseRecycle gives way to a reload or an upgrade: the recycle under way
// ends — its replacement quits, unless its slot has lost its worker and
// the replacement is all it has — and its worker goes back to the head of
// the queue. Queued recycles wait until advanceRecycle runs again.
func (m *master) pauseRecycle() {
	r := &m.recycle
	s := r.cur
	if s == nil {
		return
	}
	r.queue = append([]*worker{r.old}, r.queue...) // advanceRecycle drops it if it is gone
	r.cur, r.old = nil, nil
	m.endReplacement(s)
}

// dropRecycle forgets the recycle of a slot that is no longer active.
func (m *master) dropRecycle(s *slot) {
	if m.recycle.cur == s {
		m.recycle.cur, m.recycle.old = nil, nil
	}
}
