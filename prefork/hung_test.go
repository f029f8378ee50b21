//go:build unix

package prefork_test

import (
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork"
	"github.com/gracefork/gracefork/prefork/preforktest"
	"github.com/gracefork/gracefork/signals"
)

// killGrace is the master's wait between a hung worker's SIGABRT and its
// SIGKILL.
const killGrace = 2 * time.Second

// abortDump is the start of what the Go runtime writes on SIGABRT.
var abortDump = []string{"SIGABRT: abort", "PC=0x481f01 m=0 sigcode=0", "", "goroutine 7 gp=0x1 m=nil [select]:", "main.stuck()", "\t/src/app/main.go:10 +0x19"}

// wantAbort checks the master's answer to a silent worker: EventHung, then
// SIGCONT (it may be stopped) and SIGABRT (a stack dump), in that order.
func wantAbort(t *testing.T, ev *preforktest.Events, w *preforktest.Worker, timeout time.Duration) {
	t.Helper()
	for _, want := range []syscall.Signal{syscall.SIGCONT, syscall.SIGABRT} {
		if sig := w.WaitSignal(t); sig != want {
			t.Fatalf("silent worker got %v, want %v", sig, want)
		}
	}
	if e := ev.Wait(t, prefork.EventHung, nil); e.Generation != w.Generation || e.Delay != timeout {
		t.Fatalf("hung event %+v", e)
	}
}

func exitOf(t *testing.T, ev *preforktest.Events, w *preforktest.Worker) prefork.Event {
	t.Helper()
	return ev.Wait(t, prefork.EventExited, func(e prefork.Event) bool { return e.Generation == w.Generation })
}

// A hung worker dumps its stacks and exits (status 2, as the runtime
// does): its exit is unexpected and carries the dump, the kill that would
// have followed is cancelled, and the slot restarts.
func TestHungWorkerDumpsItsStacks(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1, HeartbeatTimeout: 5 * time.Second})
	w := r.boot()
	r.clk.WaitTimer(t, 5*time.Second)
	r.clk.Advance(5 * time.Second)
	wantAbort(t, r.ev, w, 5*time.Second)
	w.Exit(2, abortDump...)
	if e := exitOf(t, r.ev, w); e.Expected || e.Exit.Code != 2 || !slices.Equal(e.Exit.Stderr, abortDump) {
		t.Fatalf("exit event %+v, want unexpected, status 2, with the dump", e)
	}
	r.boot() // at once: it had served
	if p := r.clk.Pending(); slices.Contains(p, killGrace) {
		t.Fatalf("the kill of the exited worker is still armed: %v", p)
	}
	r.finish(true)
	if n := countKind(r.ev, prefork.EventKilled); n != 0 {
		t.Fatalf("%d kills", n)
	}
}

// A hung worker that does not exit on SIGABRT is killed killGrace later.
// Its heartbeat, queued behind the decision (SIGCONT resumed it), does not
// revive it: it would re-arm the heartbeat deadline of a dying worker.
func TestHungWorkerKilledAfterGrace(t *testing.T) {
	h := newHeldRig(t, prefork.Options{Workers: 1, HeartbeatTimeout: 5 * time.Second})
	w := h.boot()
	h.clk.WaitTimer(t, 5*time.Second)
	h.hold()
	h.clk.Advance(5 * time.Second)
	h.queued(1)
	if err := w.Heartbeat(1, 0); err != nil {
		t.Fatal(err)
	}
	h.queued(2)
	h.release()
	wantAbort(t, h.ev, w, 5*time.Second)
	h.barrier()
	if p := h.clk.Pending(); !slices.Equal(p, []time.Duration{killGrace}) {
		t.Fatalf("pending timers %v, want only the kill in %v", p, killGrace)
	}
	h.clk.Advance(killGrace)
	if sig := w.WaitSignal(t); sig != syscall.SIGKILL {
		t.Fatalf("got %v, want SIGKILL", sig)
	}
	if e := h.ev.Wait(t, prefork.EventKilled, nil); e.Generation != w.Generation || e.Delay != killGrace {
		t.Fatalf("killed event %+v", e)
	}
	if e := exitOf(t, h.ev, w); e.Expected {
		t.Fatalf("exit event %+v, want unexpected", e)
	}
	h.boot()
	h.finish(true)
}

// A stop that comes while a hung worker dies does not drain it, nor put
// its kill off to the drain's deadline (GracefulTimeout + killGrace); its
// exit is still unexpected, so its stderr is logged.
func TestStopDuringHungWorkerKeepsItsKill(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 2, HeartbeatTimeout: 5 * time.Second, GracefulTimeout: 30 * time.Second})
	ok := r.boot()
	hung := r.boot()
	r.clk.WaitTimer(t, 5*time.Second)
	r.clk.Advance(4 * time.Second)
	if err := ok.Heartbeat(1, 0); err != nil {
		t.Fatal(err)
	}
	r.clk.WaitTimer(t, 5*time.Second) // ok's deadline re-armed; hung's is 1 s away
	r.clk.Advance(time.Second)
	wantAbort(t, r.ev, hung, 5*time.Second)
	prefork.Do(r.m, signals.Shutdown)
	ok.WaitCloseListeners(t)
	hung.WaitCloseListeners(t)
	// hung's answer does not count: the stop waits closeListenersWait for
	// its socket to close with it, then drains ok.
	r.clk.WaitTimer(t, time.Second)
	r.clk.Advance(time.Second)
	if st := ok.WaitStop(t); !st.Drain {
		t.Fatalf("ok told %+v", st)
	}
	ok.Exit(0)
	r.clk.Advance(time.Second) // killGrace after the SIGABRT
	if sig := hung.WaitSignal(t); sig != syscall.SIGKILL {
		t.Fatalf("got %v, want SIGKILL", sig)
	}
	if e := exitOf(t, r.ev, hung); e.Expected {
		t.Fatalf("exit event %+v, want unexpected", e)
	}
	if err := r.result(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	for _, e := range r.ev.All() {
		if e.Kind == prefork.EventDraining && e.Generation == hung.Generation {
			t.Fatal("the hung worker was drained")
		}
	}
}

// A reload while a hung worker dies replaces it once: its replacement
// takes the slot, the dying worker is not drained, and its exit, with the
// dump, is logged as unexpected without restarting the slot a second time.
func TestReloadWhileHungWorkerDies(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1, HeartbeatTimeout: 5 * time.Second})
	w := r.boot()
	r.clk.WaitTimer(t, 5*time.Second)
	r.clk.Advance(5 * time.Second)
	wantAbort(t, r.ev, w, 5*time.Second)
	prefork.Do(r.m, signals.Reload)
	next := r.boot()
	r.ev.Wait(t, prefork.EventReloadDone, nil)
	w.Exit(2, abortDump...)
	if e := exitOf(t, r.ev, w); e.Expected || !slices.Equal(e.Exit.Stderr, abortDump) {
		t.Fatalf("exit event %+v, want unexpected with the dump", e)
	}
	r.barrier()
	for _, e := range r.ev.All() {
		if e.Kind == prefork.EventRestartScheduled || (e.Kind == prefork.EventDraining && e.Generation == w.Generation) {
			t.Fatalf("unexpected %q for the hung worker; events:\n%s", e.Kind, r.ev)
		}
	}
	if next.Slot != w.Slot {
		t.Fatalf("replacement in slot %d", next.Slot)
	}
	r.finish(true)
}

// A worker a reload drains is on the drain's deadline: falling silent
// then is not hanging.
func TestDrainingWorkerIsNotTakenForHung(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1, HeartbeatTimeout: 5 * time.Second, GracefulTimeout: 30 * time.Second})
	old := r.boot()
	prefork.Do(r.m, signals.Reload)
	w := r.boot()
	if st := old.WaitStop(t); !st.Drain {
		t.Fatalf("old worker told %+v", st)
	}
	r.clk.Advance(4 * time.Second)
	if err := w.Heartbeat(1, 0); err != nil {
		t.Fatal(err)
	}
	r.clk.WaitTimer(t, 5*time.Second) // w's deadline re-armed
	r.clk.Advance(2 * time.Second)    // past old's first deadline
	r.barrier()
	if n := countKind(r.ev, prefork.EventHung); n != 0 {
		t.Fatalf("a draining worker was taken for hung; events:\n%s", r.ev)
	}
	old.Exit(0)
	r.finish(true)
}
