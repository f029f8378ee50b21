package prefork

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The per-request cost the library adds inside a worker: the handler
// wrapper (request counter, in-flight counter, drain check) and the two
// connection-state transitions every keep-alive request makes.
func BenchmarkHandlerBare(b *testing.B) {
	benchHandler(b, http.HandlerFunc(hello))
}

func BenchmarkHandlerWrapped(b *testing.B) {
	w := &workerProc{}
	benchHandler(b, w.wrap(http.HandlerFunc(hello)))
}

func BenchmarkHandlerWrappedDraining(b *testing.B) {
	w := &workerProc{}
	w.draining.Store(true)
	benchHandler(b, w.wrap(http.HandlerFunc(hello)))
}

func BenchmarkConnStatePerRequest(b *testing.B) {
	var t connTracker
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	t.track(c1, http.StateNew, false)
	b.ReportAllocs()
	for b.Loop() {
		t.track(c1, http.StateActive, false)
		t.track(c1, http.StateIdle, false)
	}
}

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
