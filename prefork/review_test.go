package prefork_test

import (
	"context"
	"errors"
	"math"
	"syscall"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork"
	"github.com/gracefork/gracefork/prefork/preforktest"
	"github.com/gracefork/gracefork/signals"
)

// barrier returns once the master has handled every action asked before
// it: actions are handled in order, and ReopenLogs changes nothing here.
func (r *rig) barrier() {
	r.t.Helper()
	prefork.Do(r.m, signals.ReopenLogs)
	r.ev.Wait(r.t, prefork.EventAction, func(e prefork.Event) bool { return e.Action == signals.ReopenLogs })
}

func countKind(ev *preforktest.Events, k prefork.EventKind) int {
	n := 0
	for _, e := range ev.All() {
		if e.Kind == k {
			n++
		}
	}
	return n
}

// Giving up while the first workers are being started must not start the
// rest: they would never be told to stop, and Run would never return.
func TestGiveUpDuringFirstSpawnsReturns(t *testing.T) {
	r := &rig{t: t, sp: preforktest.NewSpawner(), clk: preforktest.NewClock(), ev: &preforktest.Events{}, done: make(chan error, 1)}
	r.sp.FailNext(errors.New("fork: resource temporarily unavailable"))
	r.sp.FailNext(errors.New("fork: resource temporarily unavailable"))
	m, err := prefork.New(nil, prefork.Options{Addr: "127.0.0.1:0", Workers: 2, MaxBootFailures: 2,
		Spawner: r.sp, Clock: r.clk, OnEvent: r.ev.Record})
	if err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- m.Run(context.Background()) }()
	var be *prefork.BootError
	if err := r.result(); !errors.As(err, &be) {
		t.Fatalf("Run = %v, want a BootError", err)
	}
	if n := countKind(r.ev, prefork.EventSpawned); n != 0 {
		t.Fatalf("%d workers started after giving up", n)
	}
}

// HUP, HUP, WINCH: the queued reload must not bring the workers back.
func TestQueuedReloadDoesNotUndoStopWorkers(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 2})
	r.boot()
	r.boot()
	prefork.Do(r.m, signals.Reload)
	r.next() // slot 0's replacement, booting
	prefork.Do(r.m, signals.Reload)
	r.ev.Wait(t, prefork.EventReloadQueued, nil)
	prefork.Do(r.m, signals.StopWorkers)
	r.barrier()
	spawned := countKind(r.ev, prefork.EventSpawned)
	if spawned != 3 {
		t.Fatalf("%d workers started in all, want 3 (2 + the one replacement)", spawned)
	}
	r.finish(true)
}

// A reload asked for while a failing one runs is not lost: it runs next,
// with the code now on disk.
func TestReloadQueuedBehindFailureRuns(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1})
	old := r.boot()
	prefork.Do(r.m, signals.Reload)
	bad := r.next()
	prefork.Do(r.m, signals.Reload) // the operator shipped a fix
	r.ev.Wait(t, prefork.EventReloadQueued, nil)
	bad.Exit(2, "panic: broken build")
	r.ev.Wait(t, prefork.EventReloadFailed, nil)
	fixed := r.next()
	fixed.Ready()
	old.WaitStop(t)
	old.Exit(0)
	r.ev.Wait(t, prefork.EventReloadDone, nil)
	r.finish(true)
}

// A spawn that fails during a reload ends it as failed, not also as done.
func TestSpawnFailureEndsReloadOnce(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1})
	r.boot()
	r.sp.FailNext(errors.New("exec: no such file"))
	prefork.Do(r.m, signals.Reload)
	r.ev.Wait(t, prefork.EventReloadFailed, nil)
	r.barrier()
	if n := countKind(r.ev, prefork.EventReloadDone); n != 0 {
		t.Fatalf("reload failed and done")
	}
	r.finish(true)
}

// A GracefulTimeout meant as "forever" must not overflow into an
// immediate kill.
func TestHugeGracefulTimeoutDoesNotKill(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1, GracefulTimeout: math.MaxInt64})
	w := r.boot()
	prefork.Do(r.m, signals.Shutdown)
	w.WaitStop(t)
	r.clk.Advance(24 * time.Hour)
	w.Exit(0)
	if err := r.result(); err != nil {
		t.Fatal(err)
	}
	if n := countKind(r.ev, prefork.EventKilled); n != 0 {
		t.Fatal("the draining worker was killed")
	}
}

// Heartbeats keep a worker alive; a silent one is killed and its slot
// restarted, as after a crash.
func TestSilentWorkerIsKilled(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1, HeartbeatTimeout: 5 * time.Second})
	w := r.boot()
	for i := range 3 {
		r.clk.WaitTimer(t, 5*time.Second)
		r.clk.Advance(4 * time.Second)
		if err := w.Heartbeat(uint64(i), 0); err != nil {
			t.Fatal(err)
		}
	}
	r.clk.WaitTimer(t, 5*time.Second) // re-armed by the last heartbeat
	if w.Exited() || countKind(r.ev, prefork.EventHung) != 0 {
		t.Fatal("a worker that kept reporting was taken for hung")
	}
	r.clk.Advance(5 * time.Second)
	if sig := w.WaitSignal(t); sig != syscall.SIGKILL {
		t.Fatalf("silent worker got %v", sig)
	}
	if e := r.ev.Wait(t, prefork.EventHung, nil); e.Delay != 5*time.Second {
		t.Fatalf("hung event %+v", e)
	}
	r.boot() // the slot restarts
	r.finish(true)
}
