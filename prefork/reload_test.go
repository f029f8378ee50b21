package prefork_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gracefork/gracefork/prefork"
	"github.com/gracefork/gracefork/prefork/preforktest"
	"github.com/gracefork/gracefork/signals"
)

// live counts the workers the master has started and not seen exit.
func live(ev *preforktest.Events) int {
	n := 0
	for _, e := range ev.All() {
		switch e.Kind {
		case prefork.EventSpawned:
			n++
		case prefork.EventExited:
			n--
		}
	}
	return n
}

// A reload replaces each slot in turn: the new worker is ready before the
// old one is told to drain, and never more than one extra worker boots.
func TestReloadReplacesBeforeRetiring(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 3})
	old := []*preforktest.Worker{r.boot(), r.boot(), r.boot()}
	prefork.Do(r.m, signals.Reload)
	r.ev.Wait(t, prefork.EventReloadStarted, nil)
	for i, o := range old {
		n := r.next()
		if n.Slot != i {
			t.Fatalf("replacement %d in slot %d", i, n.Slot)
		}
		r.ev.Wait(t, prefork.EventSpawned, func(e prefork.Event) bool { return e.Generation == n.Generation })
		if got := live(r.ev); got != 4 {
			t.Fatalf("%d workers alive while slot %d boots its replacement, want 4 (surge 1)", got, i)
		}
		if o.Exited() {
			t.Fatalf("old worker of slot %d gone before its replacement was ready", i)
		}
		n.Ready()
		if st := o.WaitStop(t); !st.Drain {
			t.Fatalf("old worker told %+v", st)
		}
		o.Exit(0)
		r.ev.Wait(t, prefork.EventExited, func(e prefork.Event) bool { return e.Generation == o.Generation })
	}
	if e := r.ev.Wait(t, prefork.EventReloadDone, nil); e.Workers != 3 {
		t.Fatalf("reload done with %d workers", e.Workers)
	}
	r.finish(true)
}

func TestReloadSurge(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 4, MaxSurge: 2})
	for range 4 {
		r.boot()
	}
	prefork.Do(r.m, signals.Reload)
	a, b := r.next(), r.next() // two boot at once
	if a.Slot != 0 || b.Slot != 1 {
		t.Fatalf("surge started slots %d and %d", a.Slot, b.Slot)
	}
	a.Ready()
	r.ev.Wait(t, prefork.EventDraining, func(e prefork.Event) bool { return e.Slot == 0 })
	c := r.next() // slot 2 starts as soon as slot 0 is done
	if c.Slot != 2 {
		t.Fatalf("third replacement in slot %d", c.Slot)
	}
	b.Ready()
	c.Ready()
	r.next().Ready()
	r.ev.Wait(t, prefork.EventReloadDone, nil)
	r.finish(true)
}

// HUPs during a reload coalesce into one more pass, never a pile-up.
func TestReloadsCoalesce(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 2})
	r.boot()
	r.boot()
	prefork.Do(r.m, signals.Reload)
	first := r.next()
	for range 5 {
		prefork.Do(r.m, signals.Reload)
	}
	for range 5 {
		r.ev.Wait(t, prefork.EventReloadQueued, nil)
	}
	first.Ready()
	r.next().Ready()
	r.ev.Wait(t, prefork.EventReloadDone, nil)
	r.ev.Wait(t, prefork.EventReloadStarted, nil) // the one extra pass
	r.next().Ready()
	r.next().Ready()
	r.ev.Wait(t, prefork.EventReloadDone, nil)
	r.finish(true)
	started := 0
	for _, e := range r.ev.All() {
		if e.Kind == prefork.EventReloadStarted {
			started++
		}
	}
	if started != 2 {
		t.Fatalf("%d reload passes for 6 requests, want 2", started)
	}
}

// A new worker that cannot boot stops the reload; the old workers serve on
// and the failure carries the new worker's stderr. It does not count
// towards giving up.
func TestReloadWithBrokenCodeKeepsOldWorkers(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 2, MaxBootFailures: 1})
	a, b := r.boot(), r.boot()
	prefork.Do(r.m, signals.Reload)
	n := r.next()
	n.Exit(2, "panic: syntax error in new config")
	e := r.ev.Wait(t, prefork.EventReloadFailed, nil)
	if !strings.Contains(e.Err.Error(), "panic: syntax error in new config") || !strings.Contains(e.Err.Error(), "exit status 2") {
		t.Fatalf("reload failure %v", e.Err)
	}
	if a.Exited() || b.Exited() {
		t.Fatal("an old worker was stopped by a failed reload")
	}
	// A later reload, with fixed code, goes through.
	prefork.Do(r.m, signals.Reload)
	r.next().Ready()
	a.WaitStop(t)
	a.Exit(0)
	r.next().Ready()
	b.WaitStop(t)
	b.Exit(0)
	r.ev.Wait(t, prefork.EventReloadDone, nil)
	r.finish(true)
}

func TestScaleUpAndDown(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1})
	a := r.boot()
	prefork.Do(r.m, signals.AddWorker)
	b := r.boot()
	if b.Slot != 1 {
		t.Fatalf("added worker in slot %d", b.Slot)
	}
	prefork.Do(r.m, signals.RemoveWorker)
	if st := b.WaitStop(t); !st.Drain {
		t.Fatalf("removed worker told %+v", st)
	}
	b.Exit(0)
	r.ev.Wait(t, prefork.EventExited, func(e prefork.Event) bool { return e.Generation == b.Generation && e.Expected })
	prefork.Do(r.m, signals.RemoveWorker) // refused: the last worker stays
	prefork.Do(r.m, signals.AddWorker)
	c := r.boot()
	if c.Slot != 1 || a.Exited() {
		t.Fatalf("re-added slot %d; first worker exited %v", c.Slot, a.Exited())
	}
	r.finish(true)
	for _, e := range r.ev.All() {
		if e.Kind == prefork.EventScaled && e.Workers < 1 {
			t.Fatalf("scaled to %d", e.Workers)
		}
	}
}

// StopWorkers drains every worker; the master stays, and a reload brings
// back the configured number.
func TestStopWorkersThenReload(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 2})
	a, b := r.boot(), r.boot()
	prefork.Do(r.m, signals.StopWorkers)
	for _, w := range []*preforktest.Worker{a, b} {
		if st := w.WaitStop(t); !st.Drain {
			t.Fatalf("told %+v", st)
		}
		w.Exit(0)
	}
	r.ev.Wait(t, prefork.EventExited, func(e prefork.Event) bool { return e.Generation == 1 })
	r.ev.Wait(t, prefork.EventExited, func(e prefork.Event) bool { return e.Generation == 2 })
	select {
	case err := <-r.done:
		t.Fatalf("Run returned %v after stop-workers", err)
	default:
	}
	prefork.Do(r.m, signals.Reload)
	r.boot()
	r.boot()
	r.finish(true)
}

// A crash of the old worker while its replacement boots leaves the slot
// to the replacement: no second worker is started for it.
func TestCrashDuringReplacement(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1})
	old := r.boot()
	prefork.Do(r.m, signals.Reload)
	n := r.next()
	old.Exit(1)
	r.ev.Wait(t, prefork.EventExited, func(e prefork.Event) bool { return e.Generation == old.Generation })
	n.Ready()
	r.ev.Wait(t, prefork.EventReloadDone, nil)
	r.finish(true)
	for _, e := range r.ev.All() {
		if e.Kind == prefork.EventRestartScheduled {
			t.Fatalf("restart scheduled although a replacement was booting")
		}
	}
}

func TestReopenLogs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gracefork.log")
	r := newRig(t, prefork.Options{Workers: 1, LogFile: path})
	r.boot()
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	prefork.Do(r.m, signals.ReopenLogs)
	r.ev.Wait(t, prefork.EventAction, func(e prefork.Event) bool { return e.Action == signals.ReopenLogs })
	r.finish(true)
	fresh, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(fresh), "log file reopened") || !strings.Contains(string(fresh), "msg=stopped") {
		t.Fatalf("new log file: %q, %v", fresh, err)
	}
	rotated, _ := os.ReadFile(path + ".1")
	if !strings.Contains(string(rotated), "msg=ready") || strings.Contains(string(rotated), "msg=stopped") {
		t.Fatalf("rotated log: %q", rotated)
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

// With MaxSurge 2, a failed pass ends its other replacement, which boots
// the same broken code: the next pass replaces that slot itself, and its
// outcome is its own — not the leftover's failure, nor the leftover's old
// code counted as new (found in review).
func TestFailedPassAbandonsItsOtherReplacements(t *testing.T) {
	for _, leftoverFails := range []bool{true, false} {
		r := newRig(t, prefork.Options{Workers: 2, MaxSurge: 2})
		r.boot()
		r.boot()
		r.ev.Wait(t, prefork.EventServing, nil)
		first := outcome(func() error { return r.m.Reload(t.Context()) })
		a1, b1 := r.next(), r.next() // the pass boots both replacements at once
		a1.Exit(3, "panic: broken build")
		var be *prefork.BootError
		if err := awaitOutcome(t, first); !errors.As(err, &be) || be.Slot != 0 {
			t.Fatalf("first Reload = %v, want slot 0's boot error", err)
		}
		if st := b1.WaitStop(t); st.Drain {
			t.Fatalf("the leftover replacement was told %+v, want a quit", st)
		}
		second := outcome(func() error { return r.m.Reload(t.Context()) })
		if leftoverFails {
			b1.Exit(3, "panic: broken build")
		} else {
			b1.Ready()
			b1.Exit(0)
		}
		a2, b2 := r.next(), r.next() // the second pass replaces both slots
		if a2.Slot == b2.Slot {
			t.Fatalf("second pass spawned slot %d twice", a2.Slot)
		}
		pending(t, second, "second Reload")
		a2.Ready()
		b2.Ready()
		if err := awaitOutcome(t, second); err != nil {
			t.Fatalf("second Reload = %v, want nil: its own workers are ready", err)
		}
		r.finish(true)
	}
}

// After Scale(0), a Reload that brings the workers back reports a slot it
// could not fill: that slot is degraded, and Reload returns its boot error
// rather than nil (found in review).
func TestRestoreReloadReportsADegradedSlot(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 2, MaxBootFailures: 1})
	a, b := r.boot(), r.boot()
	r.ev.Wait(t, prefork.EventServing, nil)
	if err := r.m.Scale(0); err != nil {
		t.Fatal(err)
	}
	for _, w := range []*preforktest.Worker{a, b} {
		w.WaitStop(t)
		w.Exit(0)
	}
	res := outcome(func() error { return r.m.Reload(t.Context()) })
	c, d := r.next(), r.next()
	d.Exit(1, "panic: cannot boot")
	r.ev.Wait(t, prefork.EventDegraded, nil)
	c.Ready()
	var be *prefork.BootError
	if err := awaitOutcome(t, res); !errors.As(err, &be) || be.Slot != d.Slot {
		t.Fatalf("Reload = %v, want slot %d's boot error", err, d.Slot)
	}
	r.finish(true)
}
