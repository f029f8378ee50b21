//go:build linux

package prefork_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork/preforktest"
)

// listeningOn returns the inodes of the TCP sockets listening on addr's
// port, from /proc/net/tcp and tcp6.
func listeningOn(t *testing.T, addr string) map[string]bool {
	t.Helper()
	_, port, _ := strings.Cut(addr, ":")
	n, _ := strconv.Atoi(port)
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) > 9 && fs[3] == "0A" && strings.HasSuffix(fs[1], fmt.Sprintf(":%04X", n)) {
				inodes[fs[9]] = true
			}
		}
	}
	return inodes
}

// listenerOf returns the inode of the one socket listening on addr that
// the process pid holds.
func listenerOf(t *testing.T, pid int, addr string) string {
	t.Helper()
	listening := listeningOn(t, addr)
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, e := range ents {
		l, _ := os.Readlink(dir + "/" + e.Name())
		if inode, ok := strings.CutPrefix(l, "socket:["); ok && listening[strings.TrimSuffix(inode, "]")] {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		t.Fatalf("pid %d holds %d sockets listening on %s: %v", pid, len(found), addr, found)
	}
	return found[0]
}

// socketsBySlot reads the listening socket of each slot's worker, and
// checks that no two slots share one.
func socketsBySlot(t *testing.T, addr string, pids map[int]int) map[int]string {
	t.Helper()
	socks, seen := map[int]string{}, map[string]int{}
	for slot, pid := range pids {
		s := listenerOf(t, pid, addr)
		if other, ok := seen[s]; ok {
			t.Fatalf("slots %d and %d share %s", other, slot, s)
		}
		seen[s], socks[slot] = slot, s
	}
	return socks
}

// newestReady returns the pid of each slot's newest ready worker.
func (p *proc) newestReady() map[int]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	pids := map[int]int{}
	for _, rec := range p.logs {
		if rec["msg"] == "ready" {
			pids[int(rec["slot"].(float64))] = pidOf(rec)
		}
	}
	return pids
}

// readySince returns the pid of each slot's worker that reported ready
// from log record from on.
func (p *proc) readySince(from int) map[int]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	pids := map[int]int{}
	for _, rec := range p.logs[from:] {
		if rec["msg"] == "ready" {
			pids[int(rec["slot"].(float64))] = pidOf(rec)
		}
	}
	return pids
}

// spread waits until every pid answered some of load's requests.
func (l *strictLoad) spread(t *testing.T, pids map[int]int) {
	t.Helper()
	deadline := time.Now().Add(preforktest.Patience)
	for {
		l.waitMore(t, 100)
		l.mu.Lock()
		missing := 0
		for _, pid := range pids {
			if l.pids["pid="+strconv.Itoa(pid)] == 0 {
				missing++
			}
		}
		got := fmt.Sprint(l.pids)
		l.mu.Unlock()
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the workers %v answered nothing: %s", missing, pids, got)
		}
	}
}

// With ReusePort each slot's workers accept from a socket of the slot's
// own — no two workers hold the same listening socket, and every worker gets
// connections — and a rolling reload hands each slot's socket to its
// replacement, under strict keep-alive load, losing nothing.
func TestE2EReusePortSocketPerSlotAndReload(t *testing.T) {
	p := startMaster(t, "TEST_REUSE_PORT=1", "TEST_WORKERS=3")
	var at int
	addr := p.addr(&at)
	pids := p.ready(&at, 3)
	before := socketsBySlot(t, addr, pids)
	load := startLoad(addr, 32)
	load.spread(t, pids)
	for range 3 {
		p.signal(syscall.SIGHUP)
		p.waitLog(&at, "reload done", nil)
		load.waitMore(t, 200)
	}
	load.finish(t)
	for slot, s := range socketsBySlot(t, addr, p.newestReady()) {
		if s != before[slot] {
			t.Errorf("slot %d: the reload's worker serves %s, not the slot's socket %s", slot, s, before[slot])
		}
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
}

// A killed worker's slot keeps its socket: the connections made while the
// slot is empty — its replacement waits at a gate before it serves — wait
// in the slot's queue and are answered by the replacement, none lost.
// (Those that Linux hands to the other slot's socket are answered at once.)
func TestE2EReusePortKilledWorkersQueueSurvives(t *testing.T) {
	gate := t.TempDir() + "/gate"
	if err := syscall.Mkfifo(gate, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startMaster(t, "TEST_REUSE_PORT=1", "TEST_WORKERS=2", "TEST_GATE_FROM_GEN=3", "TEST_GATE_FIFO="+gate)
	var at int
	addr := p.addr(&at)
	old := p.ready(&at, 2)
	syscall.Kill(old[1], syscall.SIGKILL)
	p.waitLog(&at, "exited", map[string]any{"pid": old[1], "status": "signal: killed"})
	next := pidOf(p.waitLog(&at, "spawned", map[string]any{"slot": 1})) // held at the gate
	const n = 32
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", addr) // connected: in one slot's queue
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	f, err := os.OpenFile(gate, os.O_WRONLY, 0) // the replacement goes on
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	p.waitLog(&at, "ready", map[string]any{"pid": next})
	by := map[string]int{}
	for _, c := range conns {
		c.SetDeadline(time.Now().Add(preforktest.Patience))
		b, err := io.ReadAll(c)
		if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 200") {
			t.Fatalf("a connection made while slot 1 was empty: %q %v", b, err)
		}
		f := strings.Fields(string(b))
		by[f[len(f)-1]]++
	}
	t.Logf("answers by worker: %v (slot 0: pid %d, slot 1's replacement: pid %d)", by, old[0], next)
	if by[fmt.Sprintf("pid=%d", next)] == 0 {
		t.Fatalf("the replacement answered none of the %d connections: %v", n, by)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
}

// Scaling up binds the new slot's socket, and down closes the removed
// slot's socket the moment its queue is empty, while its worker still
// accepts, before the worker drains; stop-workers keeps slot 0's socket,
// where connections wait until workers come back. Under strict keep-alive
// load nothing is lost. Each cycle waits until the new worker has taken
// connections, so that the scale-down has clients to send away.
func TestE2EReusePortScaleUnderLoad(t *testing.T) {
	p := startMaster(t, "TEST_REUSE_PORT=1", "TEST_WORKERS=2")
	var at int
	addr := p.addr(&at)
	p.ready(&at, 2)
	load := startLoad(addr, 32)
	load.waitMore(t, 200)
	scaleCycles(t, p, &at, load, envInt("TEST_SCALE_CYCLES", 3))
	p.signal(syscall.SIGWINCH)
	from := at
	p.waitLog(&from, "slot socket closed", map[string]any{"slot": 1})
	p.waitLog(&at, "scaled", map[string]any{"workers": 0})
	p.waitLog(&at, "exited", map[string]any{"expected": true})
	p.waitLog(&at, "exited", map[string]any{"expected": true})
	p.signal(syscall.SIGHUP)
	p.waitLog(&at, "slot socket listening", map[string]any{"slot": 1, "how": "listening again"})
	p.ready(&at, 2)
	load.waitMore(t, 200)
	load.finish(t)
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
}

// scaleCycles adds a third worker and removes it, n times, under load,
// and returns how many connections the scale-downs reported reset.
func scaleCycles(t *testing.T, p *proc, at *int, load *strictLoad, n int) (reset int) {
	t.Helper()
	for range n {
		p.signal(syscall.SIGTTIN)
		pid := pidOf(p.waitLog(at, "ready", map[string]any{"slot": 2}))
		load.spread(t, map[int]int{2: pid})
		p.signal(syscall.SIGTTOU)
		// "why" may go on to say where the queue's connections went
		// (tcp_migrate_req=1): the prefix is the reason.
		rec := p.waitFor(at, "slot socket closed", func(rec map[string]any) bool {
			why, _ := rec["why"].(string)
			return rec["slot"] == float64(2) && strings.HasPrefix(why, "scale-down")
		})
		if why := rec["why"].(string); why != "scale-down" {
			t.Logf("scale-down: %s", why)
		}
		if e, ok := rec["err"].(string); ok {
			var k int
			fmt.Sscanf(e, "%d ", &k) // "N connections were waiting…" or "1 connection was…"
			reset += k
			t.Logf("scale-down: %s", e)
		}
		p.waitLog(at, "exited", map[string]any{"slot": 2, "expected": true})
		load.waitMore(t, 100)
	}
	return reset
}

// The same with a new connection for every request, the load that keeps
// the most in a socket's queue. What a scale-down can still lose is a
// connection whose handshake completes between the master's last look at
// the queue and the close: reset (or closed before any answer), never
// left hanging. Measured: none in
// 20 scale-downs (70,013 requests, 8 clients, tcp_migrate_req=0); closing
// at once instead, while the worker still accepts, lost 27 in 20. The
// test allows one reset per scale-down, and none with
// net.ipv4.tcp_migrate_req=1, which moves such connections.
func TestE2EReusePortScaleDownUnderChurn(t *testing.T) {
	p := startMaster(t, "TEST_REUSE_PORT=1", "TEST_WORKERS=2")
	var at int
	addr := p.addr(&at)
	migrate := p.waitLog(&at, "per-slot sockets", nil)["queued_at_close"]
	p.ready(&at, 2)
	load := startLoadOf(&strictLoad{addr: addr, churn: true}, 8)
	load.waitMore(t, 200)
	cycles := envInt("TEST_SCALE_CYCLES", 3)
	reset := scaleCycles(t, p, &at, load, cycles)
	failed := load.end()
	t.Logf("%d scale-downs under churn: %d requests answered, %d failed %v; the master saw %d reset; %v",
		cycles, load.count(), len(failed), failed[:min(5, len(failed))], reset, migrate)
	allowed := cycles
	if strings.Contains(fmt.Sprint(migrate), "tcp_migrate_req=1") {
		allowed = 0
	}
	if len(failed) > allowed {
		t.Errorf("%d requests failed in %d scale-downs, want at most %d", len(failed), cycles, allowed)
	}
	for _, f := range failed {
		// Reset, or closed before any answer (seen once in 9 runs:
		// "unexpected EOF"): the connection was dropped, never left
		// hanging.
		if !strings.Contains(f, "connection reset by peer") && !strings.Contains(f, "EOF") {
			t.Errorf("a failure that is neither a reset nor a close: %s", f)
		}
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
}

// Binary upgrades under strict keep-alive load hand every slot's socket to
// the new master: one with a worker more binds the new slot's socket, one
// with a worker fewer closes the surplus slot's socket once its queue is
// empty, while the old master's worker still accepts, before it takes
// over. Nothing is lost.
func TestE2EReusePortUpgradeUnderLoad(t *testing.T) {
	count := t.TempDir() + "/workers"
	setWorkers := func(n int) {
		if err := os.WriteFile(count, []byte(strconv.Itoa(n)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	setWorkers(2)
	p := startMaster(t, "TEST_REUSE_PORT=1", "TEST_WORKERS_FILE="+count)
	var at int
	addr := p.addr(&at)
	master := pidOf(p.waitLog(&at, "serving", nil))
	load := startLoad(addr, 32)
	load.waitMore(t, 200)
	for _, n := range []int{3, 2, 2} {
		setWorkers(n)
		old := childrenOf(t, master)
		old[-1] = master
		fds := pidfds(t, old)
		from := at
		syscall.Kill(master, syscall.SIGUSR2)
		next := p.upgraded(&at, master)
		waitGone(t, fds)
		mine := func(rec map[string]any) bool { return pidOf(rec) == next }
		for slot := range 2 {
			f := from
			rec := p.waitFor(&f, "slot socket listening", func(rec map[string]any) bool { return mine(rec) && rec["slot"] == float64(slot) })
			if rec["how"] != "inherited" {
				t.Errorf("new master %d: slot %d's socket %v, want inherited", next, slot, rec["how"])
			}
		}
		f := from
		switch n {
		case 3:
			p.waitFor(&f, "slot socket listening", func(rec map[string]any) bool {
				return mine(rec) && rec["slot"] == float64(2) && rec["how"] == "bound"
			})
		case 2:
			if len(old) == 4 { // the old master had three workers
				rec := p.waitFor(&f, "slot socket closed", func(rec map[string]any) bool { return mine(rec) && rec["slot"] == float64(2) })
				if rec["err"] != nil {
					t.Errorf("surplus socket closed with: %v", rec["err"])
				}
			}
		}
		master = next
		if got := p.readySince(from); len(got) != n {
			t.Fatalf("the new master's workers: %v, want %d", got, n)
		} else {
			load.spread(t, got) // each serves
		}
	}
	load.finish(t)
	fds := pidfds(t, map[int]int{0: master})
	syscall.Kill(master, syscall.SIGTERM)
	waitGone(t, fds)
}

// A slot whose worker cannot boot is degraded: its socket closes, so that
// new connections go to the slot that serves instead of waiting for a
// worker that may never come, and listens again once the slot is
// restored.
func TestE2EReusePortDegradedSlotClosesItsSocket(t *testing.T) {
	flag := t.TempDir() + "/broken"
	p := startMaster(t, "TEST_REUSE_PORT=1", "TEST_WORKERS=2", "TEST_MAX_BOOT=2", "TEST_BOOT_PANIC_IF="+flag)
	var at int
	url := "http://" + p.addr(&at) + "/"
	pids := p.ready(&at, 2)
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pids[1], syscall.SIGKILL)
	p.waitLog(&at, "degraded", map[string]any{"slot": 1})
	p.waitLog(&at, "slot socket closed", map[string]any{"slot": 1, "why": "degraded: its worker cannot boot"})
	c := newClient()
	for range 16 { // each on a new connection: none waits for slot 1
		if body := get(t, c, url); !strings.Contains(body, fmt.Sprintf("pid=%d", pids[0])) {
			t.Fatalf("answer %q while slot 1 is degraded, want slot 0's worker %d", body, pids[0])
		}
	}
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	next := pidOf(p.waitLog(&at, "restored", map[string]any{"slot": 1}))
	p.waitLog(&at, "slot socket listening", map[string]any{"slot": 1, "how": "listening again"})
	deadline := time.Now().Add(preforktest.Patience)
	for !strings.Contains(get(t, c, url), fmt.Sprintf("pid=%d", next)) {
		if time.Now().After(deadline) {
			t.Fatalf("the restored worker %d answers nothing", next)
		}
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
}

// An upgrade cannot switch between one shared socket and a socket per
// slot: the new master says why and fails, and the old one serves on.
func TestE2EUpgradeCannotSwitchReusePort(t *testing.T) {
	for _, c := range []struct {
		name string
		env  []string
		want string
	}{
		{"to per-slot", nil, "the old master serves this address on one socket that all its workers share"},
		{"to shared", []string{"TEST_REUSE_PORT=1"}, "the old master serves this address on a socket per slot"},
	} {
		t.Run(c.name, func(t *testing.T) {
			flag := t.TempDir() + "/flip"
			if err := os.WriteFile(flag, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			p := startMaster(t, append(c.env, "TEST_WORKERS=1", "TEST_REUSE_PORT_FLIP_IF="+flag)...)
			var at int
			url := "http://" + p.addr(&at) + "/"
			p.waitLog(&at, "serving", nil)
			p.signal(syscall.SIGUSR2)
			rec := p.waitLog(&at, "upgrade failed", nil)
			if err := rec["err"].(string); !strings.Contains(err, c.want) || !strings.Contains(err, "restart the service to switch") {
				t.Fatalf("upgrade failure %q does not say %q", err, c.want)
			}
			get(t, newClient(), url)
			p.signal(syscall.SIGTERM)
			if code := p.wait(); code != 0 {
				t.Fatalf("master exit %d", code)
			}
		})
	}
}

// A stop with per-slot sockets resets nothing either: each socket closes
// with its last worker's copy, in the stop's first phase, before any
// client is told to reconnect (see TestE2EStopUnderLoadResetsNothing).
func TestE2EReusePortStopUnderLoadResetsNothing(t *testing.T) {
	stopUnderLoad(t, "TEST_WORKERS=2", "TEST_REUSE_PORT=1")
}

// While two masters share the slot sockets, neither changes the worker
// count: TTIN in the old master during an upgrade is refused, and the
// upgrade then completes.
func TestE2EReusePortScaleRefusedDuringUpgrade(t *testing.T) {
	gate := t.TempDir() + "/gate"
	if err := syscall.Mkfifo(gate, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startMaster(t, "TEST_REUSE_PORT=1", "TEST_WORKERS=1", "TEST_BOOT_GATE="+gate)
	var at int
	p.addr(&at)
	master := pidOf(p.waitLog(&at, "serving", nil))
	p.signal(syscall.SIGUSR2)
	p.waitLog(&at, "upgrade started", nil)
	p.signal(syscall.SIGTTIN)
	rec := p.waitLog(&at, "action refused", map[string]any{"action": "add-worker"})
	if why := rec["why"].(string); !strings.Contains(why, "during an upgrade") {
		t.Fatalf("refusal %q", why)
	}
	f, err := os.OpenFile(gate, os.O_WRONLY, 0) // the new master's worker goes on
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	next := p.upgraded(&at, master)
	fds := pidfds(t, map[int]int{0: next})
	syscall.Kill(next, syscall.SIGTERM)
	waitGone(t, fds)
}
