package worker

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testIdle = time.Second

// A connection that waits for a request but keeps receiving bytes — a slow
// sender, a TLS handshake in progress — is not closed as idle; once it has
// received nothing for DrainIdle, it is.
func TestDrainKeepsConnectionsThatReceive(t *testing.T) {
	for _, viaTLS := range []bool{false, true} {
		var tr connTracker
		cli, srv := net.Pipe()
		defer cli.Close()
		tc := tr.add(srv)
		var seen net.Conn = tc
		if viaTLS {
			seen = tls.Server(tc, &tls.Config{}) // http.Server reports the *tls.Conn
		}
		tr.track(seen, http.StateNew)
		t0 := time.Now()
		if n := tr.closeIdle(t0, testIdle, testIdle); n != 1 {
			t.Fatalf("tls=%v: %d open at drain start, want 1", viaTLS, n)
		}
		go cli.Write([]byte("GET / HT")) // the request comes in slowly
		io.ReadFull(tc, make([]byte, 8))
		if n := tr.closeIdle(t0.Add(testIdle), testIdle, testIdle); n != 1 {
			t.Fatalf("tls=%v: a connection receiving its request was closed", viaTLS)
		}
		if n := tr.closeIdle(t0.Add(2*testIdle), testIdle, testIdle); n != 0 {
			t.Fatalf("tls=%v: a connection silent for DrainIdle is still open", viaTLS)
		}
		if _, err := srv.Read(make([]byte, 1)); err == nil {
			t.Fatalf("tls=%v: the quiet connection is not closed", viaTLS)
		}
	}
}

// closeIdle closes outside the tracker's lock, which every request's
// ConnState takes, and closes the socket rather than the *tls.Conn, whose
// close_notify would wait for a client that does not read.
func TestCloseIdleDoesNotBlock(t *testing.T) {
	var tr connTracker
	cli, srv := net.Pipe() // unbuffered: a write waits for the peer to read
	rec := &recordConn{Conn: srv, tr: &tr, wrote: make(chan struct{}, 1)}
	tc := tr.add(rec)
	stls := tls.Server(tc, serverTLS(t))
	ctls := tls.Client(cli, &tls.Config{InsecureSkipVerify: true})
	defer cli.Close()
	var wg sync.WaitGroup
	wg.Go(func() { ctls.Handshake() })
	if err := stls.Handshake(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	tr.track(stls, http.StateIdle)
	t0 := time.Now()
	tr.closeIdle(t0, testIdle, testIdle)
	rec.arm.Store(true)
	done := make(chan int)
	go func() { done <- tr.closeIdle(t0.Add(testIdle), testIdle, testIdle) }()
	select {
	case <-rec.wrote:
		t.Fatal("closeIdle writes to a client that does not read (close_notify)")
	case n := <-done:
		if n != 0 {
			t.Fatalf("%d open after closeIdle", n)
		}
	}
	if !rec.lockFree {
		t.Fatal("closeIdle closes connections while holding the tracker's lock")
	}
	cli.Close()
	stls.Close()
}

type recordConn struct {
	net.Conn
	tr       *connTracker
	arm      atomic.Bool
	wrote    chan struct{}
	lockFree bool
}

func (c *recordConn) Write(p []byte) (int, error) {
	if c.arm.Load() {
		select {
		case c.wrote <- struct{}{}:
		default:
		}
	}
	return c.Conn.Write(p)
}

func (c *recordConn) Close() error {
	if c.tr.mu.TryLock() {
		c.lockFree = true
		c.tr.mu.Unlock()
	}
	return c.Conn.Close()
}

// A hijacked connection handed to a goroutine counts as open until that
// goroutine closes it: the drain waits for it.
func TestDrainWaitsForHijackedConnections(t *testing.T) {
	var tr connTracker
	cli, srv := net.Pipe()
	defer cli.Close()
	tc := tr.add(srv)
	tr.track(tc, http.StateNew)
	tr.track(tc, http.StateActive)
	tr.track(tc, http.StateHijacked)
	if n := tr.closeIdle(time.Now().Add(time.Hour), testIdle, testIdle); n != 1 {
		t.Fatalf("%d open with a hijacked connection alive, want 1", n)
	}
	tc.Close()
	if n := tr.closeIdle(time.Now().Add(time.Hour), testIdle, testIdle); n != 0 {
		t.Fatalf("%d open after the hijacker closed, want 0", n)
	}
}

// Through a real http.Server: responses still go out through sendfile's
// path (the wrapper is an io.ReaderFrom), the half-close net/http does
// before closing works, and a hijacked connection is followed to its Close.
func TestTrackedServer(t *testing.T) {
	var tr connTracker
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(t.TempDir(), "body")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(strings.Repeat("x", 1<<16))
	release, handled := make(chan struct{}), make(chan struct{})
	problems := make(chan string, 4)
	var held sync.WaitGroup
	mux := http.NewServeMux()
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(io.ReaderFrom); !ok {
			problems <- "response is not a ReaderFrom"
		}
		f.Seek(0, 0)
		w.Header().Set("Content-Length", "65536")
		io.Copy(w, f)
	})
	mux.HandleFunc("/hijack", func(w http.ResponseWriter, r *http.Request) {
		defer close(handled)
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			problems <- err.Error()
			return
		}
		if _, ok := c.(interface{ NetConn() net.Conn }).NetConn().(*net.TCPConn); !ok {
			problems <- "NetConn is not the accepted *net.TCPConn"
		}
		held.Go(func() { <-release; c.Close() })
	})
	srv := &http.Server{Handler: mux, ConnState: func(c net.Conn, s http.ConnState) { tr.track(c, s) }}
	go srv.Serve(tr.listener(ln))
	defer srv.Close()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + ln.Addr().String() + "/file")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(b) != 1<<16 {
		t.Fatalf("file: %d bytes, %v", len(b), err)
	}
	hc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	hc.Write([]byte("GET /hijack HTTP/1.1\r\nHost: x\r\n\r\n"))
	// The hijacker holds the connection; the server forgets it.
	for tr.closeIdle(time.Now(), testIdle, testIdle) != 1 || !hijacked(&tr) {
		runtime.Gosched()
	}
	<-handled
	close(release)
	held.Wait()
	if n := tr.closeIdle(time.Now(), testIdle, testIdle); n != 0 {
		t.Fatalf("%d open after the hijacker closed", n)
	}
	if _, err := bufio.NewReader(hc).ReadByte(); err != io.EOF {
		t.Fatalf("client read after close: %v", err)
	}
	close(problems)
	for p := range problems {
		t.Error(p)
	}
}

func hijacked(tr *connTracker) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for c := range tr.conns {
		if http.ConnState(c.state.Load()) == http.StateHijacked {
			return true
		}
	}
	return false
}

// serverTLS is a self-signed certificate, made in memory.
func serverTLS(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// A new connection that has sent nothing is given DrainFresh, not
// DrainIdle, for its first request: a client stalled between its connect
// and its write would otherwise lose the request. A keep-alive connection
// idle between requests still closes after DrainIdle.
func TestDrainWaitsLongerForAFirstRequest(t *testing.T) {
	var tr connTracker
	fresh, idle := pipeConn(t, &tr), pipeConn(t, &tr)
	tr.track(fresh, http.StateNew)
	tr.track(idle, http.StateIdle)
	t0 := time.Now()
	if n := tr.closeIdle(t0, testIdle, 3*testIdle); n != 2 {
		t.Fatalf("%d open at drain start, want 2", n)
	}
	if n := tr.closeIdle(t0.Add(testIdle), testIdle, 3*testIdle); n != 1 || fresh.closed.Load() || !idle.closed.Load() {
		t.Fatalf("after DrainIdle: %d open, new closed %v, idle closed %v; want the idle one closed, the new one open",
			n, fresh.closed.Load(), idle.closed.Load())
	}
	if n := tr.closeIdle(t0.Add(3*testIdle), testIdle, 3*testIdle); n != 0 || !fresh.closed.Load() {
		t.Fatalf("after DrainFresh: %d open, want the new connection closed", n)
	}
}

// pipeConn is a tracked connection over an in-memory pipe, closed at the
// end of the test.
func pipeConn(t *testing.T, tr *connTracker) *trackedConn {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return tr.add(b)
}
