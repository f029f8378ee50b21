package prefork_test

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/gracefork/gracefork/prefork"
)

// procField returns a field of /proc/pid/status ("State", "NSpid").
func procField(pid int, key string) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// As a container's init (PID 1 of a pid namespace), the master reaps the
// orphans that handlers' processes leave behind, and still sees its own
// workers' exit statuses: a worker killed with SIGKILL is reported as
// such, not as a failed wait. It refuses to upgrade: the container would
// end with the old master.
func TestE2EPID1ReapsOrphans(t *testing.T) {
	p := startAsPID1(t, "TEST_WORKERS=1", "TEST_LOG_DEBUG=1")
	var at int
	url := "http://" + p.addr(&at) + "/orphan"
	p.waitLog(&at, "serving", map[string]any{"pid": 1})
	outer := prefork.ChildPids(p.cmd.Process.Pid)
	if len(outer) != 1 {
		t.Fatalf("unshare's children: %v", outer)
	}
	master := outer[0]

	for range 3 {
		body := get(t, newClient(), url)
		orphan, err := strconv.Atoi(strings.Fields(body)[0])
		if err != nil {
			t.Fatalf("answer %q", body)
		}
		p.waitLog(&at, "reaped an orphan", map[string]any{"pid": orphan, "status": "exit status 0"})
	}
	var worker int
	for _, c := range prefork.ChildPids(master) {
		if st := procField(c, "State"); strings.HasPrefix(st, "Z") {
			t.Fatalf("zombie %d (%s) under the master", c, procField(c, "NSpid"))
		}
		worker = c
	}
	nsWorker, _ := strconv.Atoi(strings.Fields(procField(worker, "NSpid"))[1])
	syscall.Kill(worker, syscall.SIGKILL)
	p.waitLog(&at, "exited", map[string]any{"pid": nsWorker, "status": "signal: killed"})
	p.waitLog(&at, "ready", map[string]any{"slot": 0})

	// An upgrade would end the container with the old master: refused.
	syscall.Kill(master, syscall.SIGUSR2)
	rec := p.waitLog(&at, "upgrade refused", nil)
	if err := rec["err"].(string); !strings.Contains(err, "PID 1") {
		t.Fatalf("upgrade refused: %q", err)
	}
	syscall.Kill(master, syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// In single-process mode as PID 1 the process reaps the orphans it is
// handed (after orphanGrace, so that a command's own Wait comes first),
// and still exits 0 at SIGTERM.
func TestE2ESingleProcessPID1ReapsOrphans(t *testing.T) {
	p := startAsPID1(t, "GRACEFORK_SINGLE_PROCESS=1")
	var at int
	url := "http://" + p.addr(&at) + "/orphan"
	p.waitLog(&at, "serving in single-process mode", map[string]any{"pid": 1})
	body := get(t, newClient(), url)
	orphan, err := strconv.Atoi(strings.Fields(body)[0])
	if err != nil {
		t.Fatalf("answer %q", body)
	}
	p.waitLog(&at, "reaped an orphan", map[string]any{"pid": orphan, "status": "exit status 0"})
	outer := prefork.ChildPids(p.cmd.Process.Pid)
	if len(outer) != 1 {
		t.Fatalf("unshare's children: %v", outer)
	}
	for _, c := range prefork.ChildPids(outer[0]) {
		if st := procField(c, "State"); strings.HasPrefix(st, "Z") {
			t.Fatalf("zombie %d left", c)
		}
	}
	syscall.Kill(outer[0], syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// startAsPID1 starts the helper as PID 1 of a new pid namespace, as a
// container's init, or skips the test where that cannot be done.
func startAsPID1(t *testing.T, env ...string) *proc {
	t.Helper()
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skipf("needs unshare(1): %v", err)
	}
	if out, err := exec.Command(unshare, "-p", "-f", "--mount-proc", "true").CombinedOutput(); err != nil {
		t.Skipf("cannot make a pid namespace here (needs root or user namespaces): %v %s", err, out)
	}
	// The test process is not visible in the namespace, so the helper
	// cannot watch it (TEST_PARENT_PID= turns that off): unshare dies with
	// the test instead, and the namespace's init with unshare.
	p := startMasterCmd(t, func(c *exec.Cmd) {
		c.Args = append([]string{unshare, "-p", "--kill-child", "--mount-proc"}, c.Args...)
		c.Path = unshare
		c.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}, append(env, "TEST_PARENT_PID=")...)
	// The log's pids are the namespace's: keep the harness from killing
	// whatever they name out here. The namespace dies with its init,
	// which the harness kills through unshare's process group.
	t.Cleanup(func() { p.mu.Lock(); clear(p.pids); p.mu.Unlock() })
	return p
}
