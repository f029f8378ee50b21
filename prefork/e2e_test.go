//go:build unix

package prefork_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork/preforktest"
	"golang.org/x/sys/unix"
)

// proc is a real master: the test binary re-executed with helperEnv. Its
// stderr carries its own and its workers' JSON log lines, which the test
// reads to learn what happened, instead of waiting for time to pass.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs []map[string]any
	raw  []string
	more chan struct{}
	eof  chan struct{}
	exit chan error
	pids map[int]bool // every worker pid seen, killed at cleanup if alive
}

func startMaster(t *testing.T, env ...string) *proc {
	t.Helper()
	return startMasterCmd(t, nil, env...)
}

// startMasterCmd is startMaster with a chance to adjust the command first.
func startMasterCmd(t *testing.T, adjust func(*exec.Cmd), env ...string) *proc {
	t.Helper()
	if testing.Short() {
		t.Skip("starts processes")
	}
	p := &proc{t: t, more: make(chan struct{}), eof: make(chan struct{}), exit: make(chan error, 1), pids: map[int]bool{}}
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Env = append(os.Environ(), append([]string{helperEnv + "=1"}, env...)...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if adjust != nil {
		adjust(p.cmd)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go p.scan(stderr)
	go func() { <-p.eof; p.exit <- p.cmd.Wait() }()
	t.Cleanup(p.cleanup)
	return p
}

func (p *proc) scan(r io.Reader) {
	defer close(p.eof)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var rec map[string]any
		json.Unmarshal([]byte(line), &rec) // non-JSON lines (a panic) stay in raw
		p.mu.Lock()
		p.raw = append(p.raw, line)
		if rec != nil {
			p.logs = append(p.logs, rec)
			if pid, ok := rec["pid"].(float64); ok && (rec["msg"] == "spawned" || rec["msg"] == "serving") {
				p.pids[int(pid)] = true // workers, and masters after upgrades
			}
		}
		close(p.more)
		p.more = make(chan struct{})
		p.mu.Unlock()
	}
}

// cleanup leaves nothing running, whatever the test did: the master's
// process group (with every master an upgrade started), then every worker
// seen. Only then can the output pipe, which they all hold, reach EOF.
func (p *proc) cleanup() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	p.mu.Lock()
	for pid := range p.pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	p.mu.Unlock()
	<-p.eof
	if p.t.Failed() || os.Getenv("TEST_SHOW") != "" {
		p.t.Logf("master output:\n%s", p.output())
	}
}

// waitLog returns the first log record from index *from on with the
// message and the fields given, and moves *from past it.
func (p *proc) waitLog(from *int, msg string, fields map[string]any) map[string]any {
	p.t.Helper()
	return p.waitFor(from, msg, func(rec map[string]any) bool { return matches(rec, fields) })
}

// waitFor is waitLog with a predicate.
func (p *proc) waitFor(from *int, msg string, ok func(map[string]any) bool) map[string]any {
	p.t.Helper()
	deadline := time.After(preforktest.Patience)
	for {
		p.mu.Lock()
		for ; *from < len(p.logs); *from++ {
			if rec := p.logs[*from]; rec["msg"] == msg && ok(rec) {
				*from++
				p.mu.Unlock()
				return rec
			}
		}
		more := p.more
		p.mu.Unlock()
		select {
		case <-more:
		case <-p.eof:
			p.t.Fatalf("master exited without logging %q", msg)
		case <-deadline:
			p.t.Fatalf("no log %q within %v", msg, preforktest.Patience)
		}
	}
}

func matches(rec map[string]any, fields map[string]any) bool {
	for k, v := range fields {
		if fmt.Sprint(rec[k]) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

func pidOf(rec map[string]any) int { return int(rec["pid"].(float64)) }

// ready waits until n workers reported ready and returns their pids by slot.
func (p *proc) ready(from *int, n int) map[int]int {
	p.t.Helper()
	pids := map[int]int{}
	for len(pids) < n {
		rec := p.waitLog(from, "ready", nil)
		pids[int(rec["slot"].(float64))] = pidOf(rec)
	}
	return pids
}

func (p *proc) addr(from *int) string {
	p.t.Helper()
	return p.waitLog(from, "listening", nil)["addr"].(string)
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// wait waits for the master to exit and returns its exit status.
func (p *proc) wait() int {
	p.t.Helper()
	select {
	case err := <-p.exit:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			p.t.Fatal(err)
		}
		return 0
	case <-time.After(preforktest.Patience):
		p.t.Fatalf("master did not exit within %v", preforktest.Patience)
		return -1
	}
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.raw, "\n")
}

// pidfds opens a pidfd (a kqueue on the BSDs) for each process, so its
// exit can be awaited without polling, even though it is not our child.
func pidfds(t *testing.T, pids map[int]int) map[int]int {
	t.Helper()
	fds := map[int]int{}
	for _, pid := range pids {
		fd, err := openExit(pid)
		if err != nil {
			t.Fatalf("%s(%d): %v", openExitName, pid, err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		fds[pid] = fd
	}
	return fds
}

// waitGone waits until every process behind fds has exited.
func waitGone(t *testing.T, fds map[int]int) {
	t.Helper()
	deadline := time.Now().Add(preforktest.Patience)
	for pid, fd := range fds {
		for {
			ms := int(time.Until(deadline).Milliseconds())
			if ms <= 0 {
				t.Fatalf("process %d still alive after %v", pid, preforktest.Patience)
			}
			gone, err := awaitExit(fd, ms)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if gone {
				break
			}
		}
	}
}

func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %q %v", url, resp.StatusCode, b, err)
	}
	return string(b)
}

func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: preforktest.Patience}
}

// A worker killed with SIGKILL is replaced in its slot, and a connection
// made while the slot is empty waits in the master's socket and is
// answered by the replacement.
func TestE2EKilledWorkerIsReplaced(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=1")
	var at int
	url := "http://" + p.addr(&at) + "/"
	old := p.ready(&at, 1)[0]
	c := newClient()
	if body := get(t, c, url); !strings.Contains(body, fmt.Sprintf("worker=0 pid=%d", old)) {
		t.Fatalf("before the kill: %q", body)
	}
	syscall.Kill(old, syscall.SIGKILL)
	p.waitLog(&at, "exited", map[string]any{"pid": old, "status": "signal: killed"})
	body := get(t, c, url) // queued until the new worker accepts
	rec := p.waitLog(&at, "ready", map[string]any{"slot": 0})
	if want := fmt.Sprintf("worker=0 pid=%d", pidOf(rec)); !strings.Contains(body, want) || pidOf(rec) == old {
		t.Fatalf("after the kill: %q, want %q from a new pid", body, want)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
}

// SIGTERM while a request is in flight: the request completes, then the
// master exits 0.
func TestE2ETermDuringSlowRequest(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=2")
	var at int
	url := "http://" + p.addr(&at) + "/slow"
	fds := pidfds(t, p.ready(&at, 2))
	slow := startSlow(t, url)
	started := p.waitLog(&at, "slow request started", nil)
	p.signal(syscall.SIGTERM)
	p.waitLog(&at, "worker draining", map[string]any{"pid": started["pid"]})
	slow.finish(t, started["pid"])
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
	waitGone(t, fds)
}

// slowReq is a request to /slow whose body the test is still sending.
type slowReq struct {
	feed *io.PipeWriter
	res  chan string
}

func startSlow(t *testing.T, url string) *slowReq {
	body, feed := io.Pipe()
	s := &slowReq{feed: feed, res: make(chan string, 1)}
	go func() {
		resp, err := newClient().Post(url, "text/plain", body)
		if err != nil {
			s.res <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		s.res <- fmt.Sprintf("%d %s %v", resp.StatusCode, b, err)
	}()
	feed.Write([]byte("part one;"))
	return s
}

// finish sends the rest of the body and checks the worker answered in full.
func (s *slowReq) finish(t *testing.T, pid any) {
	t.Helper()
	s.feed.Write([]byte("part two"))
	s.feed.Close()
	if got, want := <-s.res, fmt.Sprintf("200 done worker="); !strings.HasPrefix(got, want) ||
		!strings.Contains(got, fmt.Sprintf("pid=%v read=17 err=<nil>", pid)) {
		t.Fatalf("slow request: %q, want a full answer from pid %v", got, pid)
	}
}

// SIGKILL to the master: every worker notices the control channel close
// and exits by itself. No orphans.
// A request in flight when the master dies is still answered.
func TestE2EKilledMasterLeavesNoWorkers(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=2")
	var at int
	url := "http://" + p.addr(&at) + "/slow"
	fds := pidfds(t, p.ready(&at, 2))
	slow := startSlow(t, url)
	started := p.waitLog(&at, "slow request started", nil)
	p.signal(syscall.SIGKILL)
	p.wait()
	slow.finish(t, started["pid"])
	waitGone(t, fds)
}

// A worker that panics at boot: after MaxBootFailures attempts Serve
// returns an error quoting the exit status and the panic.
func TestE2EBootPanicFailsServe(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=1", "TEST_BOOT_PANIC=1", "TEST_MAX_BOOT=2")
	if code := p.wait(); code != 1 {
		t.Fatalf("master exit %d, want 1", code)
	}
	var at int
	rec := p.waitLog(&at, "serve error", nil)
	err := rec["err"].(string)
	for _, want := range []string{"failed to boot 2 times", "exit status 2", "panic: boom at boot"} {
		if !strings.Contains(err, want) {
			t.Errorf("Serve's error %q does not say %q", err, want)
		}
	}
}

// Ctrl-C in a terminal sends SIGINT to the foreground process group: the
// master's, as the workers have groups of their own. Everything ends,
// with no goroutine dump.
func TestE2ECtrlC(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=2")
	var at int
	p.addr(&at)
	fds := pidfds(t, p.ready(&at, 2))
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGINT)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
	waitGone(t, fds)
	if out := p.output(); strings.Contains(out, "goroutine ") || strings.Contains(out, "panic") {
		t.Fatalf("output has a dump:\n%s", out)
	}
}

// systemd's default KillMode sends SIGTERM to every process at once: the
// workers drain by themselves, the master is not fooled into restarting,
// and a request in flight completes.
func TestE2ETermToEveryProcess(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=2")
	var at int
	url := "http://" + p.addr(&at) + "/"
	pids := p.ready(&at, 2)
	fds := pidfds(t, pids)
	get(t, newClient(), url)
	p.signal(syscall.SIGTERM)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
	waitGone(t, fds)
}

// Two workers both answer under concurrent load.
func TestE2ETwoWorkersShareLoad(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=2")
	var at int
	url := "http://" + p.addr(&at) + "/"
	pids := p.ready(&at, 2)
	seen := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	c := newClient()
	for range 16 {
		wg.Go(func() {
			for range 100 {
				resp, err := c.Get(url)
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				mu.Lock()
				seen[strings.Fields(string(b))[1]]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for slot, pid := range pids {
		if seen[fmt.Sprintf("pid=%d", pid)] == 0 {
			t.Errorf("worker %d (pid %d) answered none of 1600 requests: %v", slot, pid, seen)
		}
	}
	p.signal(syscall.SIGTERM)
	p.wait()
}

// A process that carries the worker marker but was not started by a
// master says so and exits, without serving or hanging.
func TestE2ELeakedMarker(t *testing.T) {
	for name, val := range map[string]string{
		"garbage":       "yes",
		"no control fd": "v1;slot=0;gen=1;ctl=3;fds=4;procs=0",
	} {
		t.Run(name, func(t *testing.T) {
			p := startMaster(t, "GRACEFORK_WORKER_7QZ3K9="+val)
			if code := p.wait(); code != 1 {
				t.Fatalf("exit %d, want 1", code)
			}
			var at int
			err := p.waitLog(&at, "serve error", nil)["err"].(string)
			if !strings.Contains(err, "not started by a gracefork master") || !strings.Contains(err, "unset GRACEFORK_WORKER_7QZ3K9") {
				t.Fatalf("error %q does not explain the leak", err)
			}
		})
	}
}

// Rolling reloads under keep-alive load from a client that never retries:
// no request fails, and the answers come from the new workers after.
func TestE2EReloadUnderLoadLosesNothing(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=2")
	var at int
	addr := p.addr(&at)
	p.ready(&at, 2)
	load := startLoad(addr, 32)
	load.waitMore(t, 200)
	for range 5 {
		p.signal(syscall.SIGHUP)
		p.waitLog(&at, "reload done", nil)
		load.waitMore(t, 200)
	}
	load.finish(t)
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
	if got := strings.Count(p.output(), `"msg":"spawned"`); got != 12 {
		t.Fatalf("%d workers spawned, want 2 + 5×2", got)
	}
}

// TTIN/TTOU pairs and a WINCH followed by HUP under the same load.
func TestE2EScaleAndStopWorkersUnderLoad(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=2")
	var at int
	addr := p.addr(&at)
	p.ready(&at, 2)
	load := startLoad(addr, 32)
	load.waitMore(t, 200)
	for range 3 {
		p.signal(syscall.SIGTTIN)
		p.waitLog(&at, "ready", map[string]any{"slot": 2})
		load.waitMore(t, 100)
		p.signal(syscall.SIGTTOU)
		p.waitLog(&at, "exited", map[string]any{"slot": 2, "expected": true})
		load.waitMore(t, 100)
	}
	// WINCH drains every worker; connections wait in the master's socket
	// until HUP brings workers back.
	p.signal(syscall.SIGWINCH)
	p.waitLog(&at, "scaled", map[string]any{"workers": 0})
	p.waitLog(&at, "exited", map[string]any{"expected": true})
	p.waitLog(&at, "exited", map[string]any{"expected": true})
	p.signal(syscall.SIGHUP)
	p.ready(&at, 2)
	load.waitMore(t, 200)
	load.finish(t)
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
}

// A reload to a binary whose workers cannot boot leaves the old workers
// serving, under load, with nothing lost.
func TestE2EFailedReloadKeepsServing(t *testing.T) {
	dir := t.TempDir()
	flag := dir + "/broken"
	p := startMaster(t, "TEST_WORKERS=2", "TEST_BOOT_PANIC_IF="+flag)
	var at int
	addr := p.addr(&at)
	old := p.ready(&at, 2)
	load := startLoad(addr, 16)
	load.waitMore(t, 100)
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	rec := p.waitLog(&at, "reload failed", nil)
	if err := rec["err"].(string); !strings.Contains(err, "panic: boom at boot") {
		t.Fatalf("reload failure %q lacks the worker's stderr", err)
	}
	load.waitMore(t, 200)
	load.finish(t)
	body := get(t, newClient(), "http://"+addr+"/")
	if !strings.Contains(body, fmt.Sprintf("pid=%d", old[0])) && !strings.Contains(body, fmt.Sprintf("pid=%d", old[1])) {
		t.Fatalf("answer %q not from an old worker %v", body, old)
	}
	p.signal(syscall.SIGTERM)
	p.wait()
}

// A hijacked connection (a WebSocket, say) outlives the request tracking:
// the drain waits for its handler, which learns of the drain through
// Draining and says goodbye, instead of being cut.
func TestE2EHijackedConnectionSeesDrain(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=1")
	var at int
	addr := p.addr(&at)
	old := p.ready(&at, 1)[0]
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /hijack HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	if line, err := br.ReadString('\n'); err != nil || line != fmt.Sprintf("hijacked pid=%d\n", old) {
		t.Fatalf("hijack: %q %v", line, err)
	}
	p.signal(syscall.SIGHUP)
	if line, err := br.ReadString('\n'); err != nil || line != fmt.Sprintf("bye pid=%d\n", old) {
		t.Fatalf("after the reload: %q %v, want a goodbye from the old worker", line, err)
	}
	p.waitLog(&at, "reload done", nil)
	p.waitLog(&at, "exited", map[string]any{"pid": old, "status": "exit status 0"})
	p.signal(syscall.SIGTERM)
	p.wait()
}

// A worker stopped with SIGSTOP stops reporting: the master ends it (with
// a stack dump: see TestE2EHungWorkerDumpsItsStacks) and a new worker
// takes its slot.
func TestE2EStoppedWorkerIsReplaced(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=1", "TEST_HEARTBEAT_S=2")
	var at int
	url := "http://" + p.addr(&at) + "/"
	old := p.ready(&at, 1)[0]
	syscall.Kill(old, syscall.SIGSTOP)
	p.waitLog(&at, "hung", map[string]any{"pid": old})
	p.waitLog(&at, "exited", map[string]any{"pid": old})
	next := pidOf(p.waitLog(&at, "ready", map[string]any{"slot": 0}))
	if body := get(t, newClient(), url); !strings.Contains(body, fmt.Sprintf("pid=%d", next)) {
		t.Fatalf("answer %q, want the new worker %d", body, next)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
}
