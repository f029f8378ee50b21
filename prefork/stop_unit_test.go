package prefork_test

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork"
	"github.com/gracefork/gracefork/prefork/preforktest"
	"github.com/gracefork/gracefork/signals"
)

// reportingUpgrade is fakeUpgrade whose "new master" also says its pid.
type reportingUpgrade struct {
	calls   chan struct{}
	verdict chan error
	pid     int
}

func newReportingUpgrade(r *rig, pid int) *reportingUpgrade {
	f := &reportingUpgrade{calls: make(chan struct{}, 8), verdict: make(chan error), pid: pid}
	prefork.SetUpgradeReportFunc(r.m, func() (string, error) {
		f.calls <- struct{}{}
		if err := <-f.verdict; err != nil {
			return "", err
		}
		return prefork.ReadyReport(f.pid), nil
	})
	return f
}

// standIn is a real process standing for the new master: the test sees
// which signal reaches it.
func standIn(t *testing.T) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start a stand-in process: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	exit := make(chan string, 1)
	go func() { exit <- errString(cmd.Wait()) }()
	return cmd, exit
}

func errString(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

// A stop asked for while the new master boots cancels the upgrade: the
// master waits for the upgrade's end before it returns, and says so.
func TestStopDuringUpgradeCancelsIt(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1})
	up := newFakeUpgrade(r)
	w := r.boot()
	r.ev.Wait(t, prefork.EventServing, nil)
	prefork.Do(r.m, signals.Upgrade)
	<-up.calls
	prefork.Do(r.m, signals.Shutdown)
	if st := w.WaitStop(t); !st.Drain {
		t.Fatalf("worker told %+v, want a drain", st)
	}
	w.Exit(0)
	r.ev.Wait(t, prefork.EventExited, nil)
	select {
	case err := <-r.done:
		t.Fatalf("Run returned %v while the upgrade was in progress", err)
	default:
	}
	up.verdict <- errors.New("terminating") // tableflip's answer once stopped
	e := r.ev.Wait(t, prefork.EventUpgradeCancelled, nil)
	if !strings.Contains(e.Err.Error(), "terminating") {
		t.Fatalf("cancelled: %v", e.Err)
	}
	if err := r.result(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if n := countKind(r.ev, prefork.EventUpgradeFailed); n != 0 {
		t.Fatalf("%d upgrade failures logged, want the cancellation only", n)
	}
}

// The new master becomes ready just as this one starts to stop (tableflip
// had its ready before the stop reached it): the new master serves, so the
// stop goes on to it.
func TestStopAsNewMasterBecomesReadyIsForwarded(t *testing.T) {
	next, exit := standIn(t)
	r := newRig(t, prefork.Options{Workers: 1})
	up := newReportingUpgrade(r, next.Process.Pid)
	w := r.boot()
	r.ev.Wait(t, prefork.EventServing, nil)
	prefork.Do(r.m, signals.Upgrade)
	<-up.calls
	prefork.Do(r.m, signals.Shutdown)
	w.WaitStop(t)
	up.verdict <- nil
	if e := r.ev.Wait(t, prefork.EventUpgraded, nil); e.Pid != next.Process.Pid {
		t.Fatalf("upgraded to pid %d, want %d", e.Pid, next.Process.Pid)
	}
	e := r.ev.Wait(t, prefork.EventStopForwarded, nil)
	if e.Err != nil || e.Pid != next.Process.Pid || e.Action != signals.Shutdown {
		t.Fatalf("forwarded %+v", e)
	}
	if got := <-exit; got != "signal: terminated" {
		t.Fatalf("the new master ended with %q, want SIGTERM", got)
	}
	w.Exit(0)
	if err := r.result(); err != nil {
		t.Fatalf("Run = %v", err)
	}
}

// After the handover this master drains; a stop sent to it — the pid the
// user knows — goes on to the new master, a quit as a quit.
func TestStopAfterHandoverIsForwarded(t *testing.T) {
	next, exit := standIn(t)
	r := newRig(t, prefork.Options{Workers: 1})
	up := newReportingUpgrade(r, next.Process.Pid)
	w := r.boot()
	r.ev.Wait(t, prefork.EventServing, nil)
	prefork.Do(r.m, signals.Upgrade)
	<-up.calls
	up.verdict <- nil
	r.ev.Wait(t, prefork.EventUpgraded, nil)
	w.WaitStop(t) // draining
	prefork.Do(r.m, signals.Quit)
	e := r.ev.Wait(t, prefork.EventStopForwarded, nil)
	if e.Err != nil || e.Pid != next.Process.Pid || e.Action != signals.Quit {
		t.Fatalf("forwarded %+v", e)
	}
	if got := <-exit; got != "signal: interrupt" {
		t.Fatalf("the new master ended with %q, want SIGINT (Quit's first signal)", got)
	}
	w.Exit(0)
	if err := r.result(); err != nil {
		t.Fatalf("Run = %v", err)
	}
}

// A final stop has two phases: every live worker closes its listeners,
// and only then is any told to drain — so no client is sent to reconnect
// while a copy of the socket still queues connections. A worker that exits
// during the first phase counts as done.
func TestStopDrainsOnlyOnceEveryWorkerStoppedAccepting(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 3})
	ws := []*preforktest.Worker{r.boot(), r.boot(), r.boot()}
	r.ev.Wait(t, prefork.EventServing, nil)
	for _, w := range ws {
		w.HoldListeners()
	}
	prefork.Do(r.m, signals.Shutdown)
	for _, w := range ws {
		w.WaitCloseListeners(t)
	}
	if err := ws[0].ListenersClosed(); err != nil {
		t.Fatal(err)
	}
	r.ev.Wait(t, prefork.EventStoppedAccepting, func(e prefork.Event) bool { return e.Generation == ws[0].Generation })
	ws[1].Exit(0) // gone during the first phase: it holds no socket now
	r.ev.Wait(t, prefork.EventExited, func(e prefork.Event) bool { return e.Generation == ws[1].Generation })
	r.barrier()
	if n := countKind(r.ev, prefork.EventDraining); n != 0 {
		t.Fatalf("%d workers told to drain while one still accepts; events:\n%s", n, r.ev)
	}
	if err := ws[2].ListenersClosed(); err != nil {
		t.Fatal(err)
	}
	for _, w := range []*preforktest.Worker{ws[0], ws[2]} {
		if st := w.WaitStop(t); !st.Drain {
			t.Fatalf("worker gen %d told %+v, want a drain", w.Generation, st)
		}
		w.Exit(0)
	}
	if err := r.result(); err != nil {
		t.Fatalf("Run = %v", err)
	}
}

// A worker that never says it stopped accepting (stalled, or of an older
// build) holds the drain back for a bounded wait only.
func TestStopDrainsAfterBoundedWaitForSilentWorker(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 2})
	ws := []*preforktest.Worker{r.boot(), r.boot()}
	r.ev.Wait(t, prefork.EventServing, nil)
	ws[1].HoldListeners()
	prefork.Do(r.m, signals.Shutdown)
	ws[1].WaitCloseListeners(t)
	r.ev.Wait(t, prefork.EventStoppedAccepting, func(e prefork.Event) bool { return e.Generation == ws[0].Generation })
	r.barrier()
	if n := countKind(r.ev, prefork.EventDraining); n != 0 {
		t.Fatalf("%d workers told to drain before the wait ended; events:\n%s", n, r.ev)
	}
	r.clk.WaitTimer(t, time.Second)
	r.clk.Advance(time.Second)
	for _, w := range ws {
		if st := w.WaitStop(t); !st.Drain {
			t.Fatalf("worker gen %d told %+v, want a drain", w.Generation, st)
		}
		w.Exit(0)
	}
	if err := r.result(); err != nil {
		t.Fatalf("Run = %v", err)
	}
}

// A quit during the first phase hurries everything: every worker quits at
// once, and the end of the bounded wait drains nobody.
func TestQuitDuringStopAcceptingQuitsEveryWorker(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 2})
	ws := []*preforktest.Worker{r.boot(), r.boot()}
	r.ev.Wait(t, prefork.EventServing, nil)
	for _, w := range ws {
		w.HoldListeners()
	}
	prefork.Do(r.m, signals.Shutdown)
	for _, w := range ws {
		w.WaitCloseListeners(t)
	}
	prefork.Do(r.m, signals.Quit)
	for _, w := range ws {
		if st := w.WaitStop(t); st.Drain {
			t.Fatalf("worker gen %d told %+v, want a quit", w.Generation, st)
		}
	}
	r.clk.Advance(time.Second) // the first phase's wait, had it not ended
	r.barrier()
	ws[0].ListenersClosed() // late: changes nothing
	for _, w := range ws {
		w.Exit(0)
	}
	if err := r.result(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if n := countKind(r.ev, prefork.EventDraining); n != 0 {
		t.Fatalf("%d drains after a quit; events:\n%s", n, r.ev)
	}
}

// A reload in progress at the stop: its new worker, still booting, is
// waited for too (it may have accepted connections by the time it reads
// its control channel, which a quit would cut). Becoming ready during the
// first phase, it retires nobody: the old worker is not drained early.
func TestStopDuringReloadWaitsForBootingWorker(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1})
	old := r.boot()
	r.ev.Wait(t, prefork.EventServing, nil)
	prefork.Do(r.m, signals.Reload)
	next := r.next()
	next.HoldListeners()
	prefork.Do(r.m, signals.Shutdown)
	old.WaitCloseListeners(t)
	next.WaitCloseListeners(t)
	r.ev.Wait(t, prefork.EventStoppedAccepting, func(e prefork.Event) bool { return e.Generation == old.Generation })
	if err := next.Ready(); err != nil {
		t.Fatal(err)
	}
	r.ev.Wait(t, prefork.EventReady, func(e prefork.Event) bool { return e.Generation == next.Generation })
	r.barrier()
	if n := countKind(r.ev, prefork.EventDraining); n != 0 {
		t.Fatalf("%d workers told to drain while the new one still accepts; events:\n%s", n, r.ev)
	}
	if err := next.ListenersClosed(); err != nil {
		t.Fatal(err)
	}
	for _, w := range []*preforktest.Worker{old, next} {
		if st := w.WaitStop(t); !st.Drain {
			t.Fatalf("worker gen %d told %+v, want a drain", w.Generation, st)
		}
		w.Exit(0)
	}
	if err := r.result(); err != nil {
		t.Fatalf("Run = %v", err)
	}
}

// A worker of a newer build may send a message type this master does not
// know: the master skips it and reads on, instead of killing the worker
// (a reload to a newer binary would otherwise become a crash loop).
func TestMasterSkipsUnknownControlMessage(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1})
	w := r.next()
	if err := w.SendRaw([]byte("GF\x01\xc8\x00\x00\x00\x02hi")); err != nil { // type 200, 2 bytes
		t.Fatal(err)
	}
	if err := w.Ready(); err != nil {
		t.Fatal(err)
	}
	r.ev.Wait(t, prefork.EventReady, nil)
	r.finish(true)
	if n := countKind(r.ev, prefork.EventProtocolError); n != 0 {
		t.Fatalf("an unknown message type was a protocol error; events:\n%s", r.ev)
	}
}
