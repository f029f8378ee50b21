package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// short is the request timeout of these tests: passing them does not
// depend on it, only their running time.
const short = 50 * time.Millisecond

// records is a slog.Handler that hands each record to the test.
type records chan map[string]any

func (c records) Enabled(context.Context, slog.Level) bool { return true }
func (c records) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c records) WithGroup(string) slog.Handler            { return c }
func (c records) Handle(_ context.Context, r slog.Record) error {
	m := map[string]any{"msg": r.Message, "level": r.Level.String()}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.Any(); return true })
	c <- m
	return nil
}

// next returns the next record with the message msg.
func (c records) next(t *testing.T, msg string) map[string]any {
	t.Helper()
	for {
		select {
		case m := <-c:
			if m["msg"] == msg {
				return m
			}
		case <-time.After(long):
			t.Fatalf("no %q logged", msg)
		}
	}
}

func newRecords() (records, *slog.Logger) {
	c := make(records, 64)
	return c, slog.New(c)
}

// A handler that answers in time is served as without a timeout: its
// headers, its trailers, its body, and the connection kept alive.
func TestTimeoutFastHandlerUnaffected(t *testing.T) {
	w := start(t, Config{RequestTimeout: long, Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Trailer", "X-Sum")
		rw.Header().Set("X-A", "a")
		io.WriteString(rw, "ok")
		rw.Header().Set("X-Sum", "42")
	})})
	c := dial(t, w)
	for range 2 {
		c.send(t, "/")
		resp := c.answer(t)
		if resp.StatusCode != 200 || resp.Header.Get("X-A") != "a" || resp.Trailer.Get("X-Sum") != "42" || resp.Close {
			t.Fatalf("answer %d %v trailer %v close %v", resp.StatusCode, resp.Header, resp.Trailer, resp.Close)
		}
	}
	if n := w.InFlight() + w.Abandoned(); n != 0 {
		t.Fatalf("in flight %d, abandoned %d", w.InFlight(), w.Abandoned())
	}
}

// A handler that honours its context: past the timeout, its context is
// cancelled with a cause that says why, its client gets 503 with
// Connection: close, what it writes afterwards is dropped, one record
// logs the request with the handler's stack (its goroutine alone), and
// the worker serves on. No runaway: the handler returned.
func TestTimeoutSlowHandlerGets503(t *testing.T) {
	logs, logger := newRecords()
	late := make(chan error, 1)
	var runaways atomic.Int32
	w := start(t, Config{RequestTimeout: short, RunawayGrace: long, Logger: logger,
		OnRunaway: func(time.Duration) { runaways.Add(1) },
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/slow" {
				io.WriteString(rw, "fast")
				return
			}
			rw.Header().Set("X-Handler", "set before the timeout")
			<-r.Context().Done()
			if !errors.Is(context.Cause(r.Context()), context.DeadlineExceeded) || ExtendDeadline(r, long) {
				late <- fmt.Errorf("cause %v, or the deadline of a timed-out request extended", context.Cause(r.Context()))
				return
			}
			rw.Header().Set("X-Late", "1")
			_, err := io.WriteString(rw, "late")
			late <- err
		})})
	c := dial(t, w)
	c.send(t, "/slow")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || !resp.Close || resp.ContentLength != int64(len(body)) ||
		resp.Header.Get("X-Handler") != "" || !strings.Contains(string(body), "time limit") {
		t.Fatalf("answer %d close=%v length %d %v %q", resp.StatusCode, resp.Close, resp.ContentLength, resp.Header, body)
	}
	c.closed(t)
	if err := <-late; !errors.Is(err, http.ErrHandlerTimeout) {
		t.Fatalf("late write: %v, want http.ErrHandlerTimeout", err)
	}
	rec := logs.next(t, "request timed out")
	stack, _ := rec["stack"].(string)
	if rec["method"] != "GET" || rec["path"] != "/slow" || rec["answer"] != "503" || rec["level"] != "WARN" ||
		rec["duration"].(time.Duration) < short ||
		!strings.HasPrefix(stack, "goroutine ") || strings.Count(stack, "goroutine ") != 2 || // its line, and "created by … in goroutine N"
		!strings.Contains(stack, "timeout_test.go") || !strings.Contains(stack, "runHandler") {
		t.Fatalf("record %v", rec)
	}
	c = dial(t, w)
	c.send(t, "/")
	if resp := c.answer(t); resp.StatusCode != 200 {
		t.Fatalf("after a timeout: %d", resp.StatusCode)
	}
	if w.InFlight() != 0 || runaways.Load() != 0 {
		t.Fatalf("in flight %d, runaways %d", w.InFlight(), runaways.Load())
	}
}

// A handler that has begun its answer keeps its status, and its answer is
// cut off at the timeout: the client sees a broken body, never a short
// one that looks whole; later writes and flushes fail.
func TestTimeoutCutsOffBegunAnswer(t *testing.T) {
	logs, logger := newRecords()
	late := make(chan error, 2)
	w := start(t, Config{RequestTimeout: long, RunawayGrace: long, Logger: logger,
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			rw.WriteHeader(http.StatusAccepted)
			io.WriteString(rw, "part one")
			rw.(http.Flusher).Flush()
			ExtendDeadline(r, 0) // time out now, the answer begun
			<-r.Context().Done()
			_, err := io.WriteString(rw, "late")
			late <- err
			late <- http.NewResponseController(rw).Flush()
		})})
	c := dial(t, w)
	c.send(t, "/")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted || string(body) != "part one" || err == nil {
		t.Fatalf("answer %d %q %v, want 202 %q cut off", resp.StatusCode, body, err, "part one")
	}
	for range 2 {
		if err := <-late; !errors.Is(err, http.ErrHandlerTimeout) {
			t.Fatalf("late write: %v", err)
		}
	}
	if rec := logs.next(t, "request timed out"); rec["answer"] != "cut off" {
		t.Fatalf("record %v", rec)
	}
}

// A handler that ignores its context makes the worker call OnRunaway a
// grace period later, once however many there are; the in-flight count
// leaves them out, so a drain ends without them.
func TestTimeoutStuckHandlerIsARunaway(t *testing.T) {
	logs, logger := newRecords()
	release, returned := make(chan struct{}), make(chan struct{}, 2)
	runaway := make(chan time.Duration, 4)
	w := start(t, Config{RequestTimeout: short, RunawayGrace: short, Logger: logger,
		OnRunaway: func(d time.Duration) { runaway <- d },
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			defer func() { returned <- struct{}{} }()
			<-release
			io.WriteString(rw, "too late")
		})})
	// A handler to wait for per request, whether or not it ran before
	// its timeout.
	var sent int
	t.Cleanup(func() {
		close(release)
		for range sent {
			<-returned
		}
	})
	for range 2 {
		c := dial(t, w)
		sent++
		c.send(t, "/stuck")
		if resp := c.answer(t); resp.StatusCode != 503 {
			t.Fatalf("answer %d", resp.StatusCode)
		}
	}
	if w.InFlight() != 0 || w.Abandoned() != 2 {
		t.Fatalf("in flight %d, abandoned %d; want 0, 2", w.InFlight(), w.Abandoned())
	}
	if d := <-runaway; d < 2*short {
		t.Fatalf("runaway after %v, before the timeout and the grace", d)
	}
	for range 2 {
		if rec := logs.next(t, "handler still running after its request timed out: it ignores its context"); rec["path"] != "/stuck" {
			t.Fatalf("record %v", rec)
		}
	}
	select {
	case d := <-runaway:
		t.Fatalf("OnRunaway called twice (%v)", d)
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), long)
	defer cancel()
	if err := w.Drain(ctx); err != nil {
		t.Fatalf("drain: %v; it waited for the abandoned handlers", err)
	}
	if w.Abandoned() != 2 {
		t.Fatalf("abandoned %d during the drain", w.Abandoned())
	}
}

// ExtendDeadline moves the timeout both ways, and says false where there
// is none.
func TestExtendDeadline(t *testing.T) {
	type result struct {
		extended bool
		moved    time.Duration
	}
	got := make(chan result, 1)
	w := start(t, Config{RequestTimeout: short, RunawayGrace: long, Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		tm := r.Context().Value(timedKey{}).(*timed)
		switch r.URL.Path {
		case "/longer":
			ok := ExtendDeadline(r, long)
			if !ok {
				got <- result{}
				return
			}
			tm.mu.Lock()
			moved := tm.deadline.Sub(tm.start)
			tm.mu.Unlock()
			got <- result{ok, moved}
			// Past the first deadline, still answered: no 503.
			<-time.After(time.Until(tm.start.Add(2 * short)))
			io.WriteString(rw, "extended")
		case "/shorter":
			// The timeout is long here: only the move can end it.
			ExtendDeadline(r, long)
			got <- result{ExtendDeadline(r, time.Millisecond), 0}
			<-r.Context().Done()
		}
	})})
	c := dial(t, w)
	// The handler must run before its first deadline to extend it: on a
	// loaded machine, it may not.
	for i := 0; ; i++ {
		c.send(t, "/longer")
		resp := c.answer(t)
		r := <-got
		if !r.extended && i < 20 && resp.StatusCode == 503 {
			c = dial(t, w)
			continue
		}
		if !r.extended || r.moved < long || resp.StatusCode != 200 {
			t.Fatalf("extended %v, deadline %v after the start, answer %d", r.extended, r.moved, resp.StatusCode)
		}
		break
	}
	c.send(t, "/shorter")
	resp := c.answer(t)
	if r := <-got; !r.extended || resp.StatusCode != 503 {
		t.Fatalf("shortened %v, answer %d", r.extended, resp.StatusCode)
	}
	if ExtendDeadline(httptest.NewRequest("GET", "/", nil), long) {
		t.Fatal("extended a request that no Worker serves")
	}
}

// Without RequestTimeout, ExtendDeadline says false, and the handler runs
// on the server's goroutine, its ResponseWriter the server's own.
func TestNoTimeoutNoExtend(t *testing.T) {
	res := make(chan string, 1)
	w := start(t, Config{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_, wrapped := rw.(timedWriter)
		res <- fmt.Sprint(ExtendDeadline(r, long), wrapped)
	})})
	c := dial(t, w)
	c.send(t, "/")
	c.answer(t)
	if got := <-res; got != "false false" {
		t.Fatalf("extended, wrapped: %s", got)
	}
}

// A hijacked request (a WebSocket) leaves the timeout: its handler keeps
// the connection past it.
func TestTimeoutSparesHijacked(t *testing.T) {
	w := start(t, Config{RequestTimeout: short, RunawayGrace: long, Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		c, buf, err := http.NewResponseController(rw).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		start := r.Context().Value(timedKey{}).(*timed).start
		<-time.After(time.Until(start.Add(2 * short)))
		fmt.Fprintf(buf, "hijacked; extend=%v ctx=%v\n", ExtendDeadline(r, long), r.Context().Err())
		buf.Flush()
	})})
	// The handler must hijack before its deadline: on a loaded machine,
	// it may not.
	for i := 0; ; i++ {
		c := dial(t, w)
		c.send(t, "/")
		line, err := c.br.ReadString('\n')
		if strings.HasPrefix(line, "HTTP/1.1 503") && i < 20 {
			continue
		}
		if err != nil || line != "hijacked; extend=false ctx=<nil>\n" {
			t.Fatalf("%q %v", line, err)
		}
		return
	}
}

// A handler's panic reaches the server as without a timeout, with the
// stack where it happened.
func TestTimeoutHandlerPanic(t *testing.T) {
	var mu sync.Mutex
	var out strings.Builder
	w := start(t, Config{RequestTimeout: long, Server: &http.Server{ErrorLog: log.New(lockedWriter{&mu, &out}, "", 0)},
		Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })})
	c := dial(t, w)
	c.send(t, "/")
	c.closed(t)
	mu.Lock()
	defer mu.Unlock()
	if s := out.String(); !strings.Contains(s, "boom") || !strings.Contains(s, "timeout_test.go") {
		t.Fatalf("server log: %s", s)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
