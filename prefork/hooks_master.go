package prefork

import (
	"fmt"
	rtdebug "runtime/debug"
	"sync"
	"time"
)

// Bounds of the master's hooks (see [Hooks]).
const (
	// SlowHookAfter is how long a master hook may run before the master
	// reports it (EventHookSlow, once per call, on the master's clock).
	// The hook runs on, and the hooks queued after it wait for it; the
	// master itself never does.
	SlowHookAfter = 10 * time.Second
	// HooksExitWait bounds how long Run waits, once the last worker has
	// gone, for the master hooks still queued or running, OnExit
	// included. Past it, Run returns without them (EventHooksAbandoned)
	// and the ones still queued never run.
	HooksExitWait = 15 * time.Second
)

// WorkerInfo names a worker in the master's hooks.
type WorkerInfo struct {
	Slot       int // 0 to Workers-1; a worker that replaces another takes its slot
	Generation int // grows with every worker the master starts
	Pid        int // 0 in BeforeSpawn: the process does not exist yet
}

// masterHooks reports whether any master hook is set.
func (h *Hooks) masterHooks() bool {
	return h.OnStarting != nil || h.BeforeSpawn != nil || h.AfterSpawn != nil || h.OnReady != nil ||
		h.OnWorkerExit != nil || h.OnReloadStart != nil || h.OnReloadEnd != nil || h.OnExit != nil
}

// hookQueue runs the master's hooks, one at a time and in the order they
// were queued, on a goroutine of its own, so that the loop never waits for
// the user's code. A hook that runs past SlowHookAfter, or panics, is
// reported through reports: to the loop while it runs, then to Run's wait
// for the hooks (see finishHooks).
type hookQueue struct {
	clock   Clock
	reports chan Event    // read by the loop, then by finishHooks
	ended   chan struct{} // closed when the runner has returned
	gone    chan struct{} // closed once nobody reads reports

	mu        sync.Mutex
	calls     []hookCall
	running   string        // the hook running now, "" between hooks
	wake      chan struct{} // a call was queued, or the queue closed (buffered)
	closed    bool          // no call comes any more: the runner ends once the queue is empty
	abandoned bool          // Run stopped waiting: the runner ends after the running call
}

type hookCall struct {
	name string
	f    func()
}

func newHookQueue(clock Clock) *hookQueue {
	q := &hookQueue{clock: clock, reports: make(chan Event), ended: make(chan struct{}), gone: make(chan struct{}), wake: make(chan struct{}, 1)}
	go q.run()
	return q
}

// add queues f under the hook's name. It never blocks.
func (q *hookQueue) add(name string, f func()) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.calls = append(q.calls, hookCall{name, f})
	q.signal()
}

// signal wakes the runner; q.mu is held.
func (q *hookQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *hookQueue) run() {
	defer close(q.ended)
	for {
		c, ok := q.next()
		if !ok {
			return
		}
		q.call(c)
	}
}

// next waits for the next call; ok is false once the queue is closed and
// empty, or abandoned.
func (q *hookQueue) next() (c hookCall, ok bool) {
	for {
		q.mu.Lock()
		q.running = ""
		switch {
		case q.abandoned:
			q.mu.Unlock()
			return hookCall{}, false
		case len(q.calls) > 0:
			c, q.calls = q.calls[0], q.calls[1:]
			q.running = c.name
			q.mu.Unlock()
			return c, true
		case q.closed:
			q.mu.Unlock()
			return hookCall{}, false
		}
		q.mu.Unlock()
		<-q.wake
	}
}

// call runs one hook; a panic is recovered and reported, and so is a call
// that outlives SlowHookAfter.
func (q *hookQueue) call(c hookCall) {
	slow := q.clock.AfterFunc(SlowHookAfter, func() {
		q.report(Event{Kind: EventHookSlow, Detail: c.name, Delay: SlowHookAfter})
	})
	defer slow.Stop()
	defer func() {
		if v := recover(); v != nil {
			q.report(Event{Kind: EventHookPanicked, Detail: c.name, Err: fmt.Errorf("panic: %v\n\n%s", v, rtdebug.Stack())})
		}
	}()
	c.f()
}

// report hands e to whoever emits the queue's events, or drops it once
// nobody does (Run has returned).
func (q *hookQueue) report(e Event) {
	select {
	case q.reports <- e:
	case <-q.gone:
	}
}

// close takes no more calls: the runner ends once it has run the ones
// queued.
func (q *hookQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.signal()
}

// abandon makes the runner end after the call it runs, and says which one
// that is and how many are dropped.
func (q *hookQueue) abandon() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.abandoned = true
	dropped := len(q.calls)
	q.calls = nil
	running := "none running"
	if q.running != "" {
		running = q.running + " still running"
	}
	return fmt.Sprintf("%s, %d queued not run", running, dropped)
}

// hookReports is where the loop takes the hooks' reports: nil (never
// ready) without master hooks.
func (m *master) hookReports() chan Event {
	if m.hooks == nil {
		return nil
	}
	return m.hooks.reports
}

// finishHooks, once the loop has ended, queues OnExit and waits for the
// hooks still queued or running, emitting their reports, for at most
// HooksExitWait on the master's clock.
func (m *master) finishHooks() {
	q := m.hooks
	if q == nil {
		return
	}
	if h := m.cfg.Hooks.OnExit; h != nil {
		err := m.stopErr
		q.add("OnExit", func() { h(err) })
	}
	q.close()
	defer close(q.gone)
	timeout := make(chan struct{})
	t := m.clock.AfterFunc(HooksExitWait, func() { close(timeout) })
	defer t.Stop()
	for {
		select {
		case e := <-q.reports:
			m.emit(e)
		case <-q.ended:
			return
		case <-timeout:
			m.emit(Event{Kind: EventHooksAbandoned, Delay: HooksExitWait, Detail: q.abandon()})
			return
		}
	}
}

// startHooks starts the master hooks' runner, if there are any, with
// OnStarting first in its queue.
func (m *master) startHooks() {
	if !m.cfg.Hooks.masterHooks() {
		return
	}
	m.hooks = newHookQueue(m.clock)
	if h := m.cfg.Hooks.OnStarting; h != nil {
		m.hook("OnStarting", h)
	}
}

// hook queues a master hook's call, if the master has hooks.
func (m *master) hook(name string, f func()) {
	if m.hooks != nil {
		m.hooks.add(name, f)
	}
}

// The master's hooks, each queued from the loop at its point.

func (m *master) hookBeforeSpawn(w *worker) {
	if h := m.cfg.Hooks.BeforeSpawn; h != nil {
		info := WorkerInfo{Slot: w.slot, Generation: w.gen}
		m.hook("BeforeSpawn", func() { h(info) })
	}
}

func (m *master) hookAfterSpawn(w *worker) {
	if h := m.cfg.Hooks.AfterSpawn; h != nil {
		info := WorkerInfo{Slot: w.slot, Generation: w.gen, Pid: w.proc.Pid()}
		m.hook("AfterSpawn", func() { h(info) })
	}
}

func (m *master) hookReady() {
	if h := m.cfg.Hooks.OnReady; h != nil {
		m.hook("OnReady", h)
	}
}

func (m *master) hookWorkerExit(w *worker, exit Exit) {
	if h := m.cfg.Hooks.OnWorkerExit; h != nil {
		info, expected := WorkerInfo{Slot: w.slot, Generation: w.gen, Pid: w.proc.Pid()}, w.expected
		m.hook("OnWorkerExit", func() { h(info, exit, expected) })
	}
}

func (m *master) hookReloadStart() {
	if h := m.cfg.Hooks.OnReloadStart; h != nil {
		m.hook("OnReloadStart", h)
	}
}

func (m *master) hookReloadEnd(err error) {
	if h := m.cfg.Hooks.OnReloadEnd; h != nil {
		m.hook("OnReloadEnd", func() { h(err) })
	}
}
