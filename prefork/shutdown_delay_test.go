package prefork_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork"
	"github.com/gracefork/gracefork/prefork/preforktest"
	"github.com/gracefork/gracefork/signals"
)

const testDelay = 3 * time.Second

// delayRig is a pool of n ready workers with ShutdownDelay set, that has
// been told the pool is ready.
func delayRig(t *testing.T, n int) (*rig, []*preforktest.Worker) {
	t.Helper()
	r := newRig(t, prefork.Options{Workers: n, ShutdownDelay: testDelay})
	ws := make([]*preforktest.Worker, n)
	for i := range ws {
		ws[i] = r.boot()
	}
	r.ev.Wait(t, prefork.EventServing, nil)
	for _, w := range ws {
		waitToldReady(t, w, true)
	}
	return r, ws
}

// waitToldReady waits until w is told the pool's readiness is ready.
func waitToldReady(t *testing.T, w *preforktest.Worker, ready bool) preforktest.Readiness {
	t.Helper()
	for {
		if rd := w.WaitReadiness(t); rd.Ready == ready {
			return rd
		}
	}
}

// A graceful stop with a shutdown delay: every worker hears at once that
// the pool stops (its readiness probe fails), nobody is told to close its
// listeners or drain until the delay is over, then the usual two-phase
// stop runs.
func TestShutdownDelayKeepsServingThenStops(t *testing.T) {
	r, ws := delayRig(t, 2)
	prefork.Do(r.m, signals.Shutdown)
	e := r.ev.Wait(t, prefork.EventShutdownDelay, nil)
	if e.Delay != testDelay {
		t.Fatalf("delay %v, want %v", e.Delay, testDelay)
	}
	for _, w := range ws {
		if rd := waitToldReady(t, w, false); !rd.Stopping {
			t.Fatalf("worker told %+v, want not ready because stopping", rd)
		}
	}
	r.clk.WaitTimer(t, testDelay)
	r.barrier() // the master has handled everything; still no stop
	if n := countKind(r.ev, prefork.EventDraining) + countKind(r.ev, prefork.EventStoppedAccepting); n != 0 {
		t.Fatalf("%d drain events before the delay was over:\n%s", n, r.ev)
	}
	r.clk.Advance(testDelay)
	for _, w := range ws {
		w.WaitCloseListeners(t)
	}
	for _, w := range ws {
		if st := w.WaitStop(t); !st.Drain {
			t.Fatalf("worker told %+v, want a drain", st)
		}
		w.Exit(0)
	}
	if err := r.result(); err != nil {
		t.Fatalf("Run = %v", err)
	}
}

// A quit (SIGINT, SIGQUIT, Close) during the delay does not wait for it; a
// second graceful stop changes nothing.
func TestQuitDuringShutdownDelay(t *testing.T) {
	r, ws := delayRig(t, 1)
	prefork.Do(r.m, signals.Shutdown)
	r.ev.Wait(t, prefork.EventShutdownDelay, nil)
	prefork.Do(r.m, signals.Shutdown)
	r.barrier()
	if n := countKind(r.ev, prefork.EventShutdownDelay); n != 1 {
		t.Fatalf("%d shutdown delays, want 1", n)
	}
	prefork.Do(r.m, signals.Quit)
	if st := ws[0].WaitStop(t); st.Drain {
		t.Fatalf("worker told %+v, want a quit", st)
	}
	ws[0].Exit(0)
	if err := r.result(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if p := r.clk.Pending(); len(p) != 0 {
		t.Fatalf("timers left armed: %v", p) // the delay's timer must be stopped
	}
}

// During the delay the pool serves as it is: a reload, an upgrade or a
// scale would start workers the stop is about to drain, and is refused.
// A worker that crashes is still replaced.
func TestShutdownDelayRefusesChangesButRestartsCrashes(t *testing.T) {
	r, ws := delayRig(t, 2)
	prefork.Do(r.m, signals.Shutdown)
	r.ev.Wait(t, prefork.EventShutdownDelay, nil)
	ctx, cancel := context.WithTimeout(t.Context(), preforktest.Patience)
	defer cancel()
	if err := r.m.Reload(ctx); !errors.Is(err, prefork.ErrServerClosed) {
		t.Fatalf("Reload during the delay = %v, want ErrServerClosed", err)
	}
	r.ev.Wait(t, prefork.EventActionRefused, func(e prefork.Event) bool { return e.Action == signals.Reload })
	if err := r.m.Scale(3); err != nil { // queued: Scale does not wait
		t.Fatal(err)
	}
	prefork.Do(r.m, signals.AddWorker)
	r.ev.Wait(t, prefork.EventActionRefused, func(e prefork.Event) bool { return e.Action == signals.AddWorker })
	r.barrier()
	if n := countKind(r.ev, prefork.EventScaled); n != 0 {
		t.Fatalf("scaled during the delay:\n%s", r.ev)
	}
	ws[1].Exit(2) // a crash during the delay
	r.waitRestart()
	fresh := r.boot()
	if rd := waitToldReady(t, fresh, false); !rd.Stopping {
		t.Fatalf("the replacement was told %+v, want not ready because stopping", rd)
	}
	r.clk.Advance(testDelay)
	for _, w := range []*preforktest.Worker{ws[0], fresh} {
		if st := w.WaitStop(t); !st.Drain {
			t.Fatalf("worker told %+v, want a drain", st)
		}
		w.Exit(0)
	}
	if err := r.result(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if n := countKind(r.ev, prefork.EventReloadStarted); n != 0 {
		t.Fatalf("a reload started during the delay")
	}
}

// Readiness follows the pool: a crash leaves it short (the workers are told
// so), the replacement's ready restores it, and a new worker learns the
// pool's state as soon as it is ready.
func TestPoolReadinessFollowsTheWorkers(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 2})
	a := r.boot()
	if rd := a.WaitReadiness(t); rd.Ready || rd.Stopping {
		t.Fatalf("first worker told %+v with one of two ready, want not ready (short)", rd)
	}
	b := r.boot()
	waitToldReady(t, a, true)
	waitToldReady(t, b, true)
	b.Exit(2)
	if rd := a.WaitReadiness(t); rd.Ready {
		t.Fatalf("told %+v after a crash left one of two, want not ready", rd)
	}
	r.waitRestart()
	c := r.boot()
	waitToldReady(t, a, true)
	waitToldReady(t, c, true)
	r.finish(true)
}
