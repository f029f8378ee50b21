//go:build unix

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork"
	"github.com/gracefork/gracefork/prefork/preforktest"
	"go.uber.org/goleak"
)

// helperEnv makes the test binary run this program instead of the tests,
// with the command line it holds: as a master when a test starts it, as a
// worker when that master does.
const helperEnv = "COMPAT_TEST_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(helperEnv); args != "" {
		os.Exit(helperMain(strings.Fields(args)))
	}
	goleak.VerifyTestMain(m)
}

// helperMain is main with a JSON log, which the tests read to learn what
// the master did instead of waiting for time to pass. The master also
// exits when its standard input, a pipe from the test, ends: a test
// process that dies without cleaning up (a timeout's panic) leaves no
// master behind, and the workers follow their master.
func helperMain(args []string) int {
	if !prefork.IsWorker() {
		go func() {
			io.Copy(io.Discard, os.Stdin)
			os.Exit(3)
		}()
	}
	c, err := parseFlags(args, os.Stderr)
	if err != nil {
		return 2
	}
	c.opts.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	return run(c)
}

// serveUnderReloads runs the example with the router given, 2 workers,
// under keep-alive load on /hello/<name> from a client that never
// retries, through 2 rolling reloads and a graceful stop. It fails if a
// request fails or is answered with anything but its greeting, if one
// of the 3 generations of workers (the first, and each reload's)
// answered none of them, if an old worker did not exit 0, if the master
// does not exit 0, or if anything was written on stdout (gin's debug
// mode or request log, say).
func serveUnderReloads(t *testing.T, router string) {
	p := startMaster(t, "-router", router, "-b", "127.0.0.1:0", "-w", "2")
	var at int
	addr := p.addr(&at)
	// The pool's generations: the first workers, those of the first
	// reload, those of the second (the log's "gen" numbers each worker
	// instead). gens[i] holds generation i+1's pids by slot.
	gens := []map[int]int{p.ready(&at, 2)}

	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: preforktest.Patience}
	if body := get(t, c, "http://"+addr+"/"); !strings.HasPrefix(body, router+" worker=") {
		t.Errorf("GET /: %q, want the %s router's index", body, router)
	}

	load := startLoad(addr, router, 8)
	load.waitMore(t, 200)
	for range 2 {
		from := at
		p.signal(syscall.SIGHUP)
		gens = append(gens, p.ready(&at, 2))
		p.waitLog(&at, "reload done", nil)
		// Once the old workers are gone, the answers that follow come
		// from the new ones (but for the one answer each connection may
		// have had in flight).
		for _, pid := range gens[len(gens)-2] {
			p.waitExited(from, pid)
		}
		load.waitMore(t, 200)
	}
	load.finish(t)

	gen := map[int]int{} // the pool's generation by pid
	for g, pids := range gens {
		for _, pid := range pids {
			gen[pid] = g + 1
		}
	}
	byGen := map[int]int{}
	for pid, n := range load.pids {
		if gen[pid] == 0 {
			t.Errorf("%d answers from pid %d, not a worker the master started", n, pid)
		}
		byGen[gen[pid]] += n
	}
	t.Logf("answers by generation (1: the first workers, 2 and 3: each reload's): %v", byGen)
	for g := 1; g <= len(gens); g++ {
		if byGen[g] == 0 {
			t.Errorf("generation %d (pids %v) answered nothing: %v", g, gens[g-1], byGen)
		}
	}

	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d after SIGTERM, want 0", code)
	}
	if out := p.stdout.String(); out != "" {
		t.Errorf("the master and its workers wrote on stdout:\n%s", out)
	}
}

// proc is a master: the test binary re-executed with helperEnv. Its
// stderr carries its own and its workers' JSON log lines.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  *os.File // the master exits when it is closed
	stdout bytes.Buffer
	mu     sync.Mutex
	logs   []map[string]any
	raw    []string
	more   chan struct{} // closed at the next line, then replaced
	eof    chan struct{}
	exit   chan error
	pids   map[int]bool // every worker pid seen, killed at cleanup if alive
}

// startMaster starts the program with the arguments given.
func startMaster(t *testing.T, args ...string) *proc {
	t.Helper()
	if testing.Short() {
		t.Skip("starts processes")
	}
	p := &proc{t: t, more: make(chan struct{}), eof: make(chan struct{}), exit: make(chan error, 1), pids: map[int]bool{}}
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	// Empty PORT and WEB_CONCURRENCY count as unset (package flags).
	p.cmd.Env = append(os.Environ(), helperEnv+"="+strings.Join(args, " "), "PORT=", "WEB_CONCURRENCY=", "GIN_MODE=")
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd.Stdout = &p.stdout
	stdin, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdin, p.stdin = stdin, w
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	err = p.cmd.Start()
	stdin.Close()
	if err != nil {
		w.Close()
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
		json.Unmarshal([]byte(line), &rec) // other lines (a panic) stay in raw
		p.mu.Lock()
		p.raw = append(p.raw, line)
		if rec != nil {
			p.logs = append(p.logs, rec)
			if pid, ok := rec["pid"].(float64); ok && rec["msg"] == "spawned" {
				p.pids[int(pid)] = true
			}
		}
		close(p.more)
		p.more = make(chan struct{})
		p.mu.Unlock()
	}
}

// cleanup leaves nothing running, whatever the test did: the master's
// process group, then every worker seen (each has a group of its own).
// Only then can the output pipes, which they all hold, reach EOF.
func (p *proc) cleanup() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	p.mu.Lock()
	for pid := range p.pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	p.mu.Unlock()
	p.stdin.Close()
	<-p.eof
	if p.t.Failed() || os.Getenv("TEST_SHOW") != "" {
		p.t.Logf("master output:\n%s", p.output())
	}
}

// waitLog returns the first log record from index *from on with the
// message and the fields given, and moves *from past it.
func (p *proc) waitLog(from *int, msg string, fields map[string]any) map[string]any {
	p.t.Helper()
	deadline := time.After(preforktest.Patience)
	for {
		p.mu.Lock()
		for ; *from < len(p.logs); *from++ {
			if rec := p.logs[*from]; rec["msg"] == msg && matches(rec, fields) {
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
			p.t.Fatalf("master exited without logging %q %v", msg, fields)
		case <-deadline:
			p.t.Fatalf("no log %q %v within %v", msg, fields, preforktest.Patience)
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

// waitExited waits for the worker pid's exit, logged at index from or
// later, and checks that the master asked for it and that the worker
// drained and exited 0.
func (p *proc) waitExited(from, pid int) {
	p.t.Helper()
	rec := p.waitLog(&from, "exited", map[string]any{"pid": pid})
	if rec["expected"] != true || rec["status"] != "exit status 0" {
		p.t.Errorf("worker %d: exited %v expected=%v, want exit status 0, expected", pid, rec["status"], rec["expected"])
	}
}

// ready waits until n workers reported ready and returns their pids by
// slot.
func (p *proc) ready(from *int, n int) map[int]int {
	p.t.Helper()
	pids := map[int]int{}
	for len(pids) < n {
		rec := p.waitLog(from, "ready", nil)
		pids[int(rec["slot"].(float64))] = int(rec["pid"].(float64))
	}
	return pids
}

// addr returns the address the master bound.
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

// wait waits for the master to exit, and for its workers to close their
// stdout, and returns the master's exit status.
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

// get fetches url on a new connection and returns the body of a 200.
func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %q %v", url, resp.StatusCode, b, err)
	}
	return string(b)
}

// strictLoad is keep-alive HTTP/1.1 load that, like wrk, never retries: a
// request that fails for any reason, or is answered with anything but the
// greeting its path asks for, counts as failed. Each goroutine keeps one
// connection, and reconnects only when a response says Connection:
// close, or after a failure.
type strictLoad struct {
	addr, router string
	stop         chan struct{}
	wg           sync.WaitGroup

	mu      sync.Mutex
	n       int           // answered
	changed chan struct{} // closed at the next answer, when someone waits
	failed  []string
	pids    map[int]int // answers by worker pid
}

func startLoad(addr, router string, conns int) *strictLoad {
	l := &strictLoad{addr: addr, router: router, stop: make(chan struct{}), pids: map[int]int{}}
	for i := range conns {
		l.wg.Go(func() { l.conn(fmt.Sprintf("conn%d", i)) })
	}
	return l
}

// conn sends GET /hello/<name> on one connection until the load stops.
func (l *strictLoad) conn(name string) {
	var c net.Conn
	var br *bufio.Reader
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		if c == nil {
			var err error
			if c, err = net.Dial("tcp", l.addr); err != nil {
				l.fail("dial: " + err.Error())
				continue
			}
			br = bufio.NewReader(c)
		}
		pid, closeAfter, err := l.request(c, br, name)
		if err != nil {
			l.fail(err.Error())
			c.Close()
			c = nil
			continue
		}
		l.answered(pid)
		if closeAfter {
			c.Close()
			c = nil
		}
	}
}

func (l *strictLoad) request(c net.Conn, br *bufio.Reader, name string) (pid int, closeAfter bool, err error) {
	c.SetDeadline(time.Now().Add(preforktest.Patience))
	if _, err := io.WriteString(c, "GET /hello/"+name+" HTTP/1.1\r\nHost: gracefork\r\n\r\n"); err != nil {
		return 0, false, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, false, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, false, err
	}
	want := "hello " + name + " from " + l.router + " worker="
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), want) {
		return 0, false, fmt.Errorf("status %d %q, want 200 %q...", resp.StatusCode, body, want)
	}
	if _, err := fmt.Sscanf(string(body[strings.LastIndex(string(body), "pid="):]), "pid=%d\n", &pid); err != nil {
		return 0, false, fmt.Errorf("%q: no pid: %v", body, err)
	}
	return pid, resp.Close, nil
}

func (l *strictLoad) fail(why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failed = append(l.failed, why)
}

func (l *strictLoad) answered(pid int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	l.pids[pid]++
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
}

// waitMore waits until n more requests have been answered: proof that
// the load flows.
func (l *strictLoad) waitMore(t *testing.T, n int) {
	t.Helper()
	l.mu.Lock()
	want := l.n + n
	l.mu.Unlock()
	deadline := time.After(preforktest.Patience)
	for {
		l.mu.Lock()
		got := l.n
		if got >= want {
			l.mu.Unlock()
			return
		}
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("load stalled: %d answered, waiting for %d", got, want)
		}
	}
}

// finish stops the load and fails the test if any request failed.
func (l *strictLoad) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failed) > 0 {
		t.Errorf("%d of %d requests failed; first: %v", len(l.failed), l.n+len(l.failed), l.failed[:min(5, len(l.failed))])
	}
	t.Logf("%d requests answered, %d failed", l.n, len(l.failed))
}
