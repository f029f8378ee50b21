//go:build unix

package prefork_test

import (
	"strings"
	"syscall"
	"testing"
)

// In single-process mode a recycling limit drains the process and exits 0,
// for the orchestrator to start a fresh one: every request on an accepted
// connection is answered.
func TestE2ESingleProcessRecycleExitsZero(t *testing.T) {
	p := startMaster(t, "GRACEFORK_SINGLE_PROCESS=1", "TEST_MAX_REQUESTS=300")
	var at int
	addr := p.addr(&at)
	p.serving(&at, 0)
	load := startStopLoad(addr, 8)
	rec := p.waitLog(&at, "recycling: exiting for the supervisor to start a fresh process", nil)
	if rec["reason"] != "requests" {
		t.Errorf("recycled for %v, want requests", rec["reason"])
	}
	if code := p.wait(); code != 0 {
		t.Fatalf("exit status %d, want 0", code)
	}
	load.wg.Wait()
	if len(load.lost) > 0 {
		t.Errorf("%d requests lost on accepted connections; first: %v", len(load.lost), load.lost[:min(5, len(load.lost))])
	}
	if load.count() < 300 {
		t.Errorf("%d requests answered before the exit, want at least the limit, 300", load.count())
	}
}

// SIGHUP cannot reload a single process: it is ignored, with a warning,
// and the process serves on; SIGINT then quits at once, exit status 0.
func TestE2ESingleProcessSignals(t *testing.T) {
	p := startMaster(t, "GRACEFORK_SINGLE_PROCESS=1")
	var at int
	addr := p.addr(&at)
	p.serving(&at, 0)
	p.signal(syscall.SIGHUP)
	p.waitLog(&at, "SIGHUP ignored: single-process mode has no workers to reload; restart the process instead", nil)
	if code, body, err := probe(addr, "/"); err != nil || code != 200 {
		t.Fatalf("GET / after SIGHUP: %d %q %v", code, body, err)
	}
	p.signal(syscall.SIGINT)
	p.waitLog(&at, "worker quitting", nil)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit status %d, want 0", code)
	}
}

// A value of GRACEFORK_SINGLE_PROCESS that is neither true nor false is
// refused before anything is bound, naming the variable and the value.
func TestE2ESingleProcessBadEnv(t *testing.T) {
	p := startMaster(t, "GRACEFORK_SINGLE_PROCESS=yes please")
	var at int
	rec := p.waitLog(&at, "serve error", nil)
	want := `prefork: environment GRACEFORK_SINGLE_PROCESS="yes please": must be 1, true, 0 or false`
	if rec["err"] != want {
		t.Errorf("error %q, want %q", rec["err"], want)
	}
	if code := p.wait(); code != 1 {
		t.Fatalf("exit status %d, want 1", code)
	}
	if strings.Contains(p.output(), "listening") {
		t.Error("an address was bound before the error")
	}
}
