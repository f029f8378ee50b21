package worker

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// long is a deadline or an idle time no passing test reaches.
const long = time.Minute

// start serves cfg on a fresh 127.0.0.1 listener and waits until it is
// ready; the Worker quits at the end of the test.
func start(t *testing.T, cfg Config) *Worker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listeners = append([]net.Listener{ln}, cfg.Listeners...)
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.Start()
	t.Cleanup(func() { w.Quit(); w.Wait() })
	select {
	case <-w.Ready():
	case err := <-w.Failed():
		t.Fatal(err)
	}
	return w
}

// gated is a handler that signals when a request is in it and returns
// when released.
type gated struct{ in, release chan struct{} }

func newGated() *gated { return &gated{in: make(chan struct{}, 8), release: make(chan struct{})} }

func (g *gated) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/wait" {
		g.in <- struct{}{}
		<-g.release
	}
	io.WriteString(rw, "ok")
}

// rawConn is an HTTP/1.1 client on one connection.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, w *Worker) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", w.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, br: bufio.NewReader(c)}
}

func (c *rawConn) send(t *testing.T, path string) {
	t.Helper()
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
}

func (c *rawConn) answer(t *testing.T) *http.Response {
	t.Helper()
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp
}

// closed waits until the server has closed the connection.
func (c *rawConn) closed(t *testing.T) {
	t.Helper()
	if b, err := c.br.ReadByte(); err == nil {
		t.Fatalf("read %q from a connection the drain should have closed", b)
	}
}

func drain(w *Worker, ctx context.Context) <-chan error {
	done := make(chan error, 1)
	go func() { done <- w.Drain(ctx) }()
	return done
}

func notYet(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("the drain returned (%v) %s", err, what)
	default:
	}
}

// A request in flight when the drain starts runs to its end and the drain
// waits for it; the next request on the connection is answered with
// Connection: close, and the drain ends when the connection has closed.
func TestDrainWaitsForInFlightAndAnswersClose(t *testing.T) {
	g := newGated()
	w := start(t, Config{Handler: g, DrainIdle: long})
	c := dial(t, w)
	c.send(t, "/")
	if resp := c.answer(t); resp.Close {
		t.Fatal("an answer before the drain closes the connection")
	}
	c.send(t, "/wait")
	<-g.in
	done := drain(w, context.Background())
	<-w.Draining()
	notYet(t, done, "with a handler running")
	close(g.release)
	c.answer(t)
	notYet(t, done, "with a keep-alive connection open")
	// The client's next request learns of the drain.
	c.send(t, "/")
	if resp := c.answer(t); !resp.Close { // Connection: close
		t.Fatalf("the answer in the drain keeps the connection: %v", resp.Header)
	}
	if err := <-done; err != nil {
		t.Fatalf("Drain = %v", err)
	}
	c.closed(t)
	if w.Requests() != 3 || w.Conns() != 0 {
		t.Fatalf("Requests=%d Conns=%d, want 3 and 0", w.Requests(), w.Conns())
	}
}

// Keep-alive connections waiting for their next request, and connections
// that never sent one, are closed once silent for DrainIdle (DrainFresh).
func TestDrainClosesSilentConnections(t *testing.T) {
	w := start(t, Config{Handler: newGated(), DrainIdle: 10 * time.Millisecond, DrainFresh: 10 * time.Millisecond})
	idle, fresh := dial(t, w), dial(t, w)
	idle.send(t, "/")
	idle.answer(t)
	for w.Conns() != 2 { // the fresh one is accepted
		runtime.Gosched()
	}
	if err := w.Drain(context.Background()); err != nil {
		t.Fatalf("Drain = %v", err)
	}
	idle.closed(t)
	fresh.closed(t)
}

// A request half received when the drain starts is read to its end and
// answered, with Connection: close. (How a slow sender's bytes keep its
// connection from counting as silent is TestDrainKeepsConnectionsThatReceive.)
func TestDrainAnswersHalfReceivedRequest(t *testing.T) {
	w := start(t, Config{Handler: newGated(), DrainIdle: long})
	c := dial(t, w)
	io.WriteString(c, "GET / HTTP/1.1\r\nHo")
	for w.Conns() != 1 {
		runtime.Gosched()
	}
	done := drain(w, context.Background())
	<-w.Draining()
	io.WriteString(c, "st: x\r\n\r\n")
	if resp := c.answer(t); !resp.Close {
		t.Fatalf("the answer in the drain keeps the connection: %v", resp.Header)
	}
	if err := <-done; err != nil {
		t.Fatalf("Drain = %v", err)
	}
}

// A hijacked connection counts until its holder closes it, after its
// handler has returned: the drain waits for it.
func TestDrainWaitsForHijackedHandlers(t *testing.T) {
	release, held := make(chan struct{}), make(chan struct{})
	w := start(t, Config{DrainIdle: time.Millisecond, Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(rw).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		go func() { <-release; conn.Close() }()
		close(held)
	})})
	c := dial(t, w)
	c.send(t, "/")
	<-held
	done := drain(w, context.Background())
	<-w.Draining()
	for w.inflight.Load() != 0 { // the handler has returned
		runtime.Gosched()
	}
	notYet(t, done, "with a hijacked connection open")
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Drain = %v", err)
	}
	c.closed(t)
}

// The deadline cuts a drain short: Drain returns ctx's error and closes
// what is left.
func TestDrainHonoursDeadline(t *testing.T) {
	g := newGated()
	defer close(g.release)
	w := start(t, Config{Handler: g, DrainIdle: long})
	c := dial(t, w)
	c.send(t, "/wait")
	<-g.in
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := w.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain = %v, want the deadline", err)
	}
	c.closed(t)
}

// Quit cuts a drain in progress short.
func TestQuitCutsDrainShort(t *testing.T) {
	g := newGated()
	defer close(g.release)
	w := start(t, Config{Handler: g, DrainIdle: long})
	c := dial(t, w)
	c.send(t, "/wait")
	<-g.in
	done := drain(w, context.Background())
	<-w.Draining()
	w.Quit()
	<-done
	c.closed(t)
}

// CloseListeners stops accepting without draining: new clients are
// refused, open connections are answered as before, without
// Connection: close, and no server counts as failed.
func TestCloseListenersKeepsConnectionsAlive(t *testing.T) {
	w := start(t, Config{Handler: newGated(), DrainIdle: long})
	c := dial(t, w)
	// The worker holds the test's only copy of the socket: closing it
	// with the connection still in the accept queue would reset it (in a
	// gracefork worker the master's copy keeps the queue).
	for w.Conns() != 1 {
		runtime.Gosched()
	}
	w.CloseListeners()
	if nc, err := net.Dial("tcp", w.Addrs()[0].String()); err == nil {
		nc.Close()
		t.Fatal("a new client connects after CloseListeners")
	}
	c.send(t, "/")
	if resp := c.answer(t); resp.Close {
		t.Fatal("CloseListeners made an answer close its connection")
	}
	select {
	case err := <-w.Failed():
		t.Fatalf("CloseListeners counts as a failure: %v", err)
	case <-w.Draining():
		t.Fatal("CloseListeners started a drain")
	default:
	}
}

// Ready waits for every server's setup: a BaseContext still running keeps
// the Worker from being ready.
func TestReadyOnlyOnceAccepting(t *testing.T) {
	in, release := make(chan struct{}), make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{BaseContext: func(net.Listener) context.Context {
		close(in)
		<-release
		return context.Background()
	}}
	w, err := New(Config{Listeners: []net.Listener{ln}, Server: srv, Handler: newGated()})
	if err != nil {
		t.Fatal(err)
	}
	w.Start()
	defer func() { w.Quit(); w.Wait() }()
	<-in
	select {
	case <-w.Ready():
		t.Fatal("ready while the server is still in its setup")
	default:
	}
	close(release)
	<-w.Ready()
}

// A server whose setup fails (a TLS config HTTP/2 rejects) is never
// ready: Failed says why.
func TestSetupFailureIsReported(t *testing.T) {
	conf := serverTLS(t)
	conf.MaxVersion = tls.VersionTLS12
	conf.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(Config{Listeners: []net.Listener{ln}, Server: &http.Server{TLSConfig: conf}, Handler: newGated()})
	if err != nil {
		t.Fatal(err)
	}
	w.Start()
	defer func() { w.Quit(); w.Wait() }()
	select {
	case <-w.Ready():
		t.Fatal("a server that failed its setup is ready")
	case err := <-w.Failed():
		if !strings.Contains(err.Error(), "HTTP/2") || !strings.Contains(err.Error(), ln.Addr().String()) {
			t.Fatalf("failure %q does not say why and where", err)
		}
	}
}

// A server closed behind the Worker's back has failed.
func TestServerClosedByOthersIsReported(t *testing.T) {
	srv := &http.Server{}
	w := start(t, Config{Server: srv, Handler: newGated()})
	srv.Close()
	if err := <-w.Failed(); !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Failed = %v", err)
	}
}

func TestNewNeedsListeners(t *testing.T) {
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "listener") {
		t.Fatalf("New without listeners = %v", err)
	}
}

// HTTP/2 connections, over TLS and unencrypted, get GOAWAY when the drain
// starts, even idle ones that would otherwise wait for DrainIdle.
// The TLS may be the server's or the listener's own (Config.TLS).
func TestDrainSendsGoAway(t *testing.T) {
	for _, how := range []string{"server TLS", "listener TLS", "h2c"} {
		srv := &http.Server{}
		cfg := Config{Server: srv, Handler: newGated(), DrainIdle: long}
		viaTLS := how != "h2c"
		switch how {
		case "server TLS":
			srv.TLSConfig = serverTLS(t)
		case "listener TLS":
			cfg.TLS = []*tls.Config{serverTLS(t)}
		default:
			srv.Protocols = new(http.Protocols)
			srv.Protocols.SetHTTP1(true)
			srv.Protocols.SetUnencryptedHTTP2(true)
		}
		w := start(t, cfg)
		var c net.Conn
		c, err := net.Dial("tcp", w.Addrs()[0].String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if viaTLS {
			tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
			if err := tc.Handshake(); err != nil || tc.ConnectionState().NegotiatedProtocol != "h2" {
				t.Fatalf("handshake: %v, protocol %q", err, tc.ConnectionState().NegotiatedProtocol)
			}
			c = tc
		}
		// The client preface and empty SETTINGS; the server's SETTINGS
		// come once the connection is HTTP/2's.
		io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
		br := bufio.NewReader(c)
		if typ := readFrame(t, br); typ != 0x4 {
			t.Fatalf("%s: first frame of type %d, want SETTINGS", how, typ)
		}
		done := drain(w, context.Background())
		for typ := byte(0); typ != 0x7; { // GOAWAY
			typ = readFrame(t, br)
		}
		c.Close()
		if err := <-done; err != nil {
			t.Fatalf("%s: Drain = %v", how, err)
		}
	}
}

// With Config.TLS, one listener serves TLS (HTTP/2 offered) while another
// serves plain HTTP on the same server, even when the server has a
// TLSConfig of its own.
func TestPerListenerTLS(t *testing.T) {
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conf := serverTLS(t)
	srv := &http.Server{TLSConfig: serverTLS(t)}
	// start adds the TLS listener, first.
	w := start(t, Config{Server: srv, Handler: newGated(), TLS: []*tls.Config{conf, nil}, Listeners: []net.Listener{plain}})
	if len(w.Addrs()) != 2 {
		t.Fatalf("serving %v", w.Addrs())
	}
	for _, proto := range []string{"h2", "http/1.1"} {
		tc, err := tls.Dial("tcp", w.Addrs()[0].String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{proto}})
		if err != nil {
			t.Fatalf("TLS listener: %v", err)
		}
		if got := tc.ConnectionState().NegotiatedProtocol; got != proto {
			t.Errorf("TLS listener negotiated %q, want %q", got, proto)
		}
		tc.Close()
	}
	if len(conf.NextProtos) != 0 {
		t.Errorf("the caller's tls.Config was changed: NextProtos %q", conf.NextProtos)
	}
	c, err := net.Dial("tcp", w.Addrs()[1].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("plain listener: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestNewChecksTLSLength(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := New(Config{Listeners: []net.Listener{ln}, TLS: []*tls.Config{nil, nil}}); err == nil || !strings.Contains(err.Error(), "2 TLS settings for 1 listeners") {
		t.Fatalf("New = %v", err)
	}
}

// readFrame reads one HTTP/2 frame and returns its type.
func readFrame(t *testing.T, br *bufio.Reader) byte {
	t.Helper()
	var h [9]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	n := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
	if _, err := io.CopyN(io.Discard, br, int64(n)); err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	return h[3]
}

// NotifyAt calls its function when the handler is given the n-th request
// (once: the count only grows, and the call is on equality).
func TestNotifyAt(t *testing.T) {
	w := start(t, Config{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})})
	called := make(chan uint64, 4)
	w.NotifyAt(3, func() { called <- w.Requests() })
	c := dial(t, w)
	for i := range 5 {
		c.send(t, "/")
		c.answer(t)
		if i == 2 {
			if n := <-called; n < 3 {
				t.Fatalf("called at %d requests, want 3", n)
			}
		}
	}
}

// Two plain listeners on a server without a TLSConfig both serve plain
// HTTP: net/http's HTTP/2 set-up, run by the first Serve, gives the server
// an empty TLSConfig, which a listener started after it must not take for
// its own.
func TestPlainListenersStayPlain(t *testing.T) {
	second, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	third, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := start(t, Config{Handler: newGated(), Listeners: []net.Listener{second, third}})
	for _, a := range w.Addrs() {
		resp, err := http.Get("http://" + a.String() + "/")
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		resp.Body.Close()
	}
	select {
	case err := <-w.Failed():
		t.Fatal(err)
	default:
	}
}
