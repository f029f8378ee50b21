package prefork

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gracefork/gracefork/internal/control"
	"github.com/gracefork/gracefork/internal/sockets"
)

// workerProc is this process, when it is a worker.
type workerProc struct {
	cfg  *config
	log  *slog.Logger
	ctl  net.Conn
	lns  []net.Listener
	srv  *http.Server
	wg   sync.WaitGroup
	done chan struct{}

	ctlMu    sync.Mutex
	draining atomic.Bool
	// unlisted: the listeners are closed on purpose (the master's
	// CloseListeners, or the drain); a server that stops serving then has
	// not failed.
	unlisted     atomic.Bool
	closeLnsOnce sync.Once
	requests     atomic.Uint64
	inflight     atomic.Int64 // handlers running, hijacked ones (WebSockets) included
	conns        connTracker
	h2           *h2Drainer
	failed       chan error // a listener stopped serving on its own
}

// drainStarted is closed when this worker starts to drain or quit.
var (
	drainStarted = make(chan struct{})
	drainOnce    sync.Once
)

// Draining returns a channel that is closed when this worker begins to
// drain or quit. Handlers that hold a connection for long — WebSockets,
// streams, hijacked connections — select on it to finish their work and
// let the client reconnect elsewhere; the drain waits for them until
// GracefulTimeout. A hijacked connection counts until it is closed, even
// when the handler has returned and another goroutine holds it: close it
// once done, or the drain waits for it until GracefulTimeout. Outside a
// worker the channel is never closed.
func Draining() <-chan struct{} { return drainStarted }

func (w *workerProc) startDrain() {
	w.draining.Store(true)
	drainOnce.Do(func() { close(drainStarted) })
}

// stopReq is why a worker stops: a drain with a deadline, or a quit.
type stopReq struct {
	drain    bool
	deadline time.Duration
	why      string
}

func serveWorker(h http.Handler, opts Options) error {
	if markerErr != nil {
		return markerErr
	}
	cfg, err := opts.validate()
	if err != nil {
		return err
	}
	if mySpec.procs > 0 {
		runtime.GOMAXPROCS(mySpec.procs)
	}
	w := &workerProc{cfg: cfg, done: make(chan struct{}), failed: make(chan error, len(mySpec.fds))}
	w.log = cfg.Logger.With("slot", mySpec.slot, "gen", mySpec.gen, "pid", os.Getpid())
	if err := w.inherit(mySpec); err != nil {
		return err
	}
	w.srv = w.server(h)
	w.h2 = splitHTTP2(w.srv, w.log)
	return w.run()
}

// inherit opens the control channel and the listeners the master handed
// down, after checking they are what the marker says: a marker that leaked
// into a process nobody started as a worker must fail here, not hang.
func (w *workerProc) inherit(s spec) error {
	if err := sockets.CheckControl(s.ctl); err != nil {
		return leakedMarker(fmt.Sprintf("%s names control %v", markerEnv, err))
	}
	for _, fd := range s.fds {
		if err := sockets.CheckListener(fd); err != nil {
			return leakedMarker(fmt.Sprintf("%s names listener %v", markerEnv, err))
		}
	}
	// The control channel and the listeners are real: a master started us,
	// and this binary names other addresses than the master's (a reload of
	// a binary whose address list changed).
	if len(s.fds) != len(w.cfg.addrs) {
		return fmt.Errorf("prefork: the address list changed: the master serves %d addresses, this binary's Options name %d (%s); "+
			"a reload (HUP) keeps the master's sockets, so a change of addresses needs a binary upgrade (USR2)",
			len(s.fds), len(w.cfg.addrs), addrList(w.cfg.addrs))
	}
	var err error
	if w.ctl, err = fileConn(s.ctl); err != nil {
		return err
	}
	for _, fd := range s.fds {
		f := os.NewFile(uintptr(fd), "listener")
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("prefork: inherited listener fd %d: %w", fd, err)
		}
		w.lns = append(w.lns, w.conns.listener(ln))
	}
	return nil
}

func addrList(as []sockets.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

func fileConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "control")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("prefork: inherited control fd %d: %w", fd, err)
	}
	return c, nil
}

// server returns the http.Server this worker serves with: the user's
// template itself, so that what a copy would lose — hooks added with
// RegisterOnShutdown, SetKeepAlivesEnabled(false), fields of later Go
// versions — takes effect. Its Handler becomes h wrapped, and its
// ConnState is called after the worker's own connection tracking.
func (w *workerProc) server(h http.Handler) *http.Server {
	srv := w.cfg.Server
	if srv == nil {
		srv = &http.Server{}
	}
	userState := srv.ConnState
	srv.Handler = w.wrap(h)
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		w.conns.track(c, s, w.draining.Load())
		if userState != nil {
			userState(c, s)
		}
	}
	return srv
}

// wrap is the library's whole per-request cost in the handler path: a
// request counter, an in-flight counter the drain waits on, and a check of
// the drain flag so that each keep-alive client learns from the answer to
// its next request to reconnect, to another worker.
func (w *workerProc) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.requests.Add(1)
		w.inflight.Add(1)
		defer w.inflight.Add(-1)
		if w.draining.Load() {
			// HTTP/1: the connection closes after this answer. HTTP/2
			// (TLS or h2c, net/http's or x/net's) drops the header and
			// sends GOAWAY: the client finishes its streams here and
			// opens new ones elsewhere.
			rw.Header().Set("Connection", "close")
		}
		h.ServeHTTP(rw, r)
	})
}

func (w *workerProc) run() error {
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT)
	// The master's signals, sent to a worker by hand or by a group kill,
	// must not stop it (TTIN and TTOU would, by default). They are caught
	// and dropped, not ignored: an ignored signal stays ignored across
	// exec, so a script a handler starts could not trap it.
	discard := make(chan os.Signal, 1) // never read: further signals are dropped
	notifyMasterOnly(discard)
	defer signal.Stop(discard)
	defer signal.Stop(sigc)
	// Our stderr is a pipe to the master. Should the master die, a log
	// line must not kill us with SIGPIPE in the middle of a drain: with
	// SIGPIPE caught, the write fails with EPIPE instead. (Notify, not
	// Ignore: an ignored signal would be inherited by the handler's children.)
	pipes := make(chan os.Signal, 1)
	signal.Notify(pipes, syscall.SIGPIPE)
	defer signal.Stop(pipes)

	accepting := make([]*acceptSignal, len(w.lns))
	for i, ln := range w.lns {
		accepting[i] = newAcceptSignal(ln)
		w.wg.Go(func() { w.serve(accepting[i]) })
	}
	stops := make(chan stopReq, 2)
	var req stopReq
	// Ready means serving: every server has finished its setup and waits
	// in Accept. A server that fails its setup (an HTTP/2 requirement its
	// TLS config does not meet, say) is a failed boot: exit non-zero, so
	// the master counts it and quotes our stderr, instead of a worker that
	// says it serves and answers nobody.
	err := w.serving(accepting)
	if err != nil {
		req = stopReq{why: "listener failed"}
	} else {
		w.send(control.Message{Type: control.TypeReady})
		w.log.Debug("worker serving")
		w.wg.Go(func() { w.readControl(stops) })
		w.wg.Go(w.heartbeat)
		select {
		case req = <-stops:
		case sig := <-sigc:
			req = stopFor(sig, w.cfg.GracefulTimeout)
		case err = <-w.failed:
			// A listener stopped serving on its own: exit non-zero too.
			req = stopReq{why: "listener failed"}
		}
	}
	w.stop(req, sigc, stops)
	close(w.done)
	w.send(w.beat()) // the last counters, before exiting
	w.ctl.Close()
	w.wg.Wait()
	return err
}

// serving waits until every server has entered its accept loop, or one
// has stopped (failed its setup) first.
func (w *workerProc) serving(lns []*acceptSignal) error {
	for _, ln := range lns {
		select {
		case <-ln.accepting:
		case err := <-w.failed:
			return err
		}
	}
	return nil
}

func stopFor(sig os.Signal, graceful time.Duration) stopReq {
	if sig == syscall.SIGINT || sig == syscall.SIGQUIT {
		return stopReq{why: sig.String()}
	}
	return stopReq{drain: true, deadline: graceful, why: sig.String()}
}

func (w *workerProc) serve(ln net.Listener) {
	var err error
	if w.srv.TLSConfig != nil {
		err = w.srv.ServeTLS(ln, "", "")
	} else {
		err = w.srv.Serve(ln)
	}
	if !w.draining.Load() && !w.unlisted.Load() {
		// ErrServerClosed here means the program closed Options.Server
		// itself, which this worker serves with.
		w.log.Error("worker listener failed", "addr", ln.Addr().String(), "err", err)
		w.failed <- fmt.Errorf("prefork: worker cannot serve %s: %w", ln.Addr(), err)
	}
}

// stop drains or quits. A quit (INT, QUIT, or the master's Quit) during a
// drain cuts it short.
func (w *workerProc) stop(req stopReq, sigc <-chan os.Signal, stops <-chan stopReq) {
	if !req.drain {
		w.log.Info("worker quitting", "why", req.why)
		w.startDrain()
		w.srv.Close()
		return
	}
	w.log.Info("worker draining", "why", req.why, "deadline", req.deadline)
	ctx, cancel := context.WithTimeout(context.Background(), req.deadline)
	defer cancel()
	go w.hurry(ctx, cancel, sigc, stops)
	w.drain(ctx)
	if err := w.srv.Shutdown(ctx); err != nil {
		w.srv.Close()
		w.log.Warn("worker drain cut short", "err", err, "open", w.conns.count())
	}
}

// hurry cuts a drain short when a quit arrives during it: INT or QUIT, or
// the master's Quit. Further drain requests (TERM from a group kill on top
// of the master's Drain) change nothing.
func (w *workerProc) hurry(ctx context.Context, cancel func(), sigc <-chan os.Signal, stops <-chan stopReq) {
	for {
		select {
		case sig := <-sigc:
			if !stopFor(sig, 0).drain {
				cancel()
				return
			}
		case r := <-stops:
			if !r.drain {
				cancel()
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// drain stops accepting — in a reload or a scale-down the socket lives on
// in the master and the other workers, so queued connections are not lost;
// in a final stop the master's CloseListeners closed it already — and
// waits until every
// connection is gone — answered with Connection: close, closed by its
// hijacker, or waiting for a request and silent (nothing received) for
// DrainIdle — and every handler has returned.
func (w *workerProc) drain(ctx context.Context) {
	w.startDrain()
	w.closeListeners() // done already when the master's CloseListeners came first
	w.h2.goAway()
	tick := time.NewTicker(min(max(w.cfg.DrainIdle/10, 5*time.Millisecond), 50*time.Millisecond))
	defer tick.Stop()
	for w.conns.closeIdle(time.Now(), w.cfg.DrainIdle) > 0 || w.inflight.Load() > 0 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// closeListeners stops accepting: it closes this worker's copies of the
// sockets, once. The connections already open are served on as before.
func (w *workerProc) closeListeners() {
	w.unlisted.Store(true)
	w.closeLnsOnce.Do(func() {
		for _, ln := range w.lns {
			ln.Close()
		}
	})
}

// readControl turns the master's messages into a stop request. EOF means
// the master is gone: drain, so that no worker outlives it.
func (w *workerProc) readControl(stops chan<- stopReq) {
	post := func(r stopReq) bool {
		select {
		case stops <- r:
			return true
		case <-w.done:
			return false
		}
	}
	for {
		msg, err := control.Read(w.ctl)
		if errors.Is(err, control.ErrType) {
			// A newer master's message, read whole: skip it.
			w.log.Warn("worker ignores an unknown control message", "type", msg.Type.String())
			continue
		}
		if err != nil {
			why := "master gone"
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				why = "control channel: " + err.Error()
			}
			post(stopReq{drain: true, deadline: w.cfg.GracefulTimeout, why: why})
			return
		}
		ok := true
		switch msg.Type {
		case control.TypeDrain:
			ok = post(stopReq{drain: true, deadline: msg.Deadline, why: "master asked"})
		case control.TypeQuit:
			ok = post(stopReq{why: "master asked"})
		case control.TypeCloseListeners:
			// The first phase of the master's final stop: stop accepting,
			// but answer keep-alive clients as before — no Connection:
			// close yet — until the Drain that follows once every worker
			// has closed its copies. See Master.stop.
			w.closeListeners()
			w.log.Debug("worker stopped accepting", "why", "master asked")
			w.send(control.Message{Type: control.TypeListenersClosed})
		default:
			w.log.Warn("worker ignores an unexpected control message", "type", msg.Type.String())
		}
		if !ok {
			return
		}
	}
}

func (w *workerProc) heartbeat() {
	t := time.NewTicker(heartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			w.send(w.beat())
		case <-w.done:
			return
		}
	}
}

func (w *workerProc) beat() control.Message {
	return control.Message{Type: control.TypeHeartbeat, Requests: w.requests.Load(), Active: uint32(w.conns.count())}
}

func (w *workerProc) send(msg control.Message) {
	w.ctlMu.Lock()
	defer w.ctlMu.Unlock()
	w.ctl.SetWriteDeadline(time.Now().Add(time.Second))
	control.Write(w.ctl, msg)
}
