//go:build unix

package prefork_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork"
	"github.com/gracefork/gracefork/prefork/preforktest"
	"github.com/gracefork/gracefork/signals"
)

// heldRig is a rig whose loop the test can stall, as a blocked log write
// would: the first ReopenLogs action's event blocks in OnEvent until
// release. Events that arrive meanwhile queue up in the order the test
// makes them.
type heldRig struct {
	*rig
	held, free chan struct{}
	once       sync.Once
}

func newHeldRig(t *testing.T, opts prefork.Options) *heldRig {
	t.Helper()
	h := &heldRig{held: make(chan struct{}), free: make(chan struct{})}
	r := &rig{t: t, sp: preforktest.NewSpawner(), clk: preforktest.NewClock(), ev: &preforktest.Events{}, done: make(chan error, 1)}
	opts.Addr = "127.0.0.1:0"
	opts.Spawner, opts.Clock = r.sp, r.clk
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	opts.OnEvent = func(e prefork.Event) {
		r.ev.Record(e)
		if e.Kind == prefork.EventAction && e.Action == signals.ReopenLogs {
			h.once.Do(func() { close(h.held); <-h.free })
		}
	}
	m, err := prefork.New(nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	r.m = m
	h.rig = r
	go func() { r.done <- m.Run(context.Background()) }()
	return h
}

// hold stalls the loop and returns once it is stalled.
func (h *heldRig) hold() {
	prefork.Do(h.m, signals.ReopenLogs)
	<-h.held
	h.ev.Wait(h.t, prefork.EventAction, func(e prefork.Event) bool { return e.Action == signals.ReopenLogs })
}

// queued waits until n events wait behind the stalled loop.
func (h *heldRig) queued(n int) {
	h.t.Helper()
	deadline := time.Now().Add(preforktest.Patience)
	for prefork.Queued(h.m) < n {
		if time.Now().After(deadline) {
			h.t.Fatalf("%d events queued, want %d", prefork.Queued(h.m), n)
		}
		time.Sleep(time.Millisecond) // a goroutine of the master's is posting; no event to wait on
	}
}

func (h *heldRig) release() { close(h.free) }

// Item 5: the loop stalls; a heartbeat queues, then the old deadline fires
// behind it. The heartbeat re-arms the deadline, so the stale kill must not
// run.
func TestStaleHeartbeatDeadlineDoesNotKill(t *testing.T) {
	h := newHeldRig(t, prefork.Options{Workers: 1, HeartbeatTimeout: 5 * time.Second})
	w := h.boot()
	h.clk.WaitTimer(t, 5*time.Second)
	h.hold()
	if err := w.Heartbeat(1, 0); err != nil {
		t.Fatal(err)
	}
	h.queued(1)
	h.clk.Advance(5 * time.Second) // the deadline the heartbeat replaces, queued behind it
	h.queued(2)
	h.release()
	h.barrier()
	if w.Exited() || countKind(h.ev, prefork.EventHung) != 0 {
		t.Fatalf("a worker whose heartbeat was queued was killed as hung; events:\n%s", h.ev)
	}
	// The re-armed deadline still works.
	h.clk.WaitTimer(t, 5*time.Second)
	h.clk.Advance(5 * time.Second)
	if sig := w.WaitSignal(t); sig != syscall.SIGCONT {
		t.Fatalf("silent worker got %v", sig)
	}
	h.ev.Wait(t, prefork.EventHung, nil)
	w.Exit(2, "SIGABRT: abort")
	h.boot()
	h.finish(true)
}

// Item 16: BootTimeout fires, and the worker's "ready" queues behind it.
// The worker is killed; it must not count as ready, nor be announced.
func TestReadyQueuedBehindBootTimeoutDoesNotCount(t *testing.T) {
	h := newHeldRig(t, prefork.Options{Workers: 1, BootTimeout: 5 * time.Second})
	w := h.next()
	h.clk.WaitTimer(t, 5*time.Second)
	h.hold()
	h.clk.Advance(5 * time.Second)
	h.queued(1)
	if err := w.Ready(); err != nil {
		t.Fatal(err)
	}
	h.queued(2)
	h.release()
	if sig := w.WaitSignal(t); sig != syscall.SIGKILL {
		t.Fatalf("got %v, want SIGKILL", sig)
	}
	e := h.ev.Wait(t, prefork.EventExited, func(e prefork.Event) bool { return e.Generation == w.Generation })
	if e.Expected {
		t.Fatal("the killed worker's exit counted as expected")
	}
	w2 := h.boot() // restarted as a failed boot
	h.ev.Wait(t, prefork.EventServing, nil)
	for _, e := range h.ev.All() {
		if e.Kind == prefork.EventReady && e.Generation == w.Generation {
			t.Fatalf("the worker killed at BootTimeout counted as ready; events:\n%s", h.ev)
		}
	}
	if n := countKind(h.ev, prefork.EventServing); n != 1 {
		t.Fatalf("%d serving events, want 1 (for gen %d)", n, w2.Generation)
	}
	h.finish(true)
}

// A worker that served for a second and is then killed (OOM killer,
// kill -9) restarts at once, every time: no backoff for healthy workers.
func TestServedWorkerRestartsAtOnce(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1})
	w := r.boot()
	for i := range 6 {
		r.clk.Advance(time.Second)
		w.Signal(syscall.SIGKILL)
		if e := r.ev.Wait(t, prefork.EventRestartScheduled, nil); e.Delay != 0 {
			t.Fatalf("kill %d: restart in %v, want at once", i+1, e.Delay)
		}
		w = r.boot()
	}
	r.finish(true)
}

// Workers that die within a second of ready back off, as a boot loop does.
func TestYoungCrashesBackOff(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1})
	w := r.boot()
	for _, want := range []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
		r.clk.Advance(time.Second - time.Nanosecond)
		w.Exit(1, "panic: at first request")
		if e := r.ev.Wait(t, prefork.EventRestartScheduled, nil); e.Delay != want {
			t.Fatalf("restart in %v, want %v", e.Delay, want)
		}
		if want > 0 {
			r.clk.WaitTimer(t, want)
			r.clk.Advance(want)
		}
		w = r.boot()
	}
	r.finish(true)
}

// Item 9a: after "serving", a slot that cannot be refilled while another
// serves degrades: no give-up, a retry every 10s, an error event each time,
// STATUS= for systemd; a worker of its own ready again restores it.
func TestUnfillableSlotDegradesWhileOthersServe(t *testing.T) {
	ns := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", ns.path)
	r := newRig(t, prefork.Options{Workers: 2, MaxBootFailures: 2})
	good := r.boot()
	victim := r.boot()
	r.ev.Wait(t, prefork.EventServing, nil)
	victim.Signal(syscall.SIGKILL)
	r.waitRestart()
	r.next().Exit(2, "fork/exec /app: no such file or directory")
	r.waitRestart()
	for range 2 {
		r.next().Exit(2, "fork/exec /app: no such file or directory")
		e := r.ev.Wait(t, prefork.EventDegraded, nil)
		var be *prefork.BootError
		if e.Slot != 1 || e.Workers != 1 || !errors.As(e.Err, &be) || e.Delay != 10*time.Second {
			t.Fatalf("degraded event %+v", e)
		}
		if m := ns.next("STATUS"); !strings.Contains(m["STATUS"], "degraded") || !strings.Contains(m["STATUS"], "1 of 2") {
			t.Fatalf("STATUS %q", m["STATUS"])
		}
		r.waitRestart() // at the longest backoff
	}
	if good.Exited() || countKind(r.ev, prefork.EventGivingUp) != 0 {
		t.Fatalf("gave up while a worker serves; events:\n%s", r.ev)
	}
	select {
	case err := <-r.done:
		t.Fatalf("Run returned %v while a worker serves", err)
	default:
	}
	r.boot()
	r.ev.Wait(t, prefork.EventRestored, func(e prefork.Event) bool { return e.Slot == 1 })
	if m := ns.next("STATUS"); m["STATUS"] != "serving with 2 workers" {
		t.Fatalf("STATUS after recovery %q", m["STATUS"])
	}
	r.finish(true)
}

// Item 9a: once no slot can serve, the master gives up with a BootError.
func TestEverySlotFailingGivesUp(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 2, MaxBootFailures: 1})
	a, b := r.boot(), r.boot()
	b.Signal(syscall.SIGKILL)
	r.waitRestart()
	r.next().Exit(2, "boom")
	r.ev.Wait(t, prefork.EventDegraded, nil) // a serves on
	r.ev.Wait(t, prefork.EventRestartScheduled, func(e prefork.Event) bool { return e.Delay == 10*time.Second })
	a.Signal(syscall.SIGKILL)
	r.waitRestart() // at once
	r.next().Exit(2, "boom")
	var be *prefork.BootError
	if err := r.result(); !errors.As(err, &be) || be.Slot != 0 {
		t.Fatalf("Run = %v, want slot 0's BootError", err)
	}
}

// With Type=notify-reload, every reload systemd sees start ends with
// READY=1: a HUP that brings back the workers WINCH stopped, and a reload
// that WINCH cuts short.
func TestReloadsAfterAndBeforeStopWorkersTellSystemd(t *testing.T) {
	ns := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", ns.path)
	r := newRig(t, prefork.Options{Workers: 2})
	a, b := r.boot(), r.boot()
	ns.next("READY")
	prefork.Do(r.m, signals.StopWorkers)
	for _, w := range []*preforktest.Worker{a, b} {
		w.WaitStop(t)
		w.Exit(0)
	}
	prefork.Do(r.m, signals.Reload)
	ns.next("RELOADING")
	r.boot()
	r.boot()
	if m := ns.next("READY"); m["READY"] != "1" {
		t.Fatalf("after the reload: %v", m)
	}
	r.ev.Wait(t, prefork.EventReloadDone, nil)

	prefork.Do(r.m, signals.Reload)
	ns.next("RELOADING")
	r.next() // a replacement boots
	prefork.Do(r.m, signals.StopWorkers)
	ns.next("READY")
	r.finish(true)
}

// Do before Run never blocks its caller; the actions run once Run starts.
func TestDoBeforeRunDoesNotBlock(t *testing.T) {
	r := &rig{t: t, sp: preforktest.NewSpawner(), clk: preforktest.NewClock(), ev: &preforktest.Events{}, done: make(chan error, 1)}
	m, err := prefork.New(nil, prefork.Options{Addr: "127.0.0.1:0", Workers: 1, Spawner: r.sp, Clock: r.clk, OnEvent: r.ev.Record,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	r.m = m
	const n = 200
	did := make(chan struct{})
	go func() {
		for range n {
			prefork.Do(m, signals.ReopenLogs)
		}
		close(did)
	}()
	select {
	case <-did:
	case <-time.After(preforktest.Patience):
		t.Fatal("Do before Run blocked")
	}
	go func() { r.done <- m.Run(context.Background()) }()
	for range n {
		r.ev.Wait(t, prefork.EventAction, func(e prefork.Event) bool { return e.Action == signals.ReopenLogs })
	}
	r.boot()
	r.finish(true)
}
