package worker

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// observed records what Config.Observe is told.
type observed struct {
	mu    sync.Mutex
	codes []int
	bytes []int64
}

func (o *observed) observe(r *http.Request, code int, n int64, d time.Duration) {
	if d < 0 {
		panic("negative duration")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.codes = append(o.codes, code)
	o.bytes = append(o.bytes, n)
}

func (o *observed) last() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.codes) == 0 {
		return -1
	}
	return o.codes[len(o.codes)-1]
}

// The status code observed is the final one the handler sent, whichever
// way it sent it; the writer keeps the interfaces handlers assert.
func TestObserveCapturesTheStatus(t *testing.T) {
	var o observed
	w := &Worker{cfg: Config{Observe: o.observe}}
	for name, tc := range map[string]struct {
		h    http.HandlerFunc
		want int
	}{
		"nothing":     {func(rw http.ResponseWriter, r *http.Request) {}, 200},
		"write":       {func(rw http.ResponseWriter, r *http.Request) { rw.Write([]byte("x")) }, 200},
		"404":         {func(rw http.ResponseWriter, r *http.Request) { http.NotFound(rw, r) }, 404},
		"early hints": {func(rw http.ResponseWriter, r *http.Request) { rw.WriteHeader(103); rw.WriteHeader(201) }, 201},
		"twice":       {func(rw http.ResponseWriter, r *http.Request) { rw.WriteHeader(500); rw.WriteHeader(200) }, 500},
		"flush": {func(rw http.ResponseWriter, r *http.Request) {
			rw.(http.Flusher).Flush()
			rw.WriteHeader(404) // superfluous: 200 went out with the flush
		}, 200},
		"controller": {func(rw http.ResponseWriter, r *http.Request) {
			if err := http.NewResponseController(rw).Flush(); err != nil {
				panic(err)
			}
		}, 200},
	} {
		rec := httptest.NewRecorder()
		w.wrap(tc.h).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if got := o.last(); got != tc.want {
			t.Errorf("%s: observed %d, want %d", name, got, tc.want)
		}
	}
}

// The body bytes observed are those the handler wrote, whichever way.
func TestObserveCountsBodyBytes(t *testing.T) {
	var o observed
	w := &Worker{cfg: Config{Observe: o.observe}}
	for name, tc := range map[string]struct {
		h    http.HandlerFunc
		want int64
	}{
		"nothing": {func(rw http.ResponseWriter, r *http.Request) {}, 0},
		"write":   {func(rw http.ResponseWriter, r *http.Request) { rw.Write([]byte("hello")); rw.Write([]byte(" you")) }, 9},
		"string":  {func(rw http.ResponseWriter, r *http.Request) { io.WriteString(rw, "abc") }, 3},
		"readfrom": {func(rw http.ResponseWriter, r *http.Request) {
			io.Copy(rw, strings.NewReader(strings.Repeat("x", 4096)))
		}, 4096},
		"error": {func(rw http.ResponseWriter, r *http.Request) { http.Error(rw, "no", 400) }, 3},
	} {
		rec := httptest.NewRecorder()
		w.wrap(tc.h).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		o.mu.Lock()
		got := o.bytes[len(o.bytes)-1]
		o.mu.Unlock()
		if got != tc.want || int64(rec.Body.Len()) != tc.want {
			t.Errorf("%s: observed %d bytes, body %d, want %d", name, got, rec.Body.Len(), tc.want)
		}
	}
}

// A hijacked connection is observed as Hijacked, over a real server.
func TestObserveHijacked(t *testing.T) {
	codes := make(chan int, 1)
	w := &Worker{cfg: Config{Observe: func(r *http.Request, code int, _ int64, d time.Duration) { codes <- code }}}
	srv := httptest.NewServer(w.wrap(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if _, ok := rw.(io.ReaderFrom); !ok {
			t.Error("the writer lost io.ReaderFrom")
		}
		c, brw, err := rw.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n\r\n")
		brw.Flush()
		c.Close()
	})))
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	line, _ := bufio.NewReader(c).ReadString('\n')
	if !strings.Contains(line, "101") {
		t.Fatalf("answer %q", line)
	}
	if got := <-codes; got != Hijacked {
		t.Errorf("observed %d, want Hijacked", got)
	}
}

// A request that runs past its RequestTimeout is observed as the 503 it
// was answered.
func TestObserveTimeout(t *testing.T) {
	var o observed
	release := make(chan struct{})
	defer close(release)
	w := &Worker{cfg: Config{Observe: o.observe, RequestTimeout: time.Millisecond, RunawayGrace: time.Hour},
		log: slog.New(slog.DiscardHandler)}
	rec := httptest.NewRecorder()
	w.wrap(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		<-release
	})).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 503 || o.last() != 503 {
		t.Errorf("answered %d, observed %d; want 503 both", rec.Code, o.last())
	}
}
