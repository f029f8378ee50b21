package prefork_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gracefork/gracefork/prefork"
	"github.com/gracefork/gracefork/signals"
)

// fakeUpgrade stands for tableflip's Upgrade: each call waits for the
// test's verdict.
type fakeUpgrade struct {
	calls   chan struct{}
	verdict chan error
}

func newFakeUpgrade(r *rig) *fakeUpgrade {
	f := &fakeUpgrade{calls: make(chan struct{}, 8), verdict: make(chan error)}
	prefork.SetUpgradeFunc(r.m, func() error {
		f.calls <- struct{}{}
		return <-f.verdict
	})
	return f
}

func TestUpgradeHandsOver(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 2})
	up := newFakeUpgrade(r)
	a, b := r.boot(), r.boot()
	r.ev.Wait(t, prefork.EventServing, nil)
	prefork.Do(r.m, signals.Upgrade)
	<-up.calls
	if a.Exited() || b.Exited() {
		t.Fatal("workers stopped before the new master was ready")
	}
	up.verdict <- nil
	r.ev.Wait(t, prefork.EventUpgraded, nil)
	r.finishAfterHandover()
}

// finishAfterHandover answers the drains that follow a handover.
func (r *rig) finishAfterHandover() {
	r.t.Helper()
	for _, w := range r.ws {
		if st := w.WaitStop(r.t); !st.Drain {
			r.t.Fatalf("after the handover worker gen %d was told %+v, want a drain", w.Generation, st)
		}
		w.Exit(0)
	}
	if err := r.result(); err != nil {
		r.t.Fatalf("Run = %v, want nil after a handover", err)
	}
}

// A new master that crashes or times out changes nothing here; a later
// upgrade can still succeed.
func TestFailedUpgradesChangeNothing(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1})
	up := newFakeUpgrade(r)
	w := r.boot()
	r.ev.Wait(t, prefork.EventServing, nil)
	for _, why := range []string{"child pid=7 exited: exit status 1", "new child pid=8 timed out"} {
		prefork.Do(r.m, signals.Upgrade)
		<-up.calls
		up.verdict <- errors.New(why)
		e := r.ev.Wait(t, prefork.EventUpgradeFailed, nil)
		if !strings.Contains(e.Err.Error(), why) || !strings.Contains(e.Err.Error(), "serve on") {
			t.Fatalf("failure %v", e.Err)
		}
		r.barrier()
		if w.Exited() || countKind(r.ev, prefork.EventDraining) != 0 {
			t.Fatal("a failed upgrade touched the serving worker")
		}
	}
	prefork.Do(r.m, signals.Upgrade)
	<-up.calls
	up.verdict <- nil
	r.ev.Wait(t, prefork.EventUpgraded, nil)
	r.finishAfterHandover()
}

// One upgrade at a time, and none before the workers serve.
func TestUpgradeRefusals(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1})
	up := newFakeUpgrade(r)
	w := r.next()
	prefork.Do(r.m, signals.Upgrade) // not ready yet
	if e := r.ev.Wait(t, prefork.EventUpgradeRefused, nil); !strings.Contains(e.Err.Error(), "not all ready") {
		t.Fatalf("refusal %v", e.Err)
	}
	w.Ready()
	r.ev.Wait(t, prefork.EventServing, nil)
	prefork.Do(r.m, signals.Upgrade)
	<-up.calls
	prefork.Do(r.m, signals.Upgrade)
	if e := r.ev.Wait(t, prefork.EventUpgradeRefused, nil); !strings.Contains(e.Err.Error(), "in progress") {
		t.Fatalf("refusal %v", e.Err)
	}
	if n := countKind(r.ev, prefork.EventUpgradeStarted); n != 1 {
		t.Fatalf("%d upgrades started", n)
	}
	up.verdict <- errors.New("child exited")
	r.ev.Wait(t, prefork.EventUpgradeFailed, nil)
	r.finish(true)
}
