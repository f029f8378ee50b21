//go:build unix

package prefork_test

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
)

// A WorkerInit that fails makes the boot fail: the master's error, and
// each "exited" record, quote its error — sent by the worker over its
// control channel, whatever the program does with Run's error.
func TestE2EWorkerInitErrorFailsBoot(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=1", "TEST_HOOKS=1", "TEST_INIT_FAIL=1", "TEST_MAX_BOOT=2")
	if code := p.wait(); code != 1 {
		t.Fatalf("master exit %d, want 1", code)
	}
	var at int
	for range 2 {
		if rec := p.waitLog(&at, "exited", nil); rec["failure"] != "WorkerInit: database unreachable" {
			t.Errorf("exited record %v does not quote WorkerInit's error", rec)
		}
	}
	at = 0
	rec := p.waitFor(&at, "serve error", func(rec map[string]any) bool {
		return strings.Contains(fmt.Sprint(rec["err"]), "failed to boot")
	})
	want := "prefork: worker slot 0 failed to boot 2 times in a row; last attempt: exit status 1: WorkerInit: database unreachable"
	if err := rec["err"].(string); !strings.HasPrefix(err, want) {
		t.Errorf("Serve's error %q, want it to begin %q", err, want)
	}
}

// WorkerInit runs in every worker before it serves, across a reload;
// WorkerShutdown runs in every worker at the end of its drain, after the
// request in flight was answered. A reload whose new workers' WorkerInit
// fails leaves the old workers serving, and says why.
func TestE2EWorkerHooksAcrossReload(t *testing.T) {
	flag := t.TempDir() + "/db-down"
	p := startMaster(t, "TEST_WORKERS=2", "TEST_HOOKS=1", "TEST_INIT_FAIL_IF="+flag)
	var at int
	addr := p.addr(&at)
	old := p.ready(&at, 2)
	if body := get(t, newClient(), "http://"+addr+"/hooks"); !strings.HasPrefix(body, "init=true") {
		t.Fatalf("/hooks: %q, want a worker whose WorkerInit ran", body)
	}
	slow := startSlow(t, "http://"+addr+"/slow")
	started := p.waitLog(&at, "slow request started", nil)
	p.signal(syscall.SIGHUP)
	p.waitLog(&at, "reload done", nil)
	slow.finish(t, started["pid"])
	rec := p.waitLog(&at, "worker shutdown hook", map[string]any{"pid": started["pid"]})
	if rec["slow_started"] != 1.0 || rec["slow_done"] != 1.0 {
		t.Fatalf("WorkerShutdown ran with %v of %v slow requests answered, want 1 of 1", rec["slow_done"], rec["slow_started"])
	}

	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	if err := p.waitLog(&at, "reload failed", nil)["err"].(string); !strings.Contains(err, "exit status 1: WorkerInit: database unreachable") {
		t.Fatalf("reload failure %q does not quote WorkerInit's error", err)
	}
	if body := get(t, newClient(), "http://"+addr+"/hooks"); !strings.HasPrefix(body, "init=true") {
		t.Fatalf("/hooks after the failed reload: %q", body)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
	inits, shutdowns := hookPids(p, "worker init hook"), hookPids(p, "worker shutdown hook")
	if len(inits) != 4 || fmt.Sprint(inits) != fmt.Sprint(shutdowns) {
		t.Fatalf("WorkerInit ran in %v, WorkerShutdown in %v: want the same 4 workers", inits, shutdowns)
	}
	for _, pid := range old {
		if !inits[pid] {
			t.Errorf("no WorkerInit in the first worker %d", pid)
		}
	}
}

// hookPids lists the pids whose records say msg, each once.
func hookPids(p *proc, msg string) map[int]bool {
	pids := map[int]bool{}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, rec := range p.logs {
		if rec["msg"] == msg {
			pids[pidOf(rec)] = true
		}
	}
	return pids
}

// In single-process mode WorkerInit runs before the process serves, with
// WorkerID -1, and WorkerShutdown after its drain; a WorkerInit that
// fails makes it exit 1 with the error, without serving.
func TestE2ESingleProcessRunsWorkerHooks(t *testing.T) {
	p := startMaster(t, "GRACEFORK_SINGLE_PROCESS=1", "TEST_HOOKS=1")
	var at int
	addr := p.addr(&at)
	p.serving(&at, 0)
	if body := get(t, newClient(), "http://"+addr+"/hooks"); !strings.HasPrefix(body, "init=true slot=-1") {
		t.Fatalf("/hooks: %q", body)
	}
	p.signal(syscall.SIGTERM)
	p.waitLog(&at, "worker shutdown hook", nil)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit status %d, want 0", code)
	}

	p = startMaster(t, "GRACEFORK_SINGLE_PROCESS=1", "TEST_HOOKS=1", "TEST_INIT_FAIL=1")
	if code := p.wait(); code != 1 {
		t.Fatalf("exit status %d with a failing WorkerInit, want 1", code)
	}
	at = 0
	if err := p.waitLog(&at, "serve error", nil)["err"]; err != "prefork: WorkerInit: database unreachable" {
		t.Fatalf("error %q", err)
	}
	if strings.Contains(p.output(), "serving in single-process mode") || strings.Contains(p.output(), "worker shutdown hook") {
		t.Fatalf("served, or ran WorkerShutdown, after WorkerInit failed:\n%s", p.output())
	}
}
