package prefork_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork"
	"github.com/gracefork/gracefork/prefork/preforktest"
)

// outcome runs f in a goroutine and returns where its result arrives.
func outcome(f func() error) <-chan error {
	c := make(chan error, 1)
	go func() { c <- f() }()
	return c
}

// get waits for an outcome.
func awaitOutcome(t *testing.T, c <-chan error) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(preforktest.Patience):
		t.Fatal("no outcome")
		return nil
	}
}

// pending fails if the outcome has arrived.
func pending(t *testing.T, c <-chan error, what string) {
	t.Helper()
	select {
	case err := <-c:
		t.Fatalf("%s returned %v too early", what, err)
	default:
	}
}

func TestReloadReturnsWhenThePassHasFinished(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1})
	old := r.boot()
	r.ev.Wait(t, prefork.EventServing, nil)
	res := outcome(func() error { return r.m.Reload(t.Context()) })
	repl := r.next()
	r.ev.Wait(t, prefork.EventSpawned, func(e prefork.Event) bool { return e.Generation == repl.Generation })
	pending(t, res, "Reload") // only the loop answers, after the replacement's ready
	repl.Ready()
	if err := awaitOutcome(t, res); err != nil {
		t.Fatalf("Reload = %v, want nil", err)
	}
	if countKind(r.ev, prefork.EventReloadDone) != 1 {
		t.Fatalf("Reload returned before the reload was done:\n%s", r.ev)
	}
	old.WaitStop(t)
	old.Exit(0)
	r.finish(true)
}

func TestReloadReturnsTheBootFailure(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1})
	r.boot()
	r.ev.Wait(t, prefork.EventServing, nil)
	res := outcome(func() error { return r.m.Reload(t.Context()) })
	r.next().Exit(3, "panic: bad config")
	err := awaitOutcome(t, res)
	var be *prefork.BootError
	if !errors.As(err, &be) || be.Exit.Code != 3 || !strings.Contains(err.Error(), "bad config") {
		t.Fatalf("Reload = %v, want the new worker's *BootError", err)
	}
	r.finish(true)
}

// A Reload asked during a pass waits for the further pass that covers it.
func TestReloadDuringReloadWaitsForTheNextPass(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1})
	r.boot()
	r.ev.Wait(t, prefork.EventServing, nil)
	first := outcome(func() error { return r.m.Reload(t.Context()) })
	a := r.next()
	second := outcome(func() error { return r.m.Reload(t.Context()) })
	r.ev.Wait(t, prefork.EventReloadQueued, nil)
	a.Ready()
	if err := awaitOutcome(t, first); err != nil {
		t.Fatalf("first Reload = %v", err)
	}
	b := r.next() // the second pass
	r.ev.Wait(t, prefork.EventSpawned, func(e prefork.Event) bool { return e.Generation == b.Generation })
	pending(t, second, "the second Reload")
	b.Ready()
	if err := awaitOutcome(t, second); err != nil {
		t.Fatalf("second Reload = %v", err)
	}
	if n := countKind(r.ev, prefork.EventReloadDone); n != 2 {
		t.Fatalf("%d reloads done, want 2", n)
	}
	for _, w := range r.ws[:2] {
		w.WaitStop(t)
		w.Exit(0)
	}
	r.finish(true)
}

// A stop ends a reload and the one queued behind it: both callers learn.
func TestReloadEndedByShutdownSaysClosed(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1})
	w := r.boot()
	r.ev.Wait(t, prefork.EventServing, nil)
	first := outcome(func() error { return r.m.Reload(t.Context()) })
	repl := r.next()
	second := outcome(func() error { return r.m.Reload(t.Context()) })
	r.ev.Wait(t, prefork.EventReloadQueued, nil)
	stopped := outcome(func() error { return r.m.Shutdown(t.Context()) })
	for _, c := range []<-chan error{first, second} {
		if err := awaitOutcome(t, c); !errors.Is(err, prefork.ErrServerClosed) {
			t.Fatalf("Reload = %v, want ErrServerClosed", err)
		}
	}
	for _, x := range []*preforktest.Worker{w, repl} {
		x.WaitStop(t)
		x.Exit(0)
	}
	if err := awaitOutcome(t, stopped); err != nil {
		t.Fatal(err)
	}
	if err := r.m.Reload(t.Context()); !errors.Is(err, prefork.ErrServerClosed) {
		t.Fatalf("Reload after the stop = %v, want ErrServerClosed", err)
	}
}

func TestUpgradeReportsItsOutcome(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1})
	up := newFakeUpgrade(r)
	w := r.next()
	if err := r.m.Upgrade(t.Context()); !errors.Is(err, prefork.ErrUpgradeRefused) || !strings.Contains(err.Error(), "not all ready") {
		t.Fatalf("Upgrade before serving = %v, want a refusal", err)
	}
	w.Ready()
	r.ev.Wait(t, prefork.EventServing, nil)

	res := outcome(func() error { return r.m.Upgrade(t.Context()) })
	<-up.calls
	up.verdict <- errors.New("new child pid=7 exited: exit status 1")
	if err := awaitOutcome(t, res); err == nil || errors.Is(err, prefork.ErrUpgradeRefused) || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("failed Upgrade = %v, want the failure", err)
	}

	res = outcome(func() error { return r.m.Upgrade(t.Context()) })
	<-up.calls
	pending(t, res, "Upgrade")
	up.verdict <- nil
	if err := awaitOutcome(t, res); err != nil {
		t.Fatalf("Upgrade = %v, want nil after the handover", err)
	}
	r.finishAfterHandover()
}

func TestShutdownReturnsWhenTheWorkersAreGone(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 2})
	a, b := r.boot(), r.boot()
	res := outcome(func() error { return r.m.Shutdown(t.Context()) })
	a.WaitCloseListeners(t)
	b.WaitCloseListeners(t)
	a.WaitStop(t)
	a.Exit(0)
	b.WaitStop(t)
	pending(t, res, "Shutdown") // b is still there
	b.Exit(0)
	if err := awaitOutcome(t, res); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	// Run's body has returned (Shutdown waits for that); its result is on
	// its way to the rig's goroutine.
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(preforktest.Patience):
		t.Fatal("Run did not return after Shutdown did")
	}
}

func TestShutdownReturnsWhenItsContextEnds(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1})
	w := r.boot()
	ctx, cancel := context.WithCancel(t.Context())
	res := outcome(func() error { return r.m.Shutdown(ctx) })
	w.WaitStop(t)
	cancel()
	if err := awaitOutcome(t, res); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want context.Canceled", err)
	}
	w.Exit(0) // the shutdown went on
	if err := r.result(); err != nil {
		t.Fatal(err)
	}
}

func TestRunContextEndIsAGracefulStop(t *testing.T) {
	sp, ev := preforktest.NewSpawner(), &preforktest.Events{}
	srv, err := prefork.New(nil, prefork.Options{Addr: "127.0.0.1:0", Workers: 1, Spawner: sp, Clock: preforktest.NewClock(), OnEvent: ev.Record})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := outcome(func() error { return srv.Run(ctx) })
	w := sp.Next(t)
	w.Ready()
	ev.Wait(t, prefork.EventServing, nil)
	cancel()
	if st := w.WaitStop(t); !st.Drain {
		t.Fatalf("worker told %+v, want a drain", st)
	}
	w.Exit(0)
	if err := awaitOutcome(t, done); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}

// Close releases the sockets of a master that never ran: the address can
// be bound again, the unix socket file is gone, and Run refuses.
func TestCloseBeforeRunReleasesTheSockets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.sock")
	srv, err := prefork.New(nil, prefork.Options{Addr: "127.0.0.1:0", Addrs: []string{"unix:" + path}})
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addrs()[0].String()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the address is still held after Close: %v", err)
	}
	ln.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("unix socket file left after Close: %v", err)
	}
	if err := srv.Run(t.Context()); !errors.Is(err, prefork.ErrServerClosed) {
		t.Fatalf("Run after Close = %v, want ErrServerClosed", err)
	}
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown after Close = %v", err)
	}
}

func TestScale(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1})
	r.boot()
	for _, n := range []int{-1, prefork.MaxWorkers + 1} {
		var oe *prefork.OptionError
		if err := r.m.Scale(n); !errors.As(err, &oe) {
			t.Fatalf("Scale(%d) = %v, want an *OptionError", n, err)
		}
	}
	if err := r.m.Scale(3); err != nil {
		t.Fatal(err)
	}
	r.boot()
	r.boot()
	r.ev.Wait(t, prefork.EventScaled, func(e prefork.Event) bool { return e.Workers == 3 })
	if err := r.m.Scale(0); err != nil {
		t.Fatal(err)
	}
	r.ev.Wait(t, prefork.EventScaled, func(e prefork.Event) bool { return e.Workers == 0 })
	for _, w := range r.ws {
		if st := w.WaitStop(t); !st.Drain {
			t.Fatalf("Scale(0) told a worker %+v, want a drain", st)
		}
		w.Exit(0)
	}
	if err := r.m.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := r.m.Scale(2); !errors.Is(err, prefork.ErrServerClosed) {
		t.Fatalf("Scale after the stop = %v, want ErrServerClosed", err)
	}
}

// Reload returns only once the pass is logged and READY=1 sent. OnEvent,
// at "reload done", gives Reload a moment to return: it must not. (Its
// waiter used to be answered first, and a caller could miss the event.)
func TestReloadReturnsAfterReloadDoneIsLogged(t *testing.T) {
	var res <-chan error
	early := make(chan error, 1)
	r := newRigWith(t, prefork.Options{Workers: 1}, func(e prefork.Event) {
		if e.Kind == prefork.EventReloadDone {
			select {
			case err := <-res:
				early <- err
			case <-time.After(200 * time.Millisecond): // a bound: with the fix nothing comes
			}
		}
	})
	r.boot()
	r.ev.Wait(t, prefork.EventServing, nil)
	res = outcome(func() error { return r.m.Reload(t.Context()) })
	r.next().Ready()
	r.ev.Wait(t, prefork.EventReloadDone, nil)
	select {
	case err := <-early:
		t.Fatalf("Reload returned %v before \"reload done\" was logged", err)
	default:
	}
	if err := awaitOutcome(t, res); err != nil {
		t.Fatal(err)
	}
	r.finish(true)
}
