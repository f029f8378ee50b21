package prefork

import (
	"cmp"
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
	"syscall"
	"time"

	"github.com/gracefork/gracefork/internal/control"
	"github.com/gracefork/gracefork/internal/handoff"
	"github.com/gracefork/gracefork/internal/sockets"
	core "github.com/gracefork/gracefork/internal/worker"
	"github.com/gracefork/gracefork/recycle"
)

// markerEnv is the environment variable that makes a process a worker. The
// master sets it for the workers it starts; a worker removes it from its own
// environment when Serve takes the hand-off, so processes that a handler
// starts never inherit it. Its value is private to gracefork.
const markerEnv = handoff.Env

// handoffState is the worker marker as this process found it.
type handoffState struct {
	set  bool // the marker is present, well formed or not
	spec handoff.Spec
	err  error // a malformed (leaked) marker, explained
}

// theHandoff reads the marker once, at the first need: IsWorker, Serve.
// Nothing reads or changes the environment at import (internal/handoff
// only marks the sockets the marker names close-on-exec).
var theHandoff = sync.OnceValue(func() handoffState { return readHandoff(os.Getenv) })

func readHandoff(getenv func(string) string) handoffState {
	s, ok, err := handoff.Lookup(getenv)
	if err != nil {
		err = leakedMarker(err.Error())
	}
	return handoffState{set: ok, spec: s, err: err}
}

// takeHandoff returns the hand-off and removes the marker from the
// environment, so that the processes handlers start never inherit it.
func takeHandoff() (handoff.Spec, error) {
	hs := theHandoff()
	os.Unsetenv(handoff.Env)
	if !hs.set {
		return handoff.Spec{}, fmt.Errorf("prefork: %s is not set: this process is no worker", markerEnv)
	}
	return hs.spec, hs.err
}

// ErrNotWorker is wrapped by the error a process returns when it carries the
// worker marker but was not started by a gracefork master.
var ErrNotWorker = errors.New("not started by a gracefork master")

func leakedMarker(what string) error {
	return fmt.Errorf("prefork: %s; this process is %w. The variable marks worker processes "+
		"and has probably leaked into this environment (a shell, a container spec, a child of a "+
		"worker): unset %s and start the program again", what, ErrNotWorker, markerEnv)
}

// IsWorker reports whether this process is a gracefork worker, that is,
// whether it was started with the worker marker in its environment. It
// reads the environment at its first call, or Serve's, whichever comes
// first.
func IsWorker() bool { return theHandoff().set }

// WorkerID returns this worker's slot, from 0 to Workers-1, or -1 in the
// master and in programs that are not gracefork workers. Slots are reused:
// a worker that replaces another gets its slot.
func WorkerID() int {
	if hs := theHandoff(); hs.set && hs.err == nil {
		return hs.spec.Slot
	}
	return -1
}

// WorkerGeneration returns a number that grows with every worker the master
// starts, or -1 outside a worker.
func WorkerGeneration() int {
	if hs := theHandoff(); hs.set && hs.err == nil {
		return hs.spec.Gen
	}
	return -1
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
// once done, or the drain waits for it until GracefulTimeout. In
// single-process mode it is closed when that process drains or quits; in
// a master it is never closed.
func Draining() <-chan struct{} { return drainStarted }

func markDraining() { drainOnce.Do(func() { close(drainStarted) }) }

// workerRole is this process when it is a worker: the serving core
// (internal/worker) on the inherited listeners, driven by the master's
// control channel and by signals.
type workerRole struct {
	cfg  *config
	log  *slog.Logger
	ctl  net.Conn
	core *core.Worker
	gath *workerGather // the master's scrapes; see metrics_worker.go
	// own says which listeners are this worker's slot's own sockets
	// (Options.ReusePort); nil in single-process mode.
	own []bool
	// single is set when this process serves alone, with no master
	// (single.go); ctl is then nil.
	single *single
	wg     sync.WaitGroup
	done   chan struct{} // closed when the stop is done

	ctlMu    sync.Mutex
	quitc    chan struct{}
	quitOnce sync.Once
}

// stopReq is why a worker stops: a drain with a deadline, or a quit.
type stopReq struct {
	drain    bool
	deadline time.Duration
	why      string
}

// newWorkerRole reads the hand-off, takes the inherited control channel and
// listeners, and builds the serving core. cfg comes from Options.validate().
func newWorkerRole(h http.Handler, cfg *config) (*workerRole, error) {
	s, err := takeHandoff()
	if err != nil {
		return nil, err
	}
	if s.Procs > 0 {
		runtime.GOMAXPROCS(s.Procs)
	}
	w := &workerRole{cfg: cfg, done: make(chan struct{}), quitc: make(chan struct{})}
	w.log = cfg.Logger.With("slot", s.Slot, "gen", s.Gen, "pid", os.Getpid())
	lns, err := w.inherit(s)
	if err != nil {
		return nil, err
	}
	w.own = ownSockets(lns)
	if err := w.build(h, lns); err != nil {
		return nil, err
	}
	return w, nil
}

// build makes the serving core on lns: the same in a worker and in a
// single process.
func (w *workerRole) build(h http.Handler, lns []net.Listener) error {
	w.gath = newWorkerGather(w, w.cfg)
	if !w.cfg.defaultLogger && (w.cfg.Server == nil || w.cfg.Server.ErrorLog == nil) {
		// net/http's complaints, a handler's panic with its stack among
		// them, as one record each, not as lines in the log stream.
		w.cfg.Server = cmp.Or(w.cfg.Server, &http.Server{})
		w.cfg.Server.ErrorLog = serverErrorLog(w.log)
	}
	var err error
	w.core, err = core.New(core.Config{Listeners: lns, Own: w.own, TLS: w.cfg.tls, Server: w.cfg.Server, Handler: h,
		DrainIdle: w.cfg.DrainIdle, Logger: w.log, OnDrain: markDraining,
		RequestTimeout: w.cfg.RequestTimeout, OnRunaway: w.retireRunaway, Observe: w.observer()})
	return err
}

// inherit opens the control channel and the listeners the master handed
// down, after checking they are what the marker says: a marker that leaked
// into a process nobody started as a worker must fail here, not hang.
func (w *workerRole) inherit(s handoff.Spec) ([]net.Listener, error) {
	if err := sockets.CheckControl(s.Ctl); err != nil {
		return nil, leakedMarker(fmt.Sprintf("%s names control %v", markerEnv, err))
	}
	for _, fd := range s.Fds {
		if err := sockets.CheckListener(fd); err != nil {
			return nil, leakedMarker(fmt.Sprintf("%s names listener %v", markerEnv, err))
		}
	}
	// The control channel and the listeners are real: a master started us,
	// and this binary names other addresses than the master's (a reload of
	// a binary whose address list changed).
	if len(s.Fds) != len(w.cfg.addrs) {
		return nil, fmt.Errorf("prefork: the address list changed: the master serves %d addresses, this binary's Options name %d (%s); "+
			"a reload (HUP) keeps the master's sockets, so a change of addresses needs a binary upgrade (USR2)",
			len(s.Fds), len(w.cfg.addrs), addrList(w.cfg.addrs))
	}
	var err error
	if w.ctl, err = fileConn(s.Ctl); err != nil {
		return nil, err
	}
	var lns []net.Listener
	for _, fd := range s.Fds {
		f := os.NewFile(uintptr(fd), "listener")
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("prefork: inherited listener fd %d: %w", fd, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// ownSockets says which inherited listeners are the slot's own: the
// sockets a master bound with SO_REUSEPORT (Options.ReusePort), each
// served by one slot's workers. Told by the socket, not by this binary's
// Options, so a reload across a change of the option still reads what the
// master did. An fd:// or systemd socket that has SO_REUSEPORT of its own
// is shared all the same; it counts as own here, which only turns off the
// holding back before Accept on it (see Options.ReusePort).
func ownSockets(lns []net.Listener) []bool {
	own := make([]bool, len(lns))
	for i, ln := range lns {
		if c, ok := ln.(syscall.Conn); ok {
			own[i] = sockets.ReusesPort(c)
		}
	}
	return own
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

// addrs are the inherited listeners' addresses.
func (w *workerRole) addrs() []net.Addr { return w.core.Addrs() }

// quit stops at once (Close semantics): a run in progress quits, and a run
// that starts later quits as soon as it serves. Safe to call at any time,
// more than once.
func (w *workerRole) quit() { w.quitOnce.Do(func() { close(w.quitc) }) }

// run serves until a stop: the master's Drain/Quit, a signal, EOF on the
// control channel, or ctx done (a graceful drain within GracefulTimeout).
// It returns nil after a clean stop, and an error when the worker could
// not serve: a failed WorkerInit, or a server that failed, which the
// master counts and quotes.
func (w *workerRole) run(ctx context.Context) error {
	sigc, stopSignals := catchSignals()
	defer stopSignals()
	stops := make(chan stopReq, 2)
	req, inited, err := w.workerInit(ctx, sigc)
	served := false
	if req == nil {
		w.core.Start()
		req, err = w.serving()
	}
	if req == nil {
		served = true
		w.announce(stops)
		req, err = w.await(ctx, sigc, stops)
	}
	if w.single != nil {
		w.shutdownDelay(req, sigc, stops, served)
	}
	began := time.Now()
	w.stop(*req, sigc, stops)
	if inited {
		w.workerShutdown(*req, began)
	}
	if req.drain && w.single == nil {
		// After the last request, before the channel closes: the
		// master folds these counts into the slot's. A quit skips it.
		w.gath.sendFinal(w.cfg.MetricsTimeout)
	}
	close(w.done)
	if w.single != nil {
		w.endSingle()
	} else {
		if err != nil {
			w.sendFailure(err)
		}
		w.send(w.beat()) // the last counters, before exiting
		w.ctl.Close()
	}
	w.wg.Wait()
	w.core.Wait()
	return err
}

// announce, once every server accepts, says so: to the master, which
// then counts this worker as ready, or in single-process mode to the
// world (readiness, systemd, the PID file).
func (w *workerRole) announce(stops chan<- stopReq) {
	if w.single != nil {
		w.startSingle()
		return
	}
	w.send(control.Message{Type: control.TypeReady})
	setServing(true) // ready once the master says the pool is
	w.log.Debug("worker serving")
	w.wg.Go(func() { w.readControl(stops) })
	w.wg.Go(w.heartbeat)
	// Not waited for: a collector stuck in the user's code must not
	// keep the worker from exiting.
	go w.gath.loop(w.done)
}

// catchSignals relays the worker's stop signals to the returned channel
// until the returned function is called.
func catchSignals() (<-chan os.Signal, func()) {
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT)
	// The master's signals, sent to a worker by hand or by a group kill,
	// must not stop it (TTIN and TTOU would, by default). They are caught
	// and dropped, not ignored: an ignored signal stays ignored across
	// exec, so a script a handler starts could not trap it.
	discard := make(chan os.Signal, 1) // never read: further signals are dropped
	notifyMasterOnly(discard)
	// Our stderr is a pipe to the master. Should the master die, a log
	// line must not kill us with SIGPIPE in the middle of a drain: with
	// SIGPIPE caught, the write fails with EPIPE instead. (Notify, not
	// Ignore: an ignored signal would be inherited by the handler's children.)
	pipes := make(chan os.Signal, 1)
	signal.Notify(pipes, syscall.SIGPIPE)
	return sigc, func() {
		signal.Stop(pipes)
		signal.Stop(discard)
		signal.Stop(sigc)
	}
}

// serving waits until every server has entered its accept loop (nil, nil).
// Ready means serving. A server that fails its setup (an HTTP/2
// requirement its TLS config does not meet, say) is a failed boot: the
// worker quits and exits non-zero, so the master counts it and quotes our
// stderr, instead of a worker that says it serves and answers nobody.
func (w *workerRole) serving() (*stopReq, error) {
	select {
	case <-w.core.Ready():
		return nil, nil
	case err := <-w.core.Failed():
		return &stopReq{why: "listener failed"}, err
	case <-w.quitc:
		return &stopReq{why: "quit"}, nil
	}
}

// await waits for the reason to stop.
func (w *workerRole) await(ctx context.Context, sigc <-chan os.Signal, stops <-chan stopReq) (*stopReq, error) {
	var recycled <-chan recycle.Due
	if w.single != nil {
		recycled = w.single.recycled
	}
	for {
		select {
		case req := <-stops:
			return &req, nil
		case sig := <-sigc:
			if req, ok := w.signalStop(sig); ok {
				return &req, nil
			}
		case due := <-recycled:
			w.log.Info("recycling: exiting for the supervisor to start a fresh process", "reason", due.Reason.String(), "detail", due.String())
			return &stopReq{drain: true, deadline: w.cfg.GracefulTimeout, why: "recycle: " + due.String()}, nil
		case err := <-w.core.Failed():
			// A listener stopped serving on its own: exit non-zero too.
			return &stopReq{why: "listener failed"}, err
		case <-ctx.Done():
			return &stopReq{drain: true, deadline: w.cfg.GracefulTimeout, why: "context done"}, nil
		case <-w.quitc:
			return &stopReq{why: "quit"}, nil
		}
	}
}

// signalStop is the stop a signal asks for; ok is false for SIGHUP in
// single-process mode, which is ignored with a warning: there are no
// workers to replace, and an orchestrator restarts the process to run
// new code.
func (w *workerRole) signalStop(sig os.Signal) (req stopReq, ok bool) {
	if w.single != nil && sig == syscall.SIGHUP {
		w.log.Warn("SIGHUP ignored: single-process mode has no workers to reload; restart the process instead")
		return stopReq{}, false
	}
	return stopFor(sig, w.cfg.GracefulTimeout), true
}

func stopFor(sig os.Signal, graceful time.Duration) stopReq {
	if sig == syscall.SIGINT || sig == syscall.SIGQUIT {
		return stopReq{why: sig.String()}
	}
	return stopReq{drain: true, deadline: graceful, why: sig.String()}
}

// stop drains or quits. A quit (INT, QUIT, the master's Quit, or quit)
// during a drain cuts it short.
func (w *workerRole) stop(req stopReq, sigc <-chan os.Signal, stops <-chan stopReq) {
	if !req.drain {
		w.log.Info("worker quitting", "why", req.why)
		w.core.Quit()
		return
	}
	w.log.Info("worker draining", "why", req.why, "deadline", req.deadline)
	ctx, cancel := context.WithTimeout(context.Background(), req.deadline)
	defer cancel()
	go w.hurry(ctx, cancel, sigc, stops)
	w.core.Drain(ctx) // logs when cut short
}

// hurry cuts a drain short when a quit arrives during it: INT or QUIT, the
// master's Quit, or quit. Further drain requests (TERM from a group kill
// on top of the master's Drain) change nothing.
func (w *workerRole) hurry(ctx context.Context, cancel func(), sigc <-chan os.Signal, stops <-chan stopReq) {
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
		case <-w.quitc:
			cancel()
			return
		case <-ctx.Done():
			return
		}
	}
}

// readControl turns the master's messages into a stop request. EOF means
// the master is gone: drain, so that no worker outlives it.
func (w *workerRole) readControl(stops chan<- stopReq) {
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
			setPoolReady(false, ctlGone(err))
			post(stopReq{drain: true, deadline: w.cfg.GracefulTimeout, why: ctlGone(err)})
			return
		}
		if req, ok := w.handle(msg); ok && !post(req) {
			return
		}
	}
}

// ctlGone says why the control channel ended.
func ctlGone(err error) string {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return "master gone"
	}
	return "control channel: " + err.Error()
}

// handle acts on one message from the master; ok says it asks to stop.
func (w *workerRole) handle(msg control.Message) (req stopReq, ok bool) {
	switch msg.Type {
	case control.TypeDrain:
		return stopReq{drain: true, deadline: msg.Deadline, why: "master asked"}, true
	case control.TypeQuit:
		return stopReq{why: "master asked"}, true
	case control.TypeCloseListeners:
		// The first phase of the master's final stop: stop accepting,
		// but answer keep-alive clients as before — no Connection:
		// close yet — until the Drain that follows once every worker
		// has closed its copies. See Master.stop.
		w.core.CloseListeners()
		w.log.Debug("worker stopped accepting", "why", "master asked")
		w.send(control.Message{Type: control.TypeListenersClosed})
	case control.TypeRequestLimit:
		// Tell the master at once when the limit is reached, not at the
		// next heartbeat: at 20,000 requests a second that is the
		// difference between a limit and twice it.
		w.core.NotifyAt(msg.Requests, func() { w.send(w.beat()) })
	case control.TypeGather:
		w.gath.ask(msg.Seq) // answered from another goroutine: never blocks
	case control.TypePool:
		w.core.SetPool(int(msg.Active), int(msg.Workers), int(msg.Fewest))
	case control.TypeReadiness:
		// The pool's readiness: ReadyHandler on the program's mux
		// answers for the whole pool, whichever worker takes the probe.
		switch {
		case msg.Ready:
			setPoolReady(true, "")
		case msg.Reason == control.NotReadyStopping:
			setStopping("the master is stopping")
			// No more balancing: a client sent away now could reconnect
			// into a socket that is about to close, and be reset.
			w.core.SetPool(0, 0, 0)
		default:
			setPoolReady(false, "fewer workers ready than the pool should have")
		}
	default:
		w.log.Warn("worker ignores an unexpected control message", "type", msg.Type.String())
	}
	return stopReq{}, false
}

// retireRunaway asks the master, once, to recycle this worker: a handler
// ran past its request timeout and its grace, ignoring its cancelled
// context, and only the process's exit ends it. The worker serves on until
// the master, its replacement ready, drains it; the drain does not wait
// for the abandoned handler.
func (w *workerRole) retireRunaway(d time.Duration) {
	if w.single != nil {
		w.log.Warn("recycling", "reason", "runaway request", "duration", d.String())
		select {
		case w.single.recycled <- recycle.Due{Reason: recycle.Runaway, Value: uint64(d), Limit: uint64(w.cfg.RequestTimeout)}:
		default:
		}
		return
	}
	w.log.Warn("worker asks to be recycled", "reason", "runaway request", "duration", d)
	w.send(control.Message{Type: control.TypeRetire, Reason: control.RetireRunaway, Value: uint64(d)})
}

// sendFailure tells the master why this worker is about to exit: its
// exit then quotes the error (Exit.Failure), and so does the *BootError
// of a failed boot, whatever the program does with Run's error.
func (w *workerRole) sendFailure(err error) {
	text := strings.TrimPrefix(err.Error(), "prefork: ")
	if len(text) > control.MaxFailure {
		text = strings.ToValidUTF8(text[:control.MaxFailure-3], "") + "..."
	}
	w.send(control.Message{Type: control.TypeFailed, Payload: text})
}

func (w *workerRole) heartbeat() {
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

func (w *workerRole) beat() control.Message {
	return control.Message{Type: control.TypeHeartbeat, Requests: w.core.Requests(), Active: uint32(w.core.Conns()),
		InFlight: uint32(w.core.InFlight()), RSS: readRSS()}
}

func (w *workerRole) send(msg control.Message) {
	if w.ctl == nil {
		return // single-process mode: no master
	}
	w.ctlMu.Lock()
	defer w.ctlMu.Unlock()
	w.ctl.SetWriteDeadline(time.Now().Add(time.Second))
	control.Write(w.ctl, msg)
}
