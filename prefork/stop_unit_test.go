package prefork_test

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/gracefork/gracefork/prefork"
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
	r.m.Do(signals.Upgrade)
	<-up.calls
	r.m.Shutdown()
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
	r.m.Do(signals.Upgrade)
	<-up.calls
	r.m.Shutdown()
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
	r.m.Do(signals.Upgrade)
	<-up.calls
	up.verdict <- nil
	r.ev.Wait(t, prefork.EventUpgraded, nil)
	w.WaitStop(t) // draining
	r.m.Do(signals.Quit)
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
