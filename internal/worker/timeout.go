package worker

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"reflect"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"
)

// MinRunawayGrace is the least time a handler is given, after its request
// timed out and its context was cancelled, to return before it counts as
// a runaway: giving up takes time that does not depend on the request's
// budget (cancelling a database query is a round trip to the database).
const MinRunawayGrace = time.Second

// stackEvery spaces the goroutine dumps that find a timed-out handler's
// stack: each stops the world for a time that grows with the goroutines,
// and a slow dependency times out every request at once.
const stackEvery = time.Second

// timeoutBody is the answer to a request that ran past its timeout.
const timeoutBody = "503 Service Unavailable: the request ran past its time limit\n"

// timed is one request served under Config.RequestTimeout. Its handler
// runs on a goroutine of its own, so that the server's goroutine can
// answer for it when it runs late: with 503 when it has not begun its
// answer, or by cutting the answer off (http.ErrAbortHandler) when it has.
// The handler then goes on alone, abandoned: what it writes later goes
// nowhere, and neither the drain nor the in-flight count waits for it.
//
// timed is also the handler's request context (its Value finds the timed
// for ExtendDeadline) and, as timedWriter, its ResponseWriter.
type timed struct {
	context.Context // the request's, cancelled at the timeout
	cancel          context.CancelCauseFunc
	w               *Worker
	rw              http.ResponseWriter // the server's
	h               http.Header         // the handler's
	method, path    string
	start           time.Time
	timer           *time.Timer
	done            chan any // the handler's panic, or nil, when it returns

	// The handler's writes and the server's 503 exclude each other under
	// mu: after timedOut, nothing touches rw but the server's goroutine.
	mu       sync.Mutex
	deadline time.Time
	wrote    bool // the handler has begun its answer
	hijacked bool // the handler took the connection: no more timeout
	timedOut bool
	returned bool
	grace    *time.Timer // the runaway check, once timed out
}

// runawayGrace is how long a timed-out handler may take to return before
// it counts as a runaway: Config.RunawayGrace, or the request timeout
// again, at least MinRunawayGrace. A handler that does long work takes
// long to abandon it too (a big transaction to roll back), and a late
// verdict costs only the stuck goroutine's memory meanwhile, while an
// early one recycles a worker for nothing.
func (w *Worker) runawayGrace() time.Duration {
	if w.cfg.RunawayGrace > 0 {
		return w.cfg.RunawayGrace
	}
	return max(w.cfg.RequestTimeout, MinRunawayGrace)
}

// timedKey finds a request's timed in its context.
type timedKey struct{}

func (t *timed) Value(key any) any {
	if key == (timedKey{}) {
		return t
	}
	return t.Context.Value(key)
}

// timeout wraps h so that each request runs at most d, unless its
// handler extends its deadline.
func (w *Worker) timeout(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		t := &timed{w: w, rw: rw, h: rw.Header().Clone(), method: r.Method, path: r.URL.Path,
			start: time.Now(), done: make(chan any, 1)}
		if t.h == nil {
			t.h = http.Header{}
		}
		t.Context, t.cancel = context.WithCancelCause(r.Context())
		t.deadline = t.start.Add(d)
		t.timer = time.NewTimer(d)
		defer t.timer.Stop()
		go runHandler(t, h, r.WithContext(t))
		t.await(r)
	})
}

// runHandler is the handler's goroutine.
func runHandler(t *timed, h http.Handler, r *http.Request) {
	defer func() {
		p := recover()
		if p != nil && p != http.ErrAbortHandler {
			p = &handlerPanic{value: p, stack: debug.Stack()}
		}
		t.finish(p)
	}()
	h.ServeHTTP(timedWriter{t}, r)
}

// handlerPanic is a handler's panic as its server's goroutine repanics
// it, with the stack where it happened: the server logs its own.
type handlerPanic struct {
	value any
	stack []byte
}

func (p *handlerPanic) String() string {
	return fmt.Sprintf("%v\n\nin the handler's goroutine:\n%s", p.value, p.stack)
}

// await waits, in the server's goroutine, until the handler returns or
// its time runs out.
func (t *timed) await(r *http.Request) {
	for {
		select {
		case p := <-t.done:
			if p != nil {
				panic(p)
			}
			// The answer is the handler's: its headers (trailers
			// included, set after the body) go to the server.
			t.mu.Lock()
			h := t.rw.Header()
			if !t.wrote {
				clear(h)
			}
			maps.Copy(h, t.h)
			t.mu.Unlock()
			return
		case <-t.timer.C:
			if t.expire(r) {
				return
			}
		}
	}
}

// expire answers for a handler whose time ran out, unless it has just
// returned, extended its deadline or taken its connection.
func (t *timed) expire(r *http.Request) bool {
	t.mu.Lock()
	if t.returned || t.hijacked || time.Now().Before(t.deadline) {
		t.mu.Unlock()
		return false
	}
	t.timedOut = true
	wrote := t.wrote
	t.grace = time.AfterFunc(t.w.runawayGrace(), t.checkRunaway)
	t.mu.Unlock()

	t.w.abandoned.Add(1)
	ran := time.Since(t.start)
	stack := t.w.handlerStack()
	t.cancel(fmt.Errorf("gracefork: the request ran past its time limit (%v): %w", ran.Round(time.Millisecond), context.DeadlineExceeded))
	answer := "503"
	if wrote {
		answer = "cut off"
	}
	t.w.log.Warn("request timed out", "method", t.method, "path", t.path, "duration", ran,
		"answer", answer, "stack", stack)
	if wrote {
		// The client has the status and part of the body: cut it off,
		// so it cannot take a short answer for a whole one (HTTP/1
		// closes the connection, HTTP/2 resets the stream).
		panic(http.ErrAbortHandler)
	}
	h := t.rw.Header()
	clear(h)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(timeoutBody)))
	if r.ProtoMajor == 1 {
		h.Set("Connection", "close") // the abandoned handler may hold its body
	}
	t.rw.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(t.rw, timeoutBody)
	return true
}

// finish is the handler's return, in its own goroutine.
func (t *timed) finish(p any) {
	t.mu.Lock()
	t.returned = true
	abandoned := t.timedOut
	if t.grace != nil {
		t.grace.Stop()
	}
	t.mu.Unlock()
	if !abandoned {
		t.done <- p
		return
	}
	t.w.abandoned.Add(-1)
	if p != nil && p != http.ErrAbortHandler {
		t.w.log.Error("handler panicked after its request timed out", "method", t.method, "path", t.path,
			"panic", fmt.Sprint(p))
	}
}

// checkRunaway runs a grace period after the timeout: a handler still
// running ignores its cancelled context, and nothing in Go can stop it.
func (t *timed) checkRunaway() {
	t.mu.Lock()
	returned := t.returned
	t.mu.Unlock()
	if returned {
		return
	}
	ran := time.Since(t.start)
	if t.w.ranAway.CompareAndSwap(false, true) && t.w.cfg.OnRunaway != nil {
		t.w.cfg.OnRunaway(ran)
	}
	t.w.log.Error("handler still running after its request timed out: it ignores its context",
		"method", t.method, "path", t.path, "duration", ran)
}

// extend moves the deadline to d from now; false once the request has
// timed out, returned or been hijacked.
func (t *timed) extend(d time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timedOut || t.returned || t.hijacked {
		return false
	}
	t.deadline = time.Now().Add(d)
	t.timer.Reset(d) // a fire not yet received is dropped (Go ≥ 1.23 timers)
	return true
}

// ExtendDeadline moves the timeout of r, a request served under
// Config.RequestTimeout, to d from now. It reports false when r has no
// timeout: none is set, r was not served by a Worker, or it has timed out,
// returned or hijacked its connection already.
func ExtendDeadline(r *http.Request, d time.Duration) bool {
	t, ok := r.Context().Value(timedKey{}).(*timed)
	return ok && t.extend(d)
}

// timedWriter is a timed request's ResponseWriter. Every use of the
// server's ResponseWriter holds the lock and stops once the request has
// timed out: a late write goes nowhere, and no write can race the 503.
type timedWriter struct{ t *timed }

// Header is the handler's own header map: the server's is copied from it
// when the answer begins, so that the 503 never races a handler's Set.
func (tw timedWriter) Header() http.Header { return tw.t.h }

func (tw timedWriter) WriteHeader(code int) {
	t := tw.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timedOut {
		return
	}
	t.commit(code >= 200 || code == http.StatusSwitchingProtocols)
	t.rw.WriteHeader(code)
}

func (tw timedWriter) Write(p []byte) (int, error) {
	t := tw.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timedOut {
		return 0, http.ErrHandlerTimeout
	}
	t.commit(true)
	return t.rw.Write(p)
}

// commit gives the server the handler's headers before they are sent;
// final says the status is (or will be) final, not informational (1xx).
func (t *timed) commit(final bool) {
	if t.wrote {
		return
	}
	h := t.rw.Header()
	clear(h)
	maps.Copy(h, t.h)
	t.wrote = final
}

// ReadFrom keeps sendfile for the handlers that copy a file.
func (tw timedWriter) ReadFrom(src io.Reader) (int64, error) {
	t := tw.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timedOut {
		return 0, http.ErrHandlerTimeout
	}
	t.commit(true)
	if rf, ok := t.rw.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(writerOnly{t.rw}, src)
}

// Flush is http.Flusher's, for the handlers that assert it.
func (tw timedWriter) Flush() { tw.FlushError() }

// FlushError is what http.ResponseController's Flush calls.
func (tw timedWriter) FlushError() error {
	t := tw.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timedOut {
		return http.ErrHandlerTimeout
	}
	t.commit(true)
	return http.NewResponseController(t.rw).Flush()
}

// Hijack hands the connection over; a hijacked request (a WebSocket) has
// no timeout any more.
func (tw timedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	t := tw.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timedOut {
		return nil, nil, http.ErrHandlerTimeout
	}
	c, rw, err := http.NewResponseController(t.rw).Hijack()
	if err == nil {
		t.hijacked = true
		t.timer.Stop()
	}
	return c, rw, err
}

func (tw timedWriter) SetReadDeadline(d time.Time) error {
	return tw.control(func(rc *http.ResponseController) error { return rc.SetReadDeadline(d) })
}

func (tw timedWriter) SetWriteDeadline(d time.Time) error {
	return tw.control(func(rc *http.ResponseController) error { return rc.SetWriteDeadline(d) })
}

func (tw timedWriter) EnableFullDuplex() error {
	return tw.control((*http.ResponseController).EnableFullDuplex)
}

func (tw timedWriter) control(f func(*http.ResponseController) error) error {
	t := tw.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timedOut {
		return http.ErrHandlerTimeout
	}
	return f(http.NewResponseController(t.rw))
}

// Unwrap is the server's ResponseWriter, for http.ResponseController's
// other methods. Writing to it directly bypasses the timeout's guard.
func (tw timedWriter) Unwrap() http.ResponseWriter { return tw.t.rw }

// createdHere starts the "created by" line of a goroutine this package
// started.
var createdHere = []byte("created by " + reflect.TypeFor[Worker]().PkgPath() + ".")

// handlerStack is the stack of the handler that the calling goroutine
// (the server's) started and waits for. Go shows no other goroutine's
// stack alone: it is found in a dump of all of them by its "created by
// ... in goroutine N" line, N being the caller's id. The dumps are spaced
// by stackEvery.
func (w *Worker) handlerStack() string {
	now := time.Now().UnixNano()
	last := w.lastDump.Load()
	if now-last < int64(stackEvery) || !w.lastDump.CompareAndSwap(last, now) {
		return "(not taken: another timed-out request's was, less than " + stackEvery.String() + " ago)"
	}
	var own [64]byte
	id, _, _ := bytes.Cut(bytes.TrimPrefix(own[:runtime.Stack(own[:], false)], []byte("goroutine ")), []byte(" "))
	suffix := []byte(" in goroutine " + string(id))
	buf := make([]byte, 256<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) || len(buf) >= 64<<20 {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var found [][]byte
	for g := range bytes.SplitSeq(buf, []byte("\n\n")) {
		i := bytes.LastIndex(g, []byte("\ncreated by "))
		if i < 0 {
			continue
		}
		line, _, _ := bytes.Cut(g[i+1:], []byte("\n"))
		if bytes.HasPrefix(line, createdHere) && bytes.HasSuffix(line, suffix) {
			found = append(found, g)
		}
	}
	if len(found) == 0 {
		return "(not found: the handler returned meanwhile)"
	}
	return string(bytes.Join(found, []byte("\n\n")))
}
