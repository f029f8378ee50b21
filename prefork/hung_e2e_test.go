//go:build unix

package prefork_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork/preforktest"
)

// pinnedConn is a keep-alive connection that a given worker accepted.
type pinnedConn struct {
	c  net.Conn
	br *bufio.Reader
}

// pinTo opens connections until the worker pid accepts one; the others
// are closed after their answer.
func pinTo(t *testing.T, addr string, pid int) *pinnedConn {
	t.Helper()
	deadline := time.Now().Add(preforktest.Patience)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		pc := &pinnedConn{c: c, br: bufio.NewReader(c)}
		body, err := pc.get()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(body, fmt.Sprintf("pid=%d\n", pid)) {
			t.Cleanup(func() { c.Close() })
			return pc
		}
		c.Close()
	}
	t.Fatalf("worker %d accepted no connection within %v", pid, preforktest.Patience)
	return nil
}

// get sends a request on the connection and returns the body.
func (pc *pinnedConn) get() (string, error) {
	pc.c.SetDeadline(time.Now().Add(preforktest.Patience))
	if _, err := io.WriteString(pc.c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(pc.br, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && (resp.StatusCode != 200 || resp.Close) {
		err = fmt.Errorf("status %d, close %v", resp.StatusCode, resp.Close)
	}
	return string(b), err
}

// A stopped worker (SIGSTOP) falls silent: the master resumes it and
// sends SIGABRT, and its goroutine stacks are in the one "exited" record
// of the master's log, with its slot and pid. A new worker takes its
// slot; the other worker serves on meanwhile.
//
// A new connection may be accepted by the stopped worker before the
// master finds it hung: that one dies with it, unanswered, as with any
// worker that crashes. What must not fail is the other worker's traffic,
// so the requests go over a keep-alive connection it accepted.
func TestE2EHungWorkerDumpsItsStacks(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=2", "TEST_HEARTBEAT_S=2")
	var at int
	addr := p.addr(&at)
	pids := p.ready(&at, 2)
	stopped, other := pids[0], pids[1]
	pc := pinTo(t, addr, other)

	done := make(chan struct{})
	served := make(chan error, 1)
	go func() {
		n := 0
		tick := time.NewTicker(20 * time.Millisecond) // a pace, not a wait: the test waits on log records
		defer tick.Stop()
		for {
			body, err := pc.get()
			if err == nil && !strings.Contains(body, fmt.Sprintf("pid=%d\n", other)) {
				err = fmt.Errorf("answer %q, want the worker %d", body, other)
			}
			if err != nil {
				served <- fmt.Errorf("request %d to the other worker: %w", n+1, err)
				return
			}
			n++
			select {
			case <-done:
				if n < 2 {
					err = fmt.Errorf("%d requests served while the worker hung", n)
				}
				served <- err
				return
			case <-tick.C:
			}
		}
	}()

	if err := syscall.Kill(stopped, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	p.waitLog(&at, "hung", map[string]any{"slot": 0, "pid": stopped})
	exited := p.waitLog(&at, "exited", map[string]any{"slot": 0, "pid": stopped})
	next := pidOf(p.waitLog(&at, "ready", map[string]any{"slot": 0}))
	close(done)
	if err := <-served; err != nil {
		t.Error(err)
	}
	if exited["status"] != "exit status 2" || exited["expected"] != false || exited["level"] != "WARN" {
		t.Errorf("exited record %v, want an unexpected exit with status 2", exited)
	}
	stderr, _ := exited["stderr"].(string)
	for _, want := range []string{"SIGABRT: abort", "goroutine ", "prefork_test.helperMain", "gracefork/prefork.Serve"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the exited record's stderr lacks %q:\n%s", want, stderr)
		}
	}
	if body := get(t, newClient(), "http://"+addr+"/"); !strings.Contains(body, "pid=") || next == stopped {
		t.Fatalf("after the restart: %q from new worker %d", body, next)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
	n := 0
	for from := 0; ; n++ { // the master has exited: its log is complete
		p.mu.Lock()
		more := false
		for ; from < len(p.logs); from++ {
			if rec := p.logs[from]; rec["msg"] == "exited" && matches(rec, map[string]any{"pid": stopped}) {
				from++
				more = true
				break
			}
		}
		p.mu.Unlock()
		if !more {
			break
		}
	}
	if n != 1 {
		t.Errorf("%d exited records for the hung worker %d, want 1", n, stopped)
	}
}
