package chaos

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// addrOf returns the host:port of an httptest server.
func addrOf(srv *httptest.Server) string {
	return strings.TrimPrefix(srv.URL, "http://")
}

// hijack takes over the connection of a handler's request.
func hijack(t *testing.T, w http.ResponseWriter) net.Conn {
	t.Helper()
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return nil
	}
	return c
}

func TestStrictClientClassifies(t *testing.T) {
	tests := []struct {
		name    string
		handler func(t *testing.T) http.HandlerFunc
		want    Cause
		pid     int
	}{
		{"ok", func(*testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello from worker=1 pid=4242\n") }
		}, OK, 4242},
		{"5xx", func(*testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "pid=7 down", http.StatusServiceUnavailable)
			}
		}, Cause5xx, 7},
		{"rst", func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) {
				if c := hijack(t, w); c != nil {
					_ = c.(*net.TCPConn).SetLinger(0) // close sends RST
					_ = c.Close()
				}
			}
		}, CauseReset, 0},
		{"eof before response", func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) {
				if c := hijack(t, w); c != nil {
					_ = c.Close()
				}
			}
		}, CauseReset, 0},
		{"truncated body", func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) {
				if c := hijack(t, w); c != nil {
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello")
					_ = c.Close()
				}
			}
		}, CauseReset, 0},
		{"garbage", func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) {
				if c := hijack(t, w); c != nil {
					io.WriteString(c, "SSH-2.0-nope\r\n\r\n")
					_ = c.Close()
				}
			}
		}, CauseOther, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler(t))
			defer srv.Close()
			c := NewStrictClient(addrOf(srv), 5*time.Second)
			defer c.Close()
			o := c.Do(t.Context())
			if o.Cause != tt.want || o.PID != tt.pid {
				t.Fatalf("Do = %v pid=%d (%v), want %v pid=%d", o.Cause, o.PID, o.Err, tt.want, tt.pid)
			}
		})
	}
}

func TestStrictClientTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	c := NewStrictClient(addrOf(srv), 50*time.Millisecond)
	defer c.Close()
	if o := c.Do(t.Context()); o.Cause != CauseTimeout {
		t.Fatalf("Do = %v (%v), want timeout", o.Cause, o.Err)
	}
}

func TestStrictClientRefused(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := NewStrictClient(addr, time.Second)
	defer c.Close()
	if o := c.Do(t.Context()); o.Cause != CauseRefused {
		t.Fatalf("Do = %v (%v), want refused", o.Cause, o.Err)
	}
}

// countConns returns a server whose handler runs h and counts the TCP
// connections it accepted.
func countConns(h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	srv.Start()
	return srv, &n
}

func TestStrictClientKeepAliveAndClose(t *testing.T) {
	var closeIt atomic.Bool
	srv, conns := countConns(func(w http.ResponseWriter, _ *http.Request) {
		if closeIt.Load() {
			w.Header().Set("Connection", "close")
		}
		io.WriteString(w, "pid=1")
	})
	defer srv.Close()
	c := NewStrictClient(addrOf(srv), 5*time.Second)
	defer c.Close()
	for range 5 {
		if o := c.Do(t.Context()); o.Cause != OK {
			t.Fatalf("Do: %v %v", o.Cause, o.Err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("keep-alive used %d connections, want 1", n)
	}
	closeIt.Store(true)
	for range 3 {
		if o := c.Do(t.Context()); o.Cause != OK {
			t.Fatalf("Do: %v %v", o.Cause, o.Err)
		}
	}
	// The first of those closes the kept-alive connection, the other two
	// each dial one.
	if n := conns.Load(); n != 3 {
		t.Fatalf("with Connection: close got %d connections, want 3", n)
	}
}

func TestStrictClientNeverRetries(t *testing.T) {
	// The server closes every connection after one response without
	// announcing it, so the second request on a kept-alive connection
	// meets EOF: the strict client must report it, not retry it.
	var reqs atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reqs.Add(1)
		c := hijack(t, w)
		if c == nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\npid=1")
		// Wait for the client's next request to arrive, then close
		// without answering it.
		buf := make([]byte, 1)
		_, _ = c.Read(buf)
		_ = c.Close()
	}))
	defer srv.Close()
	c := NewStrictClient(addrOf(srv), 5*time.Second)
	defer c.Close()
	if o := c.Do(t.Context()); o.Cause != OK {
		t.Fatalf("first Do: %v %v", o.Cause, o.Err)
	}
	if o := c.Do(t.Context()); o.Cause != CauseReset {
		t.Fatalf("second Do = %v (%v), want reset", o.Cause, o.Err)
	}
	if n := reqs.Load(); n != 1 {
		t.Fatalf("server saw %d requests, want 1 (no retry)", n)
	}
	if o := c.Do(t.Context()); o.Cause != OK {
		t.Fatalf("third Do after redial: %v %v", o.Cause, o.Err)
	}
}

// A request lost on a kept-alive connection names the worker that held
// the connection (it answered the previous request), so that a crash's
// own losses can be told from others'; a dialled one names none.
func TestRunLoadNamesTheWorkerOfALostConnection(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		c := hijack(t, w)
		if c == nil {
			return
		}
		// Each connection is "another worker": it answers once, then
		// closes on the next request without answering it.
		pid := 40 + conns.Add(1)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\npid="+strconv.FormatInt(pid, 10))
		buf := make([]byte, 1)
		_, _ = c.Read(buf)
		_ = c.Close()
	}))
	defer srv.Close()
	lr, err := RunLoad(t.Context(), LoadConfig{
		Addr: addrOf(srv), Conns: 1, Duration: time.Minute, Requests: 4, Timeout: 5 * time.Second, Mode: Strict,
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{{Cause: OK, PID: 41}, {Cause: CauseReset, Reused: true, ConnPID: 41}, {Cause: OK, PID: 42}, {Cause: CauseReset, Reused: true, ConnPID: 42}}
	if len(lr.Results) != len(want) {
		t.Fatalf("got %d results, want %d", len(lr.Results), len(want))
	}
	for i, w := range want {
		r := lr.Results[i]
		if r.Cause != w.Cause || r.PID != w.PID || r.Reused != w.Reused || r.ConnPID != w.ConnPID {
			t.Errorf("result %d: cause %v pid %d reused %v conn pid %d, want %v %d %v %d", i, r.Cause, r.PID, r.Reused, r.ConnPID, w.Cause, w.PID, w.Reused, w.ConnPID)
		}
	}
}

func TestRunLoadBudgetAndModes(t *testing.T) {
	for _, mode := range []ClientMode{Strict, Retrying} {
		t.Run(string(mode), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				io.WriteString(w, "hello from worker=3 pid=99\n")
			}))
			defer srv.Close()
			var seen atomic.Int64
			lr, err := RunLoad(t.Context(), LoadConfig{
				Addr: addrOf(srv), Conns: 4, Duration: time.Minute, Requests: 200,
				Timeout: 5 * time.Second, Mode: mode, OnPID: func(pid int) { seen.Store(int64(pid)) },
			}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if len(lr.Results) != 200 {
				t.Fatalf("got %d results, want the budget of 200", len(lr.Results))
			}
			for _, r := range lr.Results {
				if r.Cause != OK || r.PID != 99 || r.Slot != 3 {
					t.Fatalf("result %+v", r)
				}
			}
			if seen.Load() != 99 {
				t.Fatalf("OnPID saw %d", seen.Load())
			}
		})
	}
}

func TestRunLoadStopsAtDeadline(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "pid=1") }))
	defer srv.Close()
	start := time.Now()
	lr, err := RunLoad(context.Background(), LoadConfig{
		Addr: addrOf(srv), Conns: 2, Duration: 200 * time.Millisecond, Timeout: time.Second, Mode: Strict,
	}, start)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("load ran %s past a 200ms duration", el)
	}
	for _, r := range lr.Results {
		if r.Cause != OK {
			t.Fatalf("end of run counted as failure: %+v", r)
		}
	}
}

func TestRunLoadRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"10.0.0.1:80", "example.com:80", "192.168.1.1:8080"} {
		if _, err := RunLoad(t.Context(), LoadConfig{Addr: addr, Conns: 1, Duration: time.Second}, time.Now()); err == nil {
			t.Errorf("RunLoad(%s) accepted a non-loopback address", addr)
		}
	}
}

func TestParsePIDAndSlot(t *testing.T) {
	tests := []struct {
		body      string
		pid, slot int
	}{
		{"hello from worker=2 pid=1234\n", 1234, 2},
		{"hello from worker=? pid=77", 77, -1},
		{"nothing", 0, -1},
		{"pid=", 0, -1},
		{"worker=99999 pid=42", 42, -1},
	}
	for _, tt := range tests {
		pid, slot := ParsePID([]byte(tt.body)), ParseSlot([]byte(tt.body))
		if slot != tt.slot || pid != tt.pid {
			t.Errorf("%q: pid=%d slot=%d, want %d %d", tt.body, pid, slot, tt.pid, tt.slot)
		}
	}
}
