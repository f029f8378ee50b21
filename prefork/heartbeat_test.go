package prefork_test

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork"
)

// Heartbeats keep a worker alive; a silent one is ended (with a stack
// dump: see hung_test.go) and its slot restarted, as after a crash.
func TestSilentWorkerIsKilled(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1, HeartbeatTimeout: 5 * time.Second})
	w := r.boot()
	for i := range 3 {
		r.clk.WaitTimer(t, 5*time.Second)
		r.clk.Advance(4 * time.Second)
		if err := w.Heartbeat(uint64(i), 0); err != nil {
			t.Fatal(err)
		}
	}
	r.clk.WaitTimer(t, 5*time.Second) // re-armed by the last heartbeat
	if w.Exited() || countKind(r.ev, prefork.EventHung) != 0 {
		t.Fatal("a worker that kept reporting was taken for hung")
	}
	r.clk.Advance(5 * time.Second)
	want := os.Signal(syscall.SIGKILL)
	if len(prefork.DumpSignals) > 0 {
		want = prefork.DumpSignals[0] // then SIGKILL after a grace, see hung_test.go
	}
	if sig := w.WaitSignal(t); sig != want {
		t.Fatalf("silent worker got %v, want %v", sig, want)
	}
	if e := r.ev.Wait(t, prefork.EventHung, nil); e.Delay != 5*time.Second {
		t.Fatalf("hung event %+v", e)
	}
	w.Exit(2, "SIGABRT: abort")
	r.boot() // the slot restarts
	r.finish(true)
}
