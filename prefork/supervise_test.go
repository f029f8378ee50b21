package prefork_test

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork"
	"github.com/gracefork/gracefork/prefork/preforktest"
	"github.com/gracefork/gracefork/signals"
)

// rig is a master driven by fakes: no processes, no real time.
type rig struct {
	t    *testing.T
	sp   *preforktest.Spawner
	clk  *preforktest.Clock
	ev   *preforktest.Events
	m    *prefork.Server
	done chan error
	ws   []*preforktest.Worker // every worker spawned, in order
}

func newRig(t *testing.T, opts prefork.Options) *rig {
	t.Helper()
	return newRigWith(t, opts, nil)
}

// newRigWith is newRig with a hook that sees each event after the recorder.
func newRigWith(t *testing.T, opts prefork.Options, hook func(prefork.Event)) *rig {
	t.Helper()
	r := &rig{t: t, sp: preforktest.NewSpawner(), clk: preforktest.NewClock(), ev: &preforktest.Events{}, done: make(chan error, 1)}
	opts.Addr = "127.0.0.1:0"
	opts.Spawner, opts.Clock, opts.OnEvent = r.sp, r.clk, r.ev.Record
	if hook != nil {
		opts.OnEvent = func(e prefork.Event) { r.ev.Record(e); hook(e) }
	}
	if opts.LogFile == "" {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	m, err := prefork.New(nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	r.m = m
	go func() { r.done <- m.Run(context.Background()) }()
	return r
}

// waitRestart waits for the master to schedule a restart and lets its
// backoff run out.
func (r *rig) waitRestart() {
	r.t.Helper()
	e := r.ev.Wait(r.t, prefork.EventRestartScheduled, nil)
	if e.Delay > 0 {
		r.clk.WaitTimer(r.t, e.Delay)
		r.clk.Advance(e.Delay)
	}
}

// next returns the master's next spawned worker.
func (r *rig) next() *preforktest.Worker {
	r.t.Helper()
	w := r.sp.Next(r.t)
	r.ws = append(r.ws, w)
	return w
}

// boot returns the next spawned worker once the master has seen it ready.
func (r *rig) boot() *preforktest.Worker {
	r.t.Helper()
	w := r.next()
	if err := w.Ready(); err != nil {
		r.t.Fatal(err)
	}
	r.ev.Wait(r.t, prefork.EventReady, func(e prefork.Event) bool { return e.Generation == w.Generation })
	return w
}

func (r *rig) result() error {
	r.t.Helper()
	select {
	case err := <-r.done:
		return err
	case <-time.After(preforktest.Patience):
		r.t.Fatalf("Run did not return; events:\n%s", r.ev)
		return nil
	}
}

func TestStartsWorkersInSlotsAndShutsDown(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 3, GracefulTimeout: 7 * time.Second})
	var ws []*preforktest.Worker
	for i := range 3 {
		w := r.boot()
		if w.Slot != i || w.Generation != i+1 || w.Listeners != 1 {
			t.Fatalf("worker %d: slot %d gen %d listeners %d", i, w.Slot, w.Generation, w.Listeners)
		}
		if !hasMarker(w.Env) {
			t.Fatalf("worker env lacks %s", prefork.MarkerEnv)
		}
		ws = append(ws, w)
	}
	prefork.Do(r.m, signals.Shutdown)
	for _, w := range ws {
		if st := w.WaitStop(t); !st.Drain || st.Deadline != 7*time.Second {
			t.Fatalf("worker %d told %+v, want drain within 7s", w.Slot, st)
		}
		w.Exit(0)
	}
	if err := r.result(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	exits := 0
	for _, e := range r.ev.All() { // Run has returned: every event is in
		if e.Kind == prefork.EventExited {
			exits++
			if !e.Expected {
				t.Errorf("exit of gen %d not marked expected", e.Generation)
			}
		}
	}
	if exits != 3 {
		t.Errorf("%d exit events, want 3", exits)
	}
	r.ev.Wait(t, prefork.EventStopped, nil)
}

func hasMarker(env []string) bool {
	n := 0
	for _, kv := range env {
		if strings.HasPrefix(kv, prefork.MarkerEnv+"=") {
			n++
		}
	}
	return n == 1
}

func TestCrashRestartsSameSlotWithBackoff(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 2})
	r.boot()
	w := r.boot() // slot 1

	// First crash: the slot restarts at once.
	w.Exit(1, "panic: oops")
	e := r.ev.Wait(t, prefork.EventExited, func(e prefork.Event) bool { return e.Generation == w.Generation })
	if e.Expected || e.Exit.Code != 1 || e.Exit.Stderr[0] != "panic: oops" {
		t.Fatalf("exit event %+v", e)
	}
	if e := r.ev.Wait(t, prefork.EventRestartScheduled, nil); e.Slot != 1 || e.Delay != 0 {
		t.Fatalf("first restart: slot %d in %v, want slot 1 at once", e.Slot, e.Delay)
	}
	w = r.boot()
	if w.Slot != 1 {
		t.Fatalf("replacement in slot %d", w.Slot)
	}

	// Crashes in a row back off: 100ms, 200ms, 400ms.
	for _, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
		w.Signal(syscall.SIGKILL)
		if e := r.ev.Wait(t, prefork.EventRestartScheduled, nil); e.Delay != want {
			t.Fatalf("restart in %v, want %v", e.Delay, want)
		}
		r.clk.WaitTimer(t, want)
		r.clk.Advance(want - time.Nanosecond)
		if n := len(r.ev.All()); r.ev.All()[n-1].Kind == prefork.EventSpawned {
			t.Fatalf("respawned before the backoff ran out")
		}
		r.clk.Advance(time.Nanosecond)
		w = r.boot()
	}

	// A worker that stayed up clears the count: the next crash restarts at once.
	r.clk.Advance(10 * time.Second)
	w.Exit(2)
	if e := r.ev.Wait(t, prefork.EventRestartScheduled, nil); e.Delay != 0 {
		t.Fatalf("restart after a stable run in %v, want 0", e.Delay)
	}
	r.boot()
	r.finish(false)
}

// finish stops the master (drain or quit), answers every live worker's
// stop by exiting, and checks Run returns nil.
func (r *rig) finish(graceful bool) {
	r.t.Helper()
	if graceful {
		prefork.Do(r.m, signals.Shutdown)
	} else {
		prefork.Do(r.m, signals.Quit)
	}
	for _, w := range r.ws {
		if w.Exited() {
			continue
		}
		if st := w.WaitStop(r.t); st.Drain != graceful {
			r.t.Fatalf("worker gen %d told %+v, want drain=%v", w.Generation, st, graceful)
		}
		w.Exit(0)
	}
	if err := r.result(); err != nil {
		r.t.Fatalf("Run = %v, want nil", err)
	}
}

func TestBootFailuresGiveUpWithStderr(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 2, MaxBootFailures: 3})
	good := r.boot() // slot 0 serves
	_ = good
	for i := range 3 {
		w := r.next()
		if w.Slot != 1 {
			t.Fatalf("attempt %d in slot %d", i, w.Slot)
		}
		w.Exit(2, "starting", "panic: cannot open config.yaml")
		if i < 2 {
			r.waitRestart()
		}
	}
	// Giving up drains the worker that does serve.
	if st := good.WaitStop(t); !st.Drain {
		t.Fatalf("serving worker told %+v on give-up, want a drain", st)
	}
	good.Exit(0)
	err := r.result()
	var be *prefork.BootError
	if !errors.As(err, &be) {
		t.Fatalf("Run = %v, want *BootError", err)
	}
	if be.Slot != 1 || be.Attempts != 3 || be.Exit.Code != 2 {
		t.Fatalf("BootError %+v", be)
	}
	for _, want := range []string{"slot 1 failed to boot 3 times", "exit status 2", "panic: cannot open config.yaml"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestBootTimeoutKillsAndCounts(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1, BootTimeout: 5 * time.Second, MaxBootFailures: 2})
	for i := range 2 {
		w := r.next()
		r.clk.WaitTimer(t, 5*time.Second)
		r.clk.Advance(5 * time.Second)
		if sig := w.WaitSignal(t); sig != syscall.SIGKILL {
			t.Fatalf("attempt %d got %v, want SIGKILL", i, sig)
		}
		r.ev.Wait(t, prefork.EventBootTimeout, nil)
		if i == 0 {
			e := r.ev.Wait(t, prefork.EventRestartScheduled, nil)
			if e.Delay != 0 {
				t.Fatalf("first restart in %v", e.Delay)
			}
		}
	}
	var be *prefork.BootError
	if err := r.result(); !errors.As(err, &be) || !be.TimedOut || !strings.Contains(err.Error(), "not ready within BootTimeout") {
		t.Fatalf("Run = %v, want a timed-out BootError", err)
	}
}

func TestReadyResetsBootFailures(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1, MaxBootFailures: 2})
	r.next().Exit(1) // one failed boot
	r.ev.Wait(t, prefork.EventRestartScheduled, nil)
	w := r.boot() // then a good one
	w.Exit(1)     // crashes after ready: a crash, not a boot failure
	r.waitRestart()
	r.next().Exit(1) // one failed boot again: not yet two in a row
	r.waitRestart()
	r.boot()
	r.finish(true)
}

func TestGracefulStragglerIsKilled(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1, GracefulTimeout: 3 * time.Second})
	w := r.boot()
	prefork.Do(r.m, signals.Shutdown)
	w.WaitStop(t)
	r.clk.WaitTimer(t, 5*time.Second) // the deadline plus the master's grace
	r.clk.Advance(5 * time.Second)
	if sig := w.WaitSignal(t); sig != syscall.SIGKILL {
		t.Fatalf("straggler got %v", sig)
	}
	if err := r.result(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	r.ev.Wait(t, prefork.EventKilled, nil)
}

func TestQuitDuringDrainHurries(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1})
	w := r.boot()
	prefork.Do(r.m, signals.Shutdown)
	if st := w.WaitStop(t); !st.Drain {
		t.Fatalf("told %+v", st)
	}
	prefork.Do(r.m, signals.Quit)
	if st := w.WaitStop(t); st.Drain {
		t.Fatalf("after quit told %+v, want quit", st)
	}
	w.Exit(0)
	if err := r.result(); err != nil {
		t.Fatal(err)
	}
}

func TestNoRestartDuringShutdown(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 2})
	a, b := r.boot(), r.boot()
	prefork.Do(r.m, signals.Shutdown)
	a.WaitStop(t)
	a.Exit(1) // crashes while draining: not restarted
	b.WaitStop(t)
	b.Exit(0)
	if err := r.result(); err != nil {
		t.Fatal(err)
	}
	for _, e := range r.ev.All() {
		if e.Kind == prefork.EventSpawned && e.Generation > 2 {
			t.Fatalf("spawned gen %d during shutdown", e.Generation)
		}
	}
}

func TestProtocolErrorKillsWorker(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1})
	w := r.boot()
	w.SendRaw([]byte("GET / HTTP/1.1\r\n\r\n"))
	if sig := w.WaitSignal(t); sig != syscall.SIGKILL {
		t.Fatalf("got %v", sig)
	}
	e := r.ev.Wait(t, prefork.EventProtocolError, nil)
	if !strings.Contains(e.Err.Error(), "bad magic") {
		t.Fatalf("protocol error %v", e.Err)
	}
	r.boot() // restarted as a crash
	r.finish(true)
}

func TestSpawnFailureCountsAsBootFailure(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1, MaxBootFailures: 2})
	boom := errors.New("fork/exec /gone: no such file or directory")
	r.sp.FailNext(boom)
	r.sp.FailNext(boom)
	err := r.result()
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("Run = %v, want the spawn error", err)
	}
}

func TestHeartbeatIsAccepted(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1})
	w := r.boot()
	if err := w.Heartbeat(10, 2); err != nil {
		t.Fatal(err)
	}
	r.finish(true)
	for _, e := range r.ev.All() {
		if e.Kind == prefork.EventProtocolError {
			t.Fatalf("heartbeat taken for a protocol error: %v", e.Err)
		}
	}
}

// Each heartbeat is answered with the pool's totals, counted over the
// serving workers from their latest heartbeats, with the fewest
// connections one holds: what a worker needs to keep to its share.
func TestHeartbeatAnsweredWithPool(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 3})
	ws := []*preforktest.Worker{r.boot(), r.boot(), r.boot()}
	for i, active := range []uint32{5, 2, 9} {
		if err := ws[i].Heartbeat(100, active); err != nil {
			t.Fatal(err)
		}
		ws[i].WaitPool(t) // handled, in this order
	}
	if err := ws[0].Heartbeat(200, 6); err != nil {
		t.Fatal(err)
	}
	if got, want := ws[0].WaitPool(t), (preforktest.Pool{Conns: 17, Workers: 3, Fewest: 2}); got != want {
		t.Errorf("pool %+v, want %+v", got, want)
	}
	r.finish(true)
}

// With NoBalance the master answers no heartbeat with the pool's totals,
// so no worker holds back or sends a client away; everything else goes
// on (the heartbeat is recorded, a reload replaces the worker).
func TestNoBalanceTellsNoPool(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 2, NoBalance: true})
	ws := []*preforktest.Worker{r.boot(), r.boot()}
	for i, active := range []uint32{5, 2} {
		if err := ws[i].Heartbeat(100+uint64(i), active); err != nil {
			t.Fatal(err)
		}
	}
	// Status is answered by the loop: once it shows both heartbeats, the
	// master has handled them, and any Pool it sent is on its way.
	r.waitStatus(func(st []prefork.WorkerStatus) bool {
		return len(st) == 2 && st[0].Requests == 100 && st[1].Requests == 101
	})
	prefork.Do(r.m, signals.Reload)
	for _, w := range ws {
		r.boot() // the replacement; then the old worker is told to drain
		w.WaitStop(t)
		if n := w.PoolsTold(); n != 0 {
			t.Errorf("worker slot %d was told the pool %d times, want none with NoBalance", w.Slot, n)
		}
		w.Exit(0)
	}
	r.finish(true)
}

// waitStatus polls Status until ok holds: a heartbeat has no event to
// wait on.
func (r *rig) waitStatus(ok func([]prefork.WorkerStatus) bool) []prefork.WorkerStatus {
	r.t.Helper()
	deadline := time.Now().Add(preforktest.Patience)
	for {
		st := r.m.Status()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("Status() = %+v", st)
		}
		time.Sleep(time.Millisecond) // the worker's reader is posting; no event to wait on
	}
}

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

// A worker that says why it fails before it exits (a failed WorkerInit)
// has its exit quote it, and so does the boot error Run returns: what it
// said is read before its exit is judged, however quickly it exits.
func TestBootFailureQuotesWhatTheWorkerSaid(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1, MaxBootFailures: 2})
	for i := range 2 {
		w := r.next()
		if err := w.Fail("WorkerInit: dial tcp 10.0.0.5:5432: connection refused"); err != nil {
			t.Fatal(err)
		}
		w.Exit(1, "some log line")
		e := r.ev.Wait(t, prefork.EventExited, func(e prefork.Event) bool { return e.Generation == w.Generation })
		if e.Exit.Failure != "WorkerInit: dial tcp 10.0.0.5:5432: connection refused" {
			t.Fatalf("exit %d: Failure %q", i, e.Exit.Failure)
		}
		if i == 0 {
			r.waitRestart()
		}
	}
	var be *prefork.BootError
	err := r.result()
	if !errors.As(err, &be) || be.Exit.Failure == "" {
		t.Fatalf("Run = %v, want a BootError with the worker's failure", err)
	}
	want := "prefork: worker slot 0 failed to boot 2 times in a row; last attempt: exit status 1: WorkerInit: dial tcp 10.0.0.5:5432: connection refused; its last stderr lines:\n\tsome log line"
	if err.Error() != want {
		t.Fatalf("Run = %q, want %q", err, want)
	}
}
