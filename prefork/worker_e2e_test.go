//go:build unix

package prefork_test

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// A reload to a binary that names other addresses fails, says why and
// what to do instead, and leaves the old workers serving.
func TestE2EReloadWithOtherAddressesFails(t *testing.T) {
	flag := t.TempDir() + "/more"
	p := startMaster(t, "TEST_WORKERS=1", "TEST_MORE_ADDRS_IF="+flag)
	var at int
	addr := p.addr(&at)
	old := p.ready(&at, 1)[0]
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	err := p.waitLog(&at, "reload failed", nil)["err"].(string)
	for _, want := range []string{"address list changed", "serves 1 addresses", "name 2", "upgrade (USR2)"} {
		if !strings.Contains(err, want) {
			t.Errorf("reload failure %q does not say %q", err, want)
		}
	}
	if strings.Contains(err, "leaked") {
		t.Errorf("reload failure %q blames a leaked marker", err)
	}
	if body := get(t, newClient(), "http://"+addr+"/"); !strings.Contains(body, fmt.Sprintf("pid=%d", old)) {
		t.Fatalf("answer %q, want the old worker %d", body, old)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
}

// A worker catches the master's signals instead of ignoring them, so the
// processes its handlers start can trap them; sending them to a worker
// still does not stop it.
func TestE2EHandlerChildrenInheritNoIgnoredSignals(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skipf("reads the ignored signals from /proc/self/status, which %s lacks", runtime.GOOS)
	}
	p := startMaster(t, "TEST_WORKERS=1")
	var at int
	url := "http://" + p.addr(&at) + "/sigign"
	pid := p.ready(&at, 1)[0]
	body := get(t, newClient(), url)
	var mask uint64
	if _, err := fmt.Sscanf(body, "SigIgn:\t%x", &mask); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGTTIN, syscall.SIGTTOU} {
		if mask&(1<<(sig-1)) != 0 {
			t.Errorf("a handler's child starts with %v ignored (SigIgn %016x)", sig, mask)
		}
	}
	for _, sig := range []syscall.Signal{syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGTTIN, syscall.SIGTTOU} {
		syscall.Kill(pid, sig)
	}
	// Answering needs a thread of the worker back in user space, where the
	// pending signals are delivered first.
	if body := get(t, newClient(), url); !strings.Contains(body, fmt.Sprintf("pid=%d", pid)) {
		t.Fatalf("after the signals: %q, want worker %d", body, pid)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
}

// A process a worker starts before Serve inherits neither the control
// socket nor the listeners.
func TestE2EBootChildInheritsNoSockets(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=1", "TEST_BOOT_CHILD=1")
	// Two cursors: the worker's own line passes through its stderr pipe,
	// and may reach the output before or after the master's "ready".
	var at, child int
	rec := p.waitLog(&child, "boot child", nil)
	if rec["out"] != "sockets=" || rec["err"] != "<nil>" {
		t.Fatalf("a child started at boot reports %q (err %v), want no sockets", rec["out"], rec["err"])
	}
	p.ready(&at, 1)
	p.signal(syscall.SIGTERM)
	p.wait()
}

// A worker still booting when its master is killed does not stay behind.
func TestE2EBootingWorkerFollowsKilledMaster(t *testing.T) {
	gate := t.TempDir() + "/gate"
	if err := unix.Mkfifo(gate, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startMaster(t, "TEST_WORKERS=1", "TEST_GATE_WORKERS="+gate)
	var at int
	p.addr(&at)
	pid := pidOf(p.waitLog(&at, "spawned", nil)) // blocks at the gate
	fds := pidfds(t, map[int]int{0: pid})
	p.signal(syscall.SIGKILL)
	p.wait()
	waitGone(t, fds)
}
