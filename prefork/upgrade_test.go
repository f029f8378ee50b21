//go:build unix

package prefork_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/gracefork/gracefork/prefork"
)

// childrenOf returns the children of pid, keyed for pidfds.
func childrenOf(t *testing.T, pid int) map[int]int {
	out := map[int]int{}
	for i, c := range prefork.ChildPids(pid) {
		out[i] = c
	}
	return out
}

// upgraded waits until master has handed over and returns the new
// master's pid. The two masters log concurrently, so the new one's
// "serving" may come before or after the old one's "upgraded".
func (p *proc) upgraded(at *int, master int) int {
	p.t.Helper()
	from := *at
	p.waitLog(at, "upgraded", map[string]any{"pid": master})
	return pidOf(p.waitFor(&from, "serving", func(rec map[string]any) bool { return pidOf(rec) != master }))
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("PID file %q: %v", b, err)
	}
	return n
}

// Five upgrades in a row under strict keep-alive load: nothing lost, each
// old master and its workers gone after its upgrade, the PID file naming
// the newest master.
func TestE2EUpgradeUnderLoadLosesNothing(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "master.pid")
	p := startMaster(t, "TEST_WORKERS=2", "TEST_PIDFILE="+pidfile)
	var at int
	addr := p.addr(&at)
	master := pidOf(p.waitLog(&at, "serving", nil))
	if master != p.cmd.Process.Pid || readPID(t, pidfile) != master {
		t.Fatalf("serving pid %d, started %d, PID file %d", master, p.cmd.Process.Pid, readPID(t, pidfile))
	}
	load := startLoad(addr, 32)
	load.waitMore(t, 200)
	for i := range 5 {
		old := childrenOf(t, master)
		old[-1] = master
		fds := pidfds(t, old)
		syscall.Kill(master, syscall.SIGUSR2)
		next := p.upgraded(&at, master)
		waitGone(t, fds) // the old master and every worker of its generation
		if got := readPID(t, pidfile); got != next {
			t.Fatalf("upgrade %d: PID file names %d, want the new master %d", i, got, next)
		}
		master = next
		load.waitMore(t, 200)
	}
	load.finish(t)
	fds := pidfds(t, map[int]int{0: master})
	syscall.Kill(master, syscall.SIGTERM)
	waitGone(t, fds)
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Fatalf("PID file left after a clean exit: %v", err)
	}
}

// A new binary that cannot start changes nothing: the old master and its
// workers serve on, the failure is logged with what the new master said,
// and a later upgrade succeeds.
func TestE2EFailedUpgradeKeepsServing(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken")
	os.WriteFile(broken, nil, 0o600)
	p := startMaster(t, "TEST_WORKERS=2", "TEST_UPGRADE_BAD_IF="+broken)
	var at int
	addr := p.addr(&at)
	master := pidOf(p.waitLog(&at, "serving", nil))
	load := startLoad(addr, 16)
	load.waitMore(t, 200)
	syscall.Kill(master, syscall.SIGUSR2)
	rec := p.waitLog(&at, "upgrade failed", map[string]any{"pid": master})
	for _, want := range []string{"exit status 1", "Options.Workers = -1"} {
		if !strings.Contains(fmt.Sprint(rec["err"]), want) {
			t.Errorf("upgrade failure %q does not say %q", rec["err"], want)
		}
	}
	load.waitMore(t, 200)
	os.Remove(broken)
	syscall.Kill(master, syscall.SIGUSR2)
	next := p.upgraded(&at, master)
	load.waitMore(t, 200)
	load.finish(t)
	fds := pidfds(t, map[int]int{0: next})
	syscall.Kill(next, syscall.SIGTERM)
	waitGone(t, fds)
}

// An upgrade asked for while one is in progress is refused; no second
// process tree starts.
func TestE2EUpgradeDuringUpgradeRefused(t *testing.T) {
	gate := filepath.Join(t.TempDir(), "gate")
	if err := syscall.Mkfifo(gate, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startMaster(t, "TEST_WORKERS=1", "TEST_BOOT_GATE="+gate)
	var at int
	p.addr(&at)
	master := pidOf(p.waitLog(&at, "serving", nil))
	syscall.Kill(master, syscall.SIGUSR2)
	p.waitLog(&at, "upgrade started", map[string]any{"pid": master})
	p.waitLog(&at, "spawned", nil) // the new master's worker, waiting at the gate
	syscall.Kill(master, syscall.SIGUSR2)
	p.waitLog(&at, "upgrade refused", map[string]any{"err": "an upgrade is in progress"})
	open, err := os.OpenFile(gate, os.O_WRONLY, 0) // lets the new worker through
	if err != nil {
		t.Fatal(err)
	}
	open.Close()
	next := p.upgraded(&at, master)
	if n := strings.Count(p.output(), `"msg":"upgrade started"`); n != 1 {
		t.Fatalf("%d upgrades started, want 1", n)
	}
	fds := pidfds(t, map[int]int{0: next})
	syscall.Kill(next, syscall.SIGTERM)
	waitGone(t, fds)
}

// In a terminal, the process the shell started stays after upgrades, so
// Ctrl-C (SIGINT to the foreground process group) still ends everything,
// and the new master can itself be upgraded.
func TestE2EUpgradeInTerminalKeepsCtrlC(t *testing.T) {
	_, pts := openPTY(t)
	p := startMasterCmd(t, func(c *exec.Cmd) { c.Stdin = pts }, "TEST_WORKERS=1")
	var at int
	addr := p.addr(&at)
	first := pidOf(p.waitLog(&at, "serving", nil))
	syscall.Kill(first, syscall.SIGUSR2)
	second := p.upgraded(&at, first)
	p.waitLog(&at, "upgraded in a terminal: this process stays, so Ctrl-C still reaches the new master; it waits for it", nil)
	// The first master's pid lives on, yet the new master sees it gone
	// (its exec closed tableflip's pipe), so it can upgrade in turn.
	p.waitLog(&at, "previous master gone", map[string]any{"pid": second})
	syscall.Kill(second, syscall.SIGUSR2)
	third := p.upgraded(&at, second)
	p.waitLog(&at, "upgraded in a terminal: this process stays, so Ctrl-C still reaches the new master; it waits for it", map[string]any{"new_master": third})
	if body := get(t, newClient(), "http://"+addr+"/"); !strings.Contains(body, "worker=0") {
		t.Fatalf("answer %q", body)
	}
	fds := pidfds(t, map[int]int{0: second, 1: third})
	syscall.Kill(-first, syscall.SIGINT) // Ctrl-C
	waitGone(t, fds)
	if code := p.wait(); code != 0 {
		t.Fatalf("the process the shell started exited %d", code)
	}
}
