//go:build unix

package prefork_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
)

// getStatus is a GET that must be answered with the status want; it
// returns the body and whether the server closes the connection.
func getStatus(t *testing.T, url string, want int) (string, bool) {
	t.Helper()
	resp, err := newClient().Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != want {
		t.Fatalf("GET %s: %d %q %v, want %d", url, resp.StatusCode, b, err, want)
	}
	return string(b), resp.Close
}

// With RequestTimeout, a handler that honours its context is answered
// for with 503 at the timeout, with its stack in the log, and its worker
// serves on: no recycle.
func TestE2ERequestTimeoutSlowHandler(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=1", "TEST_REQUEST_TIMEOUT_MS=1000")
	var at int
	url := "http://" + p.addr(&at)
	pid := p.ready(&at, 1)[0]
	if _, closed := getStatus(t, url+"/slow?d=10s", http.StatusServiceUnavailable); !closed {
		t.Fatal("the 503 does not close the connection")
	}
	from := at
	rec := p.waitLog(&from, "request timed out", map[string]any{"pid": pid, "method": "GET", "path": "/slow", "answer": "503"})
	if stack, _ := rec["stack"].(string); !strings.Contains(stack, "main_test.go") || strings.Count(stack, "goroutine ") != 2 {
		t.Fatalf("the record's stack is not the handler's alone: %q", stack)
	}
	from = at
	p.waitLog(&from, "slow request gave up", map[string]any{"pid": pid})
	if body := get(t, newClient(), url+"/"); !strings.Contains(body, fmt.Sprintf("pid=%d", pid)) {
		t.Fatalf("after the timeout: %q, want pid %d", body, pid)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
	if out := p.output(); strings.Contains(out, `"msg":"recycle due"`) || strings.Contains(out, "asks to be recycled") {
		t.Fatal("a handler that honoured its context had its worker recycled")
	}
}

// A handler that ignores its context is answered for with 503 at the
// timeout; a grace later its worker asks to be recycled, and the master
// replaces it gracefully, replacement first: a new pid serves, the old
// one exits 0 without waiting for the stuck handler (GracefulTimeout is
// far longer than the test's patience), and no request of the load on
// other connections fails.
//
// Needs the master's side of recycling (prefork/recycle.go: onRetire).
func TestE2ERequestTimeoutRecyclesStuckWorker(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=1", "TEST_REQUEST_TIMEOUT_MS=1000", "TEST_GRACEFUL_S=600")
	var at int
	addr := p.addr(&at)
	p.ready(&at, 1)
	load := startLoad(addr, 8)
	load.waitMore(t, 100)
	getStatus(t, "http://"+addr+"/stuck?d=10m", http.StatusServiceUnavailable)

	from := at
	rec := p.waitLog(&from, "request timed out", map[string]any{"path": "/stuck", "answer": "503"})
	old, slot := pidOf(rec), rec["slot"]
	fds := pidfds(t, map[int]int{0: old})
	from = at
	p.waitLog(&from, "worker asks to be recycled", map[string]any{"pid": old, "reason": "runaway request"})
	from = at
	p.waitLog(&from, "recycle due", map[string]any{"pid": old, "reason": "runaway request"})
	nw := pidOf(p.waitLog(&from, "recycling", map[string]any{"slot": slot, "reason": "runaway request"}))
	p.waitLog(&from, "recycled", map[string]any{"slot": slot, "pid": nw, "reason": "runaway request"})
	p.waitLog(&from, "exited", map[string]any{"pid": old, "expected": true, "status": "exit status 0"})
	waitGone(t, fds)

	load.waitMore(t, 100) // from the replacement alone, the old one gone
	load.finish(t)
	if load.pids[fmt.Sprintf("pid=%d", nw)] < 100 {
		t.Errorf("the replacement %d answered none of the load: %v", nw, load.pids)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
}
