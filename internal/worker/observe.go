package worker

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Hijacked is the status code Config.Observe is given for a request whose
// handler took its connection over (a WebSocket): what it answered, the
// Worker cannot know.
const Hijacked = 0

// observe wraps h so that Config.Observe is told of every request h
// answers. The status is captured by a ResponseWriter of this package,
// pooled, as net/http pools its own buffered writers: a handler must not
// use its ResponseWriter once it has returned, and one that does breaks
// net/http's contract either way. A handler that panics is not observed:
// net/http logs it and its client gets no answer.
func (w *Worker) observe(h http.Handler) http.Handler {
	obs := w.cfg.Observe
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Since(epoch)
		sw := statusWriters.Get().(*statusWriter)
		sw.rw, sw.code, sw.hijacked, sw.bytes = rw, 0, false, 0
		h.ServeHTTP(sw, r)
		code, n := sw.code, sw.bytes
		switch {
		case sw.hijacked:
			code = Hijacked
		case code == 0:
			code = http.StatusOK // what net/http sends for a handler that wrote nothing
		}
		sw.rw = nil
		statusWriters.Put(sw)
		obs(r, code, n, time.Since(epoch)-start)
	})
}

// epoch is what observe measures from: time.Since reads only the
// monotonic clock, where time.Now reads the wall clock too (one clock read
// fewer a request; each costs 20-30 ns on a virtual machine).
var epoch = time.Now()

var statusWriters = sync.Pool{New: func() any { return new(statusWriter) }}

// statusWriter passes everything through to the server's ResponseWriter
// and notes the status code it sends. It has the methods of net/http's
// own ResponseWriters that handlers assert (Flusher, Hijacker, io.ReaderFrom
// for sendfile, io.StringWriter) and Unwrap for http.ResponseController.
type statusWriter struct {
	rw       http.ResponseWriter
	code     int   // the final status sent, 0 until then
	bytes    int64 // body bytes the handler wrote
	hijacked bool
}

func (s *statusWriter) Header() http.Header { return s.rw.Header() }

func (s *statusWriter) WriteHeader(code int) {
	// 1xx answers but 101 Switching Protocols are informational: the
	// final status comes later.
	if s.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		s.code = code
	}
	s.rw.WriteHeader(code)
}

func (s *statusWriter) sent() {
	if s.code == 0 {
		s.code = http.StatusOK
	}
}

func (s *statusWriter) Write(p []byte) (int, error) {
	s.sent()
	n, err := s.rw.Write(p)
	s.bytes += int64(n)
	return n, err
}

func (s *statusWriter) WriteString(str string) (int, error) {
	s.sent()
	n, err := io.WriteString(s.rw, str)
	s.bytes += int64(n)
	return n, err
}

// ReadFrom keeps sendfile for the handlers that copy a file.
func (s *statusWriter) ReadFrom(src io.Reader) (int64, error) {
	s.sent()
	var n int64
	var err error
	if rf, ok := s.rw.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(writerOnly{s.rw}, src)
	}
	s.bytes += n
	return n, err
}

// Flush is http.Flusher's, for the handlers that assert it.
func (s *statusWriter) Flush() { s.FlushError() }

// FlushError is what http.ResponseController's Flush calls.
func (s *statusWriter) FlushError() error {
	s.sent()
	return http.NewResponseController(s.rw).Flush()
}

func (s *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(s.rw).Hijack()
	if err == nil {
		s.hijacked = true
	}
	return c, brw, err
}

// Unwrap is the server's ResponseWriter, for http.ResponseController's
// other methods.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.rw }
