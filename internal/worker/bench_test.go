package worker

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gracefork/gracefork/internal/workermetrics"
)

// The per-request cost the library adds inside a worker: the handler
// wrapper (request counter, in-flight counter, drain check) and the two
// connection-state transitions every keep-alive request makes.
func BenchmarkHandlerBare(b *testing.B) {
	benchHandler(b, http.HandlerFunc(hello))
}

func BenchmarkHandlerWrapped(b *testing.B) {
	w := &Worker{}
	benchHandler(b, w.wrap(http.HandlerFunc(hello)))
}

func BenchmarkHandlerWrappedDraining(b *testing.B) {
	w := &Worker{}
	w.draining.Store(true)
	benchHandler(b, w.wrap(http.HandlerFunc(hello)))
}

func BenchmarkConnStatePerRequest(b *testing.B) {
	var t connTracker
	c := t.add(nopConn{})
	t.track(c, http.StateNew)
	b.ReportAllocs()
	for b.Loop() {
		t.track(c, http.StateActive)
		t.track(c, http.StateIdle)
	}
}

// The connection wrapper's cost on a read (a request is usually one read).
func BenchmarkConnReadBare(b *testing.B) {
	benchRead(b, nopConn{})
}

func BenchmarkConnReadTracked(b *testing.B) {
	var t connTracker
	benchRead(b, t.add(nopConn{}))
}

func benchRead(b *testing.B, c net.Conn) {
	buf := make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		c.Read(buf)
	}
}

// nopConn reads as if a request always waited in the socket.
type nopConn struct{ net.Conn }

func (nopConn) Read(p []byte) (int, error) { return len(p), nil }
func (nopConn) Close() error               { return nil }

func hello(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }

func benchHandler(b *testing.B, h http.Handler) {
	req := httptest.NewRequest("GET", "/", nil)
	rw := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(rw.h)
		h.ServeHTTP(rw, req)
	}
}

type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// With a RequestTimeout, each request also gets a goroutine for its
// handler, a timer, a cancellable context and a guarded ResponseWriter.
func BenchmarkHandlerWrappedTimeout(b *testing.B) {
	w := &Worker{cfg: Config{RequestTimeout: time.Minute}}
	benchHandler(b, w.wrap(http.HandlerFunc(hello)))
}

// With Options.WorkerMetrics (Config.Observe): the status code captured
// by a pooled ResponseWriter, two clock reads, one counter increment and
// one histogram observation (classic and native buckets) on series found
// in a table. Against BenchmarkHandlerWrapped; the budget is 150 ns and
// no allocation.
func BenchmarkHandlerWrappedMetrics(b *testing.B) {
	w := &Worker{}
	m := workermetrics.New(w.InFlight, w.Conns)
	w.cfg.Observe = m.Observe
	benchHandler(b, w.wrap(http.HandlerFunc(hello)))
}

// The hook alone, with an observer that does nothing: the pooled writer
// and the clock.
func BenchmarkHandlerWrappedObserveNop(b *testing.B) {
	w := &Worker{cfg: Config{Observe: func(*http.Request, int, int64, time.Duration) {}}}
	benchHandler(b, w.wrap(http.HandlerFunc(hello)))
}

// Many goroutines on the same series, as a busy worker's cores are.
func BenchmarkHandlerWrappedMetricsParallel(b *testing.B) {
	w := &Worker{}
	m := workermetrics.New(w.InFlight, w.Conns)
	w.cfg.Observe = m.Observe
	h := w.wrap(http.HandlerFunc(hello))
	req := httptest.NewRequest("GET", "/", nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		rw := &discardWriter{h: http.Header{}}
		for pb.Next() {
			clear(rw.h)
			h.ServeHTTP(rw, req)
		}
	})
}

func BenchmarkHandlerWrappedParallel(b *testing.B) {
	w := &Worker{}
	h := w.wrap(http.HandlerFunc(hello))
	req := httptest.NewRequest("GET", "/", nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		rw := &discardWriter{h: http.Header{}}
		for pb.Next() {
			clear(rw.h)
			h.ServeHTTP(rw, req)
		}
	})
}
