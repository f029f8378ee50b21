// Package worker is gracefork's serving core: it serves an http.Handler on
// given listeners with a user's http.Server, tracks the connections, and
// drains without losing a request — keep-alive clients are answered with
// "Connection: close", silent connections are closed after DrainIdle,
// HTTP/2 clients get GOAWAY, in-flight and hijacked handlers are waited
// for until the caller's deadline.
//
// It knows nothing of processes: no control channel, no signals, no exit.
// A gracefork worker process drives it from the master's messages; a
// single process can drive it alone.
package worker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultDrainIdle is how long a drain waits, by default, for the next
// request on a silent connection before it closes it.
const DefaultDrainIdle = time.Second

// DefaultDrainFresh is how long a drain waits, by default, for the first
// request of a connection that has sent nothing yet: net/http's own
// Shutdown waits as long. A client sends its request right after it
// connects, so a new connection is silent only while the client is stalled
// (a loaded machine, a GC pause) or when it connected ahead of need (a
// browser's preconnect); closing it in the first case loses the request,
// and the client cannot know it is safe to retry.
const DefaultDrainFresh = 5 * time.Second

// Config is what a Worker serves.
type Config struct {
	// Listeners are the sockets to serve; at least one. The Worker owns
	// them: it closes them when it stops accepting.
	Listeners []net.Listener
	// Own, if not nil, says by index which listeners are this worker's
	// own: a socket of its slot alone (gracefork's per-slot SO_REUSEPORT
	// sockets), whose queue no other worker serves. The worker never
	// holds back from accepting on one (balance.go: that would leave its
	// queue unserved), and the master may pause one (it stops
	// listening, and an accept fails with EINVAL): Accept then waits
	// until it listens again, or is closed, instead of failing the
	// server.
	Own []bool
	// TLS, if not nil, is each listener's TLS, by index: a nil entry
	// serves plain HTTP there, whatever Server.TLSConfig says, and the
	// rest serve TLS with their own configuration (HTTP/2 offered as
	// Server's protocols allow). Nil means Server.TLSConfig on every one.
	TLS []*tls.Config
	// Server is the http.Server to serve with: this very value, not a
	// copy, so that what a copy would lose (RegisterOnShutdown hooks,
	// SetKeepAlivesEnabled(false), fields of later Go versions) takes
	// effect. Its Handler is replaced by Handler wrapped, its ConnState
	// is called after the Worker's own tracking, and, unless set, its
	// TLSNextProto is taken over for HTTP/2's GOAWAY. With a TLSConfig
	// it serves TLS. Nil means a zero http.Server.
	Server *http.Server
	// Handler answers the requests; nil means http.DefaultServeMux, as
	// for an http.Server.
	Handler http.Handler
	// DrainIdle is how long a drain waits for the next request on a
	// silent connection before closing it; 0 means DefaultDrainIdle.
	DrainIdle time.Duration
	// DrainFresh is how long a drain waits for the first request of a
	// connection that has sent nothing; at least DrainIdle, and 0 means
	// DefaultDrainFresh.
	DrainFresh time.Duration
	// Logger receives the Worker's log lines; nil discards them.
	Logger *slog.Logger
	// OnDrain, if set, is called once when a drain or a quit begins,
	// before anything else changes.
	OnDrain func()

	// RequestTimeout, if set, bounds each request: once it has run that
	// long (see ExtendDeadline), its context is cancelled, its client is
	// answered 503 Service Unavailable with "Connection: close" — or, if
	// the handler has begun its answer, cut off — and one record logs the
	// method, the path, the duration and the handler's stack. The handler
	// then runs on alone: what it writes goes nowhere, and neither the
	// in-flight count nor a drain waits for it. Handlers run on a
	// goroutine of their own, the server's goroutine waiting for them. A
	// hijacked request has no timeout. 0 means none, and costs nothing.
	RequestTimeout time.Duration
	// RunawayGrace is how long a timed-out handler may take to return;
	// 0 means RequestTimeout again, at least MinRunawayGrace.
	RunawayGrace time.Duration
	// OnRunaway, if set, is called once, on a goroutine of its own, when
	// a handler still runs RunawayGrace after its request timed out: it
	// ignores its context, and nothing in Go can stop it; d is how long
	// it has run.
	OnRunaway func(d time.Duration)

	// Observe, if set, is called after each request the handler
	// answered, on the request's goroutine, with the status code it sent
	// (200 if it wrote nothing; Hijacked if it took the connection), the
	// body bytes it wrote and how long it ran. It must be quick and safe
	// for concurrent use; a handler that panics is not observed. Nil
	// costs nothing.
	Observe func(r *http.Request, code int, bytes int64, d time.Duration)
}

// Worker serves a handler on listeners until it is drained or quits.
type Worker struct {
	cfg Config
	log *slog.Logger
	srv *http.Server
	lns []net.Listener // tracked, and signalling their first Accept
	// accepts are the shared listeners of lns (not Own), to wake their Accept (balance.go).
	accepts []*acceptSignal
	conns   connTracker
	h2      *h2Drainer
	wg      sync.WaitGroup

	requests atomic.Uint64
	notify   atomic.Pointer[notice] // see NotifyAt
	inflight atomic.Int64           // handlers running, hijacked ones (WebSockets) included

	abandoned atomic.Int64 // handlers running after their request timed out
	ranAway   atomic.Bool  // OnRunaway was called
	lastDump  atomic.Int64 // when the last timed-out handler's stack was taken, in Unix ns

	draining  atomic.Bool
	drainc    chan struct{}
	drainOnce sync.Once
	// unlisted: the listeners are closed on purpose (CloseListeners, or
	// the drain); a server that stops serving then has not failed.
	unlisted     atomic.Bool
	closeLnsOnce sync.Once

	waiting atomic.Int32 // servers not yet in their accept loop
	pool    pool         // the pool's totals, for balancing (balance.go)
	ready   chan struct{}
	failed  chan error

	quitCtx    context.Context // done once Quit is called
	quitCancel context.CancelFunc
}

// New prepares a Worker: it wraps the listeners and takes over
// cfg.Server. Nothing is served before Start.
func New(cfg Config) (*Worker, error) {
	if len(cfg.Listeners) == 0 {
		return nil, errors.New("worker: no listener to serve")
	}
	if cfg.TLS != nil && len(cfg.TLS) != len(cfg.Listeners) {
		return nil, fmt.Errorf("worker: %d TLS settings for %d listeners", len(cfg.TLS), len(cfg.Listeners))
	}
	if cfg.Own != nil && len(cfg.Own) != len(cfg.Listeners) {
		return nil, fmt.Errorf("worker: %d Own flags for %d listeners", len(cfg.Own), len(cfg.Listeners))
	}
	if cfg.Handler == nil {
		cfg.Handler = http.DefaultServeMux
	}
	if cfg.DrainIdle <= 0 {
		cfg.DrainIdle = DefaultDrainIdle
	}
	if cfg.DrainFresh <= 0 {
		cfg.DrainFresh = DefaultDrainFresh
	}
	w := &Worker{cfg: cfg, log: cfg.Logger, drainc: make(chan struct{}),
		ready: make(chan struct{}), failed: make(chan error, len(cfg.Listeners))}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.quitCtx, w.quitCancel = context.WithCancel(context.Background())
	w.waiting.Store(int32(len(cfg.Listeners)))
	for i, ln := range cfg.Listeners {
		l := &acceptSignal{Listener: w.conns.listener(ln), onFirst: w.accepting, closed: make(chan struct{})}
		if cfg.Own != nil && cfg.Own[i] {
			l.own = true // no holding back: no other worker serves its queue
		} else {
			l.hold = w.holdBack
			if d, ok := ln.(interface{ SetDeadline(time.Time) error }); ok {
				l.deadline = d.SetDeadline
			}
			w.accepts = append(w.accepts, l)
		}
		w.lns = append(w.lns, l)
	}
	w.srv = w.server(cfg.Server)
	w.h2 = splitHTTP2(w.srv, cfg.TLS, w.log)
	return w, nil
}

// server returns srv (or a zero server) set up to serve through the
// Worker: its Handler becomes the wrapped handler, and its ConnState is
// called after the Worker's own connection tracking.
func (w *Worker) server(srv *http.Server) *http.Server {
	if srv == nil {
		srv = &http.Server{}
	}
	userState := srv.ConnState
	srv.Handler = w.wrap(w.cfg.Handler)
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		w.conns.track(c, s)
		if userState != nil {
			userState(c, s)
		}
	}
	return srv
}

// wrap is the library's whole per-request cost in the handler path: a
// request counter, an in-flight counter the drain waits on, and a check of
// the drain flag so that each keep-alive client learns from the answer to
// its next request to reconnect, elsewhere. With a RequestTimeout, h runs
// under it, inside the counting: a request that timed out no longer
// counts as in flight. With an Observe, the status code and the duration
// are taken around that (see observe).
func (w *Worker) wrap(h http.Handler) http.Handler {
	if d := w.cfg.RequestTimeout; d > 0 {
		h = w.timeout(h, d)
	}
	if w.cfg.Observe != nil {
		// Outside the timeout: a 503 for a late handler is observed,
		// and an abandoned handler never sees the pooled writer.
		h = w.observe(h)
	}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if n, c := w.requests.Add(1), w.notify.Load(); c != nil && c.n == n {
			go c.f()
		}
		w.inflight.Add(1)
		defer w.inflight.Add(-1)
		if w.draining.Load() {
			// HTTP/1: the connection closes after this answer. HTTP/2
			// (TLS or h2c, net/http's or x/net's) drops the header and
			// sends GOAWAY: the client finishes its streams here and
			// opens new ones elsewhere.
			rw.Header().Set("Connection", "close")
		} else if w.pool.shed.Load() > 0 && !w.unlisted.Load() {
			// Not once the listeners are closed (a final stop's first
			// phase): the client would reconnect into another worker's
			// copy of the socket, about to close, and be reset.
			w.shedOne(rw) // over its share: this client reconnects elsewhere
		}
		h.ServeHTTP(rw, r)
	})
}

// Start serves every listener, each in its own goroutine, and returns at
// once. Ready tells when they all accept; Failed, when one has stopped.
func (w *Worker) Start() {
	// Every listener's TLS is read before any server runs: net/http's
	// HTTP/2 set-up gives a server without a TLSConfig an empty one when
	// its first Serve begins, and a listener read after that would be
	// served as TLS without a certificate.
	// The server's own TLSConfig goes through ServeTLS (whose HTTP/2
	// set-up checks it), a listener's own through a TLS listener.
	tcs := make([]*tls.Config, len(w.lns))
	own := make([]bool, len(w.lns))
	for i := range w.lns {
		tcs[i] = w.tlsOf(i)
		own[i] = tcs[i] != w.srv.TLSConfig
	}
	for i, ln := range w.lns {
		w.wg.Go(func() { w.serve(ln, tcs[i], own[i]) })
	}
}

func (w *Worker) accepting() {
	if w.waiting.Add(-1) == 0 {
		close(w.ready)
	}
}

// Ready is closed when every server has finished its setup (HTTP/2
// configuration, TLS checks) and waits in Accept.
func (w *Worker) Ready() <-chan struct{} { return w.ready }

// Failed delivers an error for each server that stopped serving on its
// own: one that failed its setup, before Ready, or whose listener failed
// (or whose http.Server was closed by someone else) later. A server
// stopped by CloseListeners, Drain or Quit has not failed.
func (w *Worker) Failed() <-chan error { return w.failed }

// tlsOf is the TLS listener i serves: Config.TLS's entry, or the
// server's own.
func (w *Worker) tlsOf(i int) *tls.Config {
	if w.cfg.TLS == nil {
		return w.srv.TLSConfig
	}
	return w.cfg.TLS[i]
}

// serve serves ln: plain HTTP without tc; with it, TLS — with the
// server's own TLSConfig through ServeTLS, or with the listener's own
// (Config.TLS) through a TLS listener.
func (w *Worker) serve(ln net.Listener, tc *tls.Config, own bool) {
	var err error
	switch {
	case tc == nil:
		err = w.srv.Serve(ln)
	case !own:
		err = w.srv.ServeTLS(ln, "", "")
	default:
		err = w.srv.Serve(tls.NewListener(ln, w.listenerTLS(tc)))
	}
	if !w.draining.Load() && !w.unlisted.Load() {
		// ErrServerClosed here means the program closed Config.Server
		// itself.
		w.log.Error("worker listener failed", "addr", ln.Addr().String(), "err", err)
		w.failed <- fmt.Errorf("prefork: worker cannot serve %s: %w", ln.Addr(), err)
	}
}

// Addrs are the listeners' addresses, in Config order.
func (w *Worker) Addrs() []net.Addr {
	as := make([]net.Addr, len(w.cfg.Listeners))
	for i, ln := range w.cfg.Listeners {
		as[i] = ln.Addr()
	}
	return as
}

// Requests is how many requests the handler has been given.
func (w *Worker) Requests() uint64 { return w.requests.Load() }

// NotifyAt has f called, on a goroutine of its own, when the handler is
// given its n-th request; n == 0 cancels. Call it before Start, or
// concurrently with the requests: a count already past n calls nothing.
// One notification at a time: a later call replaces the earlier.
func (w *Worker) NotifyAt(n uint64, f func()) {
	if n == 0 {
		w.notify.Store(nil)
		return
	}
	w.notify.Store(&notice{n, f})
}

// notice is a call NotifyAt asked for.
type notice struct {
	n uint64
	f func()
}

// Abandoned is how many handlers still run after their request timed out
// and was answered for them.
func (w *Worker) Abandoned() int { return int(max(w.abandoned.Load(), 0)) }

// Conns is how many connections are open, hijacked ones included.
func (w *Worker) Conns() int { return w.conns.count() }

// InFlight is how many requests are being served now, hijacked ones
// included: a request that timed out and was answered for its handler no
// longer counts (see Abandoned).
func (w *Worker) InFlight() int { return int(max(w.inflight.Load(), 0)) }

// Draining is closed when a drain or a quit begins.
func (w *Worker) Draining() <-chan struct{} { return w.drainc }

func (w *Worker) startDrain() {
	w.draining.Store(true)
	w.drainOnce.Do(func() {
		close(w.drainc)
		if w.cfg.OnDrain != nil {
			w.cfg.OnDrain()
		}
	})
}

// CloseListeners stops accepting, once: the listeners close, and the
// connections already open are served on as before — no "Connection:
// close" yet. A later Drain closes them. (gracefork's final stop closes
// every worker's listeners before any drains, so that clients that come
// meanwhile are refused rather than queued for nobody.)
func (w *Worker) CloseListeners() {
	w.unlisted.Store(true)
	w.closeLnsOnce.Do(func() {
		for _, ln := range w.lns {
			ln.Close()
		}
	})
}

// Drain stops gracefully and returns nil when it is done, or ctx's error
// once ctx ends first (or Quit cuts it short), after closing what is left.
// It stops accepting, sends GOAWAY to HTTP/2 connections, answers with
// "Connection: close", and waits until every connection is gone —
// answered, closed by its hijacker, or waiting for a request and silent
// (nothing received) for DrainIdle, or DrainFresh for a connection that
// never sent a request — and every handler has returned. Then
// the server's RegisterOnShutdown hooks run (http.Server.Shutdown).
func (w *Worker) Drain(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(w.quitCtx, cancel)
	defer stop()
	// The listeners close before any client is told to reconnect: a
	// client told "Connection: close" while this worker still held its
	// listener could reconnect into the socket's queue just before it
	// closed, and be reset.
	w.CloseListeners() // done already when CloseListeners came first
	w.startDrain()
	w.h2.goAway()
	w.waitQuiet(ctx)
	if err := w.srv.Shutdown(ctx); err != nil {
		w.srv.Close()
		w.log.Warn("worker drain cut short", "err", err, "open", w.conns.count())
		return err
	}
	return nil
}

// waitQuiet closes silent connections and returns when no connection is
// open and no handler runs, or ctx ends.
func (w *Worker) waitQuiet(ctx context.Context) {
	idle := w.cfg.DrainIdle
	tick := time.NewTicker(min(max(idle/10, 5*time.Millisecond), 50*time.Millisecond))
	defer tick.Stop()
	for w.conns.closeIdle(time.Now(), idle, w.cfg.DrainFresh) > 0 || w.inflight.Load() > 0 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// Quit stops at once: the listeners and every connection the server
// tracks close (http.Server.Close); a Drain in progress returns.
// Hijacked connections are their handlers' to close.
func (w *Worker) Quit() {
	w.startDrain()
	w.quitCancel()
	w.srv.Close()
}

// Wait returns when every server started by Start has returned, which
// follows Drain or Quit.
func (w *Worker) Wait() { w.wg.Wait() }
