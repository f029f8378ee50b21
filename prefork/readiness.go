package prefork

import (
	"context"
	"fmt"

	"github.com/gracefork/gracefork/internal/control"
	"github.com/gracefork/gracefork/internal/sdnotify"
	"github.com/gracefork/gracefork/signals"
)

// poolReadiness is the pool's readiness as the master sees it: every slot
// has a ready worker that is not leaving, none is degraded, and no stop
// has begun (the stop's reason is the process's own, see setStopping).
func (m *master) poolReadiness() (bool, string) {
	if m.stopping || m.delaying {
		return false, "stopping"
	}
	if len(m.slots) == 0 {
		return false, "no workers (stopped by stop-workers or Scale(0))"
	}
	n := 0
	for _, s := range m.slots {
		if s.serves() {
			n++
		}
	}
	if n < len(m.slots) {
		return false, fmt.Sprintf("%d of %d workers ready", n, len(m.slots))
	}
	return true, ""
}

// updateReadiness runs after every event: it records the pool's readiness
// for ReadyHandler in the master, and tells every serving worker that has
// not heard the current value, so that ReadyHandler on the program's own
// mux answers for the pool from whichever worker takes the probe.
func (m *master) updateReadiness() {
	ok, why := m.poolReadiness()
	if ok != m.ready.ok || why != m.ready.why {
		m.ready.ok, m.ready.why = ok, why
		setPoolReady(ok, why)
	}
	msg := control.Message{Type: control.TypeReadiness, Ready: ok}
	switch {
	case ok:
	case m.stopping || m.delaying:
		msg.Reason = control.NotReadyStopping
	default:
		msg.Reason = control.NotReadyShort
	}
	say := telling(1 + msg.Reason) // ready: 1, short: 2, stopping: 3
	for w := range m.workers {
		if !w.ready || w.killed || w.told == say {
			continue
		}
		w.told = say
		m.send(w, msg)
	}
}

// telling is what a worker was last told of the pool's readiness: 0 for
// nothing yet, else 1 + the Readiness message's Reason.
type telling uint8

// beginShutdownDelay starts a graceful stop's delay, when there is one to
// observe: readiness fails at once (in the master and, through
// updateReadiness, in every worker) while everything serves on as before;
// the stop itself begins when the delay is over, or at once on a quit. It
// reports false when the stop must begin now: no delay, a stop already
// under way, or an upgrade in progress or done (the stop then cancels it,
// or goes on to the new master, which observes its own delay).
func (m *master) beginShutdownDelay(why string) bool {
	d := m.cfg.ShutdownDelay
	if d <= 0 || m.stopping || m.upgrading || m.handedOver {
		setStopping(why)
		return false
	}
	if m.delaying {
		return true // a second TERM changes nothing
	}
	m.delaying = true
	setStopping(why)
	m.sdNotify(sdnotify.Stopping())
	m.pauseRecycle()
	m.emit(Event{Kind: EventShutdownDelay, Delay: d})
	m.delayTimer = m.after(d, func() {
		m.delayTimer = nil
		m.delaying = false
		m.stop(true, nil)
	})
	return true
}

// endShutdownDelay ends a delay under way: a quit, or a stop for another
// reason, does not wait for it.
func (m *master) endShutdownDelay() {
	if m.delayTimer != nil {
		m.delayTimer.Stop()
		m.delayTimer = nil
	}
	m.delaying = false
}

// setLiveCheck makes LiveHandler, in the master, a round trip through the
// loop: a loop that does not take an event within the probe's bound is
// wedged.
func (m *master) setLiveCheck() {
	f := func(ctx context.Context) error {
		done := make(chan struct{})
		select {
		case m.events <- callEvent{f: func() { close(done) }}:
		case <-m.done:
			return nil // stopped: what remains is the exit
		case <-ctx.Done():
			return fmt.Errorf("the master's loop took no event for %v", liveTimeout)
		}
		select {
		case <-done:
			return nil
		case <-m.done:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("the master's loop took no event for %v", liveTimeout)
		}
	}
	liveCheck.Store(&f)
}

// stopWhy names what asked for a stop, for the readiness handler's reason.
func stopWhy(r request) string {
	if r.sig != nil {
		return r.sig.String()
	}
	return r.a.String()
}

// refusedWhileDelaying: during the shutdown delay the pool serves on as it
// is. A reload, an upgrade or a change of the worker count would start
// workers that the stop is about to drain; they are refused, as after the
// stop. Reopening the logs is not.
func refusedWhileDelaying(a signals.Action) bool {
	switch a {
	case signals.Reload, signals.Upgrade, signals.AddWorker, signals.RemoveWorker, signals.StopWorkers:
		return true
	}
	return false
}

// tellPool answers a serving worker's heartbeat with the pool's totals —
// connections and handlers in flight across the serving workers, and how
// many serve — from their latest heartbeats, so that the worker keeps to
// its share of the connections (internal/worker's balance.go). Each worker
// hears once a second, when it reports; no timer of the master's.
func (m *master) tellPool(w *worker) {
	if !w.ready || w.stopping || w.killed || m.stopping || m.delaying {
		return // a stop is coming: no client must be sent to reconnect
	}
	if m.cfg.NoBalance {
		return // never told the totals, a worker neither holds back nor sheds
	}
	var msg = control.Message{Type: control.TypePool}
	for o := range m.workers {
		if o.ready && !o.stopping && !o.killed {
			if msg.Workers == 0 || o.usage.active < msg.Fewest {
				msg.Fewest = o.usage.active
			}
			msg.Active += o.usage.active
			msg.InFlight += o.usage.inflight
			msg.Workers++
		}
	}
	m.send(w, msg)
}
