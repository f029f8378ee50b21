package prefork_test

import (
	"errors"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork"
	"github.com/gracefork/gracefork/prefork/preforktest"
	"github.com/gracefork/gracefork/recycle"
	"github.com/gracefork/gracefork/signals"
)

// Long enough that no heartbeat or boot deadline fires while a test moves
// the fake clock.
const farAway = 24 * time.Hour

func recycleRig(t *testing.T, workers int, p recycle.Policy) *rig {
	t.Helper()
	return newRig(t, prefork.Options{Workers: workers, Recycle: p, HeartbeatTimeout: farAway, BootTimeout: farAway})
}

func ofGen(g int) func(prefork.Event) bool {
	return func(e prefork.Event) bool { return e.Generation == g }
}

func ofSlot(s int) func(prefork.Event) bool {
	return func(e prefork.Event) bool { return e.Slot == s }
}

// report sends a heartbeat, failing the test if it cannot.
func report(t *testing.T, w *preforktest.Worker, u preforktest.Usage) {
	t.Helper()
	if err := w.Report(u); err != nil {
		t.Fatal(err)
	}
}

// recycleOne checks the recycle of old from its "recycle due" on: a
// replacement boots in its slot while old serves on, and old drains once
// the replacement is ready. It returns the replacement.
func (r *rig) recycleOne(old *preforktest.Worker, reason recycle.Reason) *preforktest.Worker {
	r.t.Helper()
	n := r.next()
	if n.Slot != old.Slot {
		r.t.Fatalf("replacement for slot %d boots in slot %d", old.Slot, n.Slot)
	}
	if e := r.ev.Wait(r.t, prefork.EventRecycling, ofGen(n.Generation)); e.Reason != reason {
		r.t.Fatalf("recycling for %v, want %v", e.Reason, reason)
	}
	if old.Exited() {
		r.t.Fatal("the old worker left before its replacement was ready")
	}
	n.Ready()
	r.ev.Wait(r.t, prefork.EventRecycled, ofGen(n.Generation))
	if st := old.WaitStop(r.t); !st.Drain {
		r.t.Fatalf("recycled worker told %+v, want a drain", st)
	}
	old.Exit(0)
	r.ev.Wait(r.t, prefork.EventExited, ofGen(old.Generation))
	return n
}

// A worker that serves MaxRequests is recycled: replacement first, then
// its drain. Each heartbeat is checked: 99 of 100 is not due.
func TestRecycleAfterMaxRequests(t *testing.T) {
	r := recycleRig(t, 2, recycle.Policy{MaxRequests: 100})
	w0, _ := r.boot(), r.boot()
	report(t, w0, preforktest.Usage{Requests: 99})
	report(t, w0, preforktest.Usage{Requests: 100, InFlight: 3})
	e := r.ev.Wait(t, prefork.EventRecycleDue, ofGen(w0.Generation))
	if e.Reason != recycle.Requests || e.Detail != "100 requests, limit 100" {
		t.Fatalf("recycle due: %v, %q", e.Reason, e.Detail)
	}
	n := r.recycleOne(w0, recycle.Requests)
	// The replacement has a limit of its own, counted from its own start.
	report(t, n, preforktest.Usage{Requests: 100})
	r.ev.Wait(t, prefork.EventRecycleDue, ofGen(n.Generation))
	r.recycleOne(n, recycle.Requests)
	r.finish(true)
}

// Each worker draws its jitter from [0, MaxRequestsJitter]; the random
// source is the Policy's.
func TestRecycleJitter(t *testing.T) {
	var asked []uint64
	r := recycleRig(t, 1, recycle.Policy{MaxRequests: 100, MaxRequestsJitter: 10, Rand: func(n uint64) uint64 {
		asked = append(asked, n) // the loop goroutine only
		return n - 1
	}})
	w := r.boot()
	if n := w.WaitRequestLimit(t); n != 110 {
		t.Fatalf("the worker was told a request limit of %d, want the drawn 110", n)
	}
	report(t, w, preforktest.Usage{Requests: 109})
	report(t, w, preforktest.Usage{Requests: 110})
	if e := r.ev.Wait(t, prefork.EventRecycleDue, nil); e.Detail != "110 requests, limit 110" {
		t.Fatalf("recycle due at %q, want at the drawn limit 110", e.Detail)
	}
	r.recycleOne(w, recycle.Requests)
	r.finish(true)
	if len(asked) != 2 || asked[0] != 11 {
		t.Fatalf("Rand asked for %v, want [0, 11) once per worker", asked)
	}
}

// MaxAge counts from the worker's ready, on the master's clock.
func TestRecycleAfterMaxAge(t *testing.T) {
	r := recycleRig(t, 1, recycle.Policy{MaxAge: time.Hour})
	w := r.boot()
	r.clk.Advance(time.Hour - time.Second)
	report(t, w, preforktest.Usage{Requests: 1})
	r.clk.Advance(time.Second)
	report(t, w, preforktest.Usage{Requests: 2})
	if e := r.ev.Wait(t, prefork.EventRecycleDue, nil); e.Reason != recycle.Age || e.Detail != "1h0m0s, limit 1h0m0s" {
		t.Fatalf("recycle due: %v %q", e.Reason, e.Detail)
	}
	r.recycleOne(w, recycle.Age)
	r.finish(true)
}

// MaxMemory needs MemorySamples heartbeats over it in a row: a spike does
// not recycle.
func TestRecycleAfterMemorySamples(t *testing.T) {
	const mib = 1 << 20
	r := recycleRig(t, 1, recycle.Policy{MaxMemory: 100 * mib, MemorySamples: 3})
	w := r.boot()
	for _, rss := range []uint64{201, 202, 50, 204, 205, 206} {
		report(t, w, preforktest.Usage{RSS: rss * mib})
	}
	if e := r.ev.Wait(t, prefork.EventRecycleDue, nil); e.Reason != recycle.Memory || e.Detail != "206.0 MiB, limit 100.0 MiB" {
		t.Fatalf("recycle due: %v %q, want memory at the third sample in a row", e.Reason, e.Detail)
	}
	r.recycleOne(w, recycle.Memory)
	r.finish(true)
}

// Four workers whose limits coincide are recycled one after another, in
// the order they reached them, never two replacements at once.
func TestRecyclesAreSerialized(t *testing.T) {
	r := recycleRig(t, 4, recycle.Policy{MaxRequests: 10})
	ws := []*preforktest.Worker{r.boot(), r.boot(), r.boot(), r.boot()}
	order := []int{2, 0, 3, 1}
	for _, i := range order {
		report(t, ws[i], preforktest.Usage{Requests: 10})
		r.ev.Wait(t, prefork.EventRecycleDue, ofGen(ws[i].Generation))
	}
	for k, i := range order {
		// The due events are all in, and each started what it could.
		if n := countKind(r.ev, prefork.EventSpawned); n != 4+k+1 {
			t.Fatalf("%d workers spawned before recycle %d, want %d: one replacement at a time", n, k, 4+k+1)
		}
		r.recycleOne(ws[i], recycle.Requests)
	}
	r.finish(true)
}

// Recycles start at least MinInterval apart.
func TestRecycleMinInterval(t *testing.T) {
	const gap = 45 * time.Second
	r := recycleRig(t, 2, recycle.Policy{MaxRequests: 10, MinInterval: gap})
	a, b := r.boot(), r.boot()
	report(t, a, preforktest.Usage{Requests: 10})
	r.ev.Wait(t, prefork.EventRecycleDue, ofGen(a.Generation))
	report(t, b, preforktest.Usage{Requests: 10})
	r.ev.Wait(t, prefork.EventRecycleDue, ofGen(b.Generation))
	r.recycleOne(a, recycle.Requests)
	r.clk.WaitTimer(t, gap)
	if n := countKind(r.ev, prefork.EventRecycling); n != 1 {
		t.Fatalf("%d recycles within MinInterval", n)
	}
	r.clk.Advance(gap - time.Second)
	r.barrier()
	if n := countKind(r.ev, prefork.EventRecycling); n != 1 {
		t.Fatalf("%d recycles within MinInterval", n)
	}
	r.clk.Advance(time.Second)
	r.recycleOne(b, recycle.Requests)
	r.finish(true)
}

// A replacement that fails to boot leaves the old worker serving; the
// recycle is retried with a growing backoff, however often it fails, and
// neither degrades the slot nor gives up.
func TestRecycleFailedReplacementRetries(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1, MaxBootFailures: 2, Recycle: recycle.Policy{MaxRequests: 10},
		HeartbeatTimeout: farAway, BootTimeout: farAway})
	old := r.boot()
	report(t, old, preforktest.Usage{Requests: 10})
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		n := r.next()
		n.Exit(2, "panic: boom at boot")
		e := r.ev.Wait(t, prefork.EventRecycleFailed, nil)
		var be *prefork.BootError
		if e.Delay != want || !errors.As(e.Err, &be) || be.Exit.Code != 2 {
			t.Fatalf("failure %d: retry in %v (want %v), err %v", i, e.Delay, want, e.Err)
		}
		r.clk.WaitTimer(t, want)
		if i == 2 {
			// A spawn that fails is a failed recycle too. Armed before
			// the retry's timer fires: the loop spawns as soon as it does.
			r.sp.FailNext(errors.New("fork: resource temporarily unavailable"))
		}
		r.clk.Advance(want)
	}
	if e := r.ev.Wait(t, prefork.EventRecycleFailed, nil); e.Delay != 8*time.Second {
		t.Fatalf("after a failed spawn: retry in %v", e.Delay)
	}
	r.clk.WaitTimer(t, 8*time.Second)
	r.clk.Advance(8 * time.Second)
	r.recycleOne(old, recycle.Requests)
	for _, k := range []prefork.EventKind{prefork.EventDegraded, prefork.EventGivingUp} {
		if n := countKind(r.ev, k); n != 0 {
			t.Fatalf("%d %q events: a failed recycle counted as a failed boot", n, k)
		}
	}
	r.finish(true)
}

// A recycle due during a reload waits for it; a worker the reload left
// serving (its pass failed before reaching it) is recycled after.
func TestRecycleWaitsForReload(t *testing.T) {
	r := recycleRig(t, 2, recycle.Policy{MaxRequests: 10})
	_, w1 := r.boot(), r.boot()
	prefork.Do(r.m, signals.Reload)
	n0 := r.next() // slot 0's replacement boots
	report(t, w1, preforktest.Usage{Requests: 10})
	r.ev.Wait(t, prefork.EventRecycleDue, ofGen(w1.Generation))
	if n := countKind(r.ev, prefork.EventRecycling); n != 0 {
		t.Fatal("a recycle started during a reload")
	}
	n0.Exit(1, "bad config")
	r.ev.Wait(t, prefork.EventReloadFailed, nil)
	r.recycleOne(w1, recycle.Requests)
	r.finish(true)
}

// A reload asked for while a recycle's replacement boots ends that
// recycle — the replacement, started before the reload, may run the old
// code — and replaces every slot; the due worker goes with the reload.
func TestReloadEndsRecycleInProgress(t *testing.T) {
	r := recycleRig(t, 1, recycle.Policy{MaxRequests: 10})
	w := r.boot()
	report(t, w, preforktest.Usage{Requests: 10})
	n := r.next()
	r.ev.Wait(t, prefork.EventRecycling, nil)
	prefork.Do(r.m, signals.Reload)
	if st := n.WaitStop(t); st.Drain {
		t.Fatalf("the recycle's replacement told %+v, want quit", st)
	}
	n.Exit(0)
	rn := r.next()
	rn.Ready()
	w.WaitStop(t)
	w.Exit(0)
	r.ev.Wait(t, prefork.EventReloadDone, nil)
	r.barrier()
	if c := countKind(r.ev, prefork.EventRecycled) + countKind(r.ev, prefork.EventRecycleFailed); c != 0 {
		t.Fatalf("%d recycle outcomes after the reload replaced the worker", c)
	}
	r.finish(true)
}

// A recycle waits for an upgrade too: none starts while a new master
// boots, and the queue moves once the upgrade has failed.
func TestRecycleWaitsForUpgrade(t *testing.T) {
	r := recycleRig(t, 1, recycle.Policy{MaxRequests: 10})
	up := newFakeUpgrade(r)
	w := r.boot()
	r.ev.Wait(t, prefork.EventServing, nil)
	prefork.Do(r.m, signals.Upgrade)
	<-up.calls
	report(t, w, preforktest.Usage{Requests: 10})
	r.ev.Wait(t, prefork.EventRecycleDue, nil)
	if n := countKind(r.ev, prefork.EventRecycling); n != 0 {
		t.Fatal("a recycle started during an upgrade")
	}
	up.verdict <- errors.New("new master failed")
	r.ev.Wait(t, prefork.EventUpgradeFailed, nil)
	r.recycleOne(w, recycle.Requests)
	r.finish(true)
}

// A worker whose handler ran away asks to be recycled, and is, even with
// no limit in the Policy.
func TestRecycleRunaway(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1, RequestTimeout: time.Second})
	w := r.boot()
	if err := w.RetireRunaway(3 * time.Second); err != nil {
		t.Fatal(err)
	}
	if e := r.ev.Wait(t, prefork.EventRecycleDue, nil); e.Reason != recycle.Runaway || e.Detail != "3s, limit 1s" {
		t.Fatalf("recycle due: %v %q", e.Reason, e.Detail)
	}
	w.RetireRunaway(4 * time.Second) // a second runaway changes nothing
	r.recycleOne(w, recycle.Runaway)
	r.barrier()
	if n := countKind(r.ev, prefork.EventRecycleDue); n != 1 {
		t.Fatalf("%d recycle-due events, want 1", n)
	}
	r.finish(true)
}

// Removing the slot being recycled ends its recycle; the next one due
// still runs.
func TestScaleDownDuringRecycle(t *testing.T) {
	r := recycleRig(t, 2, recycle.Policy{MaxRequests: 10})
	w0, w1 := r.boot(), r.boot()
	report(t, w1, preforktest.Usage{Requests: 10})
	n := r.next()
	r.ev.Wait(t, prefork.EventRecycling, nil)
	if err := r.m.Scale(1); err != nil {
		t.Fatal(err)
	}
	for _, w := range []*preforktest.Worker{n, w1} {
		w.WaitStop(t)
		w.Exit(0)
	}
	report(t, w0, preforktest.Usage{Requests: 10})
	r.recycleOne(w0, recycle.Requests)
	r.finish(true)
}

// A stop while a replacement boots ends both cleanly: no failed recycle.
func TestStopDuringRecycle(t *testing.T) {
	r := recycleRig(t, 1, recycle.Policy{MaxRequests: 10})
	w := r.boot()
	report(t, w, preforktest.Usage{Requests: 10})
	r.next()
	r.ev.Wait(t, prefork.EventRecycling, nil)
	r.finish(true)
	if n := countKind(r.ev, prefork.EventRecycleFailed); n != 0 {
		t.Fatalf("%d failed recycles at a stop", n)
	}
}
