package prefork_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork"
	"github.com/gracefork/gracefork/prefork/preforktest"
	"github.com/gracefork/gracefork/signals"
)

// hookLog records the master's hook calls, in the order they run.
type hookLog struct {
	mu      sync.Mutex
	calls   []string
	errs    []error // OnReloadEnd's and OnExit's arguments, in order
	changed chan struct{}
}

func (l *hookLog) add(call string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, call)
	if strings.HasPrefix(call, "OnReloadEnd") || strings.HasPrefix(call, "OnExit") {
		l.errs = append(l.errs, err)
	}
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
}

// get returns the calls so far.
func (l *hookLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.calls...)
}

// wait waits until n calls have run and returns them.
func (l *hookLog) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(preforktest.Patience)
	for {
		l.mu.Lock()
		if len(l.calls) >= n {
			defer l.mu.Unlock()
			return append([]string(nil), l.calls...)
		}
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%d hook calls within %v, want %d: %q", len(l.get()), preforktest.Patience, n, l.get())
		}
	}
}

// hooks records every master hook's call.
func (l *hookLog) hooks() prefork.Hooks {
	w := func(w prefork.WorkerInfo) string {
		return fmt.Sprintf("slot=%d gen=%d pid=%d", w.Slot, w.Generation, w.Pid)
	}
	return prefork.Hooks{
		OnStarting:  func() { l.add("OnStarting", nil) },
		BeforeSpawn: func(i prefork.WorkerInfo) { l.add("BeforeSpawn "+w(i), nil) },
		AfterSpawn:  func(i prefork.WorkerInfo) { l.add("AfterSpawn "+w(i), nil) },
		OnReady:     func() { l.add("OnReady", nil) },
		OnWorkerExit: func(i prefork.WorkerInfo, e prefork.Exit, expected bool) {
			l.add(fmt.Sprintf("OnWorkerExit %s %v expected=%v", w(i), e, expected), nil)
		},
		OnReloadStart: func() { l.add("OnReloadStart", nil) },
		OnReloadEnd:   func(err error) { l.add(fmt.Sprintf("OnReloadEnd %v", err != nil), err) },
		OnExit:        func(err error) { l.add(fmt.Sprintf("OnExit %v", err != nil), err) },
	}
}

func checkCalls(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("hook calls:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// The master's hooks run in the order of what calls them, through a
// start, a crash, a reload and a stop; Run returns once OnExit has run.
func TestMasterHooksOrder(t *testing.T) {
	var l hookLog
	r := newRig(t, prefork.Options{Workers: 2, Hooks: l.hooks()})
	r.boot()
	crash := r.boot()
	checkCalls(t, l.wait(t, 6), "OnStarting",
		"BeforeSpawn slot=0 gen=1 pid=0", "AfterSpawn slot=0 gen=1 pid=100001",
		"BeforeSpawn slot=1 gen=2 pid=0", "AfterSpawn slot=1 gen=2 pid=100002",
		"OnReady")

	crash.Exit(1, "panic: oops")
	r.boot()
	checkCalls(t, l.wait(t, 9)[6:], "OnWorkerExit slot=1 gen=2 pid=100002 exit status 1 expected=false",
		"BeforeSpawn slot=1 gen=3 pid=0", "AfterSpawn slot=1 gen=3 pid=100003")

	prefork.Do(r.m, signals.Reload)
	r.boot() // slot 0's replacement: the old one drains, slot 1's replacement starts
	r.ws[0].WaitStop(t)
	r.ws[0].Exit(0)
	r.ev.Wait(t, prefork.EventExited, func(e prefork.Event) bool { return e.Generation == 1 })
	r.boot() // the reload is done once slot 1's replacement is ready
	r.ws[2].WaitStop(t)
	r.ws[2].Exit(0)
	checkCalls(t, l.wait(t, 17)[9:], "OnReloadStart",
		"BeforeSpawn slot=0 gen=4 pid=0", "AfterSpawn slot=0 gen=4 pid=100004",
		"BeforeSpawn slot=1 gen=5 pid=0", "AfterSpawn slot=1 gen=5 pid=100005",
		"OnWorkerExit slot=0 gen=1 pid=100001 exit status 0 expected=true",
		"OnReloadEnd false",
		"OnWorkerExit slot=1 gen=3 pid=100003 exit status 0 expected=true")

	prefork.Do(r.m, signals.Shutdown)
	for _, w := range r.ws[3:] {
		w.WaitStop(t)
		w.Exit(0)
		r.ev.Wait(t, prefork.EventExited, func(e prefork.Event) bool { return e.Generation == w.Generation })
	}
	if err := r.result(); err != nil { // Run has returned: every hook has run
		t.Fatalf("Run = %v", err)
	}
	checkCalls(t, l.get()[17:],
		"OnWorkerExit slot=0 gen=4 pid=100004 exit status 0 expected=true",
		"OnWorkerExit slot=1 gen=5 pid=100005 exit status 0 expected=true",
		"OnExit false")
	if n := countKind(r.ev, prefork.EventHookSlow) + countKind(r.ev, prefork.EventHookPanicked) + countKind(r.ev, prefork.EventHooksAbandoned); n != 0 {
		t.Fatalf("%d hook trouble events; events:\n%s", n, r.ev)
	}
}

// A hook that runs long does not hold the master: a whole reload is done
// while it runs. The hooks queued meanwhile wait for it and then run in
// order, and the master reports the slow one once SlowHookAfter passes.
func TestSlowHookDoesNotBlockTheMaster(t *testing.T) {
	var l hookLog
	h := l.hooks()
	entered, release := make(chan struct{}), make(chan struct{})
	h.OnReady = func() {
		close(entered)
		<-release
		l.add("OnReady", nil)
	}
	r := newRig(t, prefork.Options{Workers: 1, Hooks: h})
	old := r.boot()
	<-entered
	r.clk.WaitTimer(t, prefork.SlowHookAfter)

	reloaded := make(chan error, 1)
	go func() { reloaded <- r.m.Reload(t.Context()) }()
	r.boot()
	old.WaitStop(t)
	old.Exit(0)
	if err := <-reloaded; err != nil {
		t.Fatalf("Reload while a hook runs = %v", err)
	}
	if got := l.get(); len(got) != 3 {
		t.Fatalf("hooks ran past the one that is running: %q", got)
	}

	r.clk.Advance(prefork.SlowHookAfter)
	e := r.ev.Wait(t, prefork.EventHookSlow, nil)
	if e.Detail != "OnReady" || e.Delay != prefork.SlowHookAfter {
		t.Fatalf("slow hook event %+v", e)
	}
	close(release)
	checkCalls(t, l.wait(t, 9)[3:], "OnReady", "OnReloadStart",
		"BeforeSpawn slot=0 gen=2 pid=0", "AfterSpawn slot=0 gen=2 pid=100002",
		"OnReloadEnd false",
		"OnWorkerExit slot=0 gen=1 pid=100001 exit status 0 expected=true")
	r.finish(true)
	if n := countKind(r.ev, prefork.EventHookSlow); n != 1 {
		t.Fatalf("%d slow hook events, want 1", n)
	}
}

// A hook that panics is reported with its value and the master goes on:
// the next hooks run, the workers serve, the stop is clean.
func TestPanickingHookIsReported(t *testing.T) {
	var l hookLog
	h := l.hooks()
	h.AfterSpawn = func(w prefork.WorkerInfo) {
		if w.Generation == 1 {
			panic("no inventory for slot 0")
		}
		l.add(fmt.Sprintf("AfterSpawn slot=%d", w.Slot), nil)
	}
	r := newRig(t, prefork.Options{Workers: 2, Hooks: h})
	r.boot()
	r.boot()
	e := r.ev.Wait(t, prefork.EventHookPanicked, nil)
	if e.Detail != "AfterSpawn" || !strings.HasPrefix(e.Err.Error(), "panic: no inventory for slot 0\n") || !strings.Contains(e.Err.Error(), "goroutine ") {
		t.Fatalf("panicked hook event %+v", e)
	}
	checkCalls(t, l.wait(t, 5), "OnStarting", "BeforeSpawn slot=0 gen=1 pid=0",
		"BeforeSpawn slot=1 gen=2 pid=0", "AfterSpawn slot=1", "OnReady")
	r.finish(true)
	if last := l.get()[len(l.get())-1]; last != "OnExit false" {
		t.Fatalf("last hook %q, want OnExit", last)
	}
}

// A reload whose new worker fails to boot ends with OnReloadEnd and the
// *BootError that Reload returns; a reload that a stop ends, with
// ErrServerClosed; a master that gives up runs OnExit with its BootError.
func TestReloadEndHookGetsTheOutcome(t *testing.T) {
	var l hookLog
	r := newRig(t, prefork.Options{Workers: 1, MaxBootFailures: 1, Hooks: l.hooks()})
	w := r.boot()
	prefork.Do(r.m, signals.Reload)
	r.next().Exit(2, "panic: bad config")
	r.ev.Wait(t, prefork.EventReloadFailed, nil)
	prefork.Do(r.m, signals.Reload)
	r.next() // boots until the stop
	prefork.Do(r.m, signals.Shutdown)
	for _, x := range r.ws[1:] {
		if !x.Exited() {
			x.WaitStop(t)
			x.Exit(0)
		}
	}
	w.WaitStop(t)
	w.Exit(0)
	if err := r.result(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	l.mu.Lock()
	errs := l.errs
	l.mu.Unlock()
	var be *prefork.BootError
	if len(errs) != 3 || !errors.As(errs[0], &be) || be.Exit.Code != 2 || !errors.Is(errs[1], prefork.ErrServerClosed) || errs[2] != nil {
		t.Fatalf("OnReloadEnd, OnReloadEnd, OnExit got %v; want the BootError, ErrServerClosed, nil", errs)
	}

	var l2 hookLog
	r = newRig(t, prefork.Options{Workers: 1, MaxBootFailures: 1, Hooks: l2.hooks()})
	r.next().Exit(2, "panic: bad config")
	if err := r.result(); !errors.As(err, &be) {
		t.Fatalf("Run = %v, want a BootError", err)
	}
	if len(l2.errs) != 1 || l2.errs[0] != error(be) {
		t.Fatalf("OnExit got %v, want Run's error %v", l2.errs, be)
	}
}

// Run waits for OnExit at most HooksExitWait, reporting it slow on the
// way, then returns without it.
func TestRunWaitsForExitHooksWithinABound(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	r := newRig(t, prefork.Options{Workers: 1, Hooks: prefork.Hooks{OnExit: func(error) {
		close(entered)
		<-release
	}}})
	w := r.boot()
	prefork.Do(r.m, signals.Shutdown)
	w.WaitStop(t)
	w.Exit(0)
	<-entered
	r.clk.WaitTimer(t, prefork.HooksExitWait)
	r.clk.WaitTimer(t, prefork.SlowHookAfter)
	select {
	case err := <-r.done:
		t.Fatalf("Run returned %v while OnExit runs, before HooksExitWait", err)
	default:
	}
	r.clk.Advance(prefork.SlowHookAfter)
	if e := r.ev.Wait(t, prefork.EventHookSlow, nil); e.Detail != "OnExit" {
		t.Fatalf("slow hook event %+v", e)
	}
	r.clk.Advance(prefork.HooksExitWait - prefork.SlowHookAfter)
	if err := r.result(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	e := r.ev.Wait(t, prefork.EventHooksAbandoned, nil)
	if e.Delay != prefork.HooksExitWait || e.Detail != "OnExit still running, 0 queued not run" {
		t.Fatalf("abandoned event %+v", e)
	}
	evs := r.ev.All()
	if evs[len(evs)-1].Kind != prefork.EventStopped {
		t.Fatalf("last event %v, want stopped", evs[len(evs)-1].Kind)
	}
	close(release) // the hooks' goroutine ends
}
