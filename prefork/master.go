package prefork

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"
	"github.com/gracefork/gracefork/internal/control"
	"github.com/gracefork/gracefork/internal/handoff"
	"github.com/gracefork/gracefork/internal/sdnotify"
	"github.com/gracefork/gracefork/recycle"
	"github.com/gracefork/gracefork/signals"
	dto "github.com/prometheus/client_model/go"
)

// master supervises the workers: the Server of the master process.
type master struct {
	cfg     *config
	clock   Clock
	spawner Spawner
	baseEnv []string

	lns   []net.Listener
	files []*os.File  // the listeners' descriptors, handed to every worker
	owned []ownedPath // unix socket paths this master's line created
	// With ReusePort (reuseport.go): which addresses have a socket per
	// slot, each slot's own sockets (slot 0's are also in lns and files),
	// and whether Linux moves a closing socket's queue elsewhere.
	perSlot   []bool
	slotSocks []*slotSockets
	migrate   bool
	settling  bool // maybeAnnounce is settling the slot sockets
	upg       *tableflip.Upgrader
	// upgradeFn starts a new master and waits until it is ready; it
	// returns what the new master wrote into the report pipe. Nil when
	// this master has no upgrader. Tests replace it.
	upgradeFn func() (report string, err error)

	logFile *logFile // Options.LogFile, when set

	hooks *hookQueue // runs Options.Hooks' master hooks; nil without any

	mx          *masterMetrics
	metricsLn   net.Listener // Options.MetricsAddr's socket, served by the master only
	metricsFile *os.File     // its descriptor, kept as the workers' sockets are
	metricsSrv  *http.Server // serves metricsLn while Run runs; owned by the loop

	notify       *sdnotify.Notifier
	watchdog     time.Duration // systemd watchdog ping interval, 0 if off
	report       *os.File      // read end of the pipe a failed new master writes to
	parentReport *os.File      // in a new master: where to say why it failed

	events chan any
	done   chan struct{} // closed when the loop has ended
	wg     sync.WaitGroup

	// Requests wait here, unbounded, so that asking never blocks; one
	// actionsEvent at a time in events wakes the loop for them.
	actionsMu sync.Mutex
	actions   []request
	woken     bool // an actionsEvent is queued
	ended     bool // the loop has ended: requests are refused

	// Owned by the loop goroutine.
	gen     int
	slots   []*slot // the active slots; len(slots) is the worker count now
	workers map[*worker]struct{}
	// reading: workers whose control channel is still being read — to its
	// end, after their exit, for their final metrics snapshot.
	reading  map[*worker]struct{}
	stopping bool // shutting down: no more spawns
	quitting bool // quick shutdown
	stopErr  error
	asked    bool // a Shutdown or Quit was asked for: a new master that took over gets it too
	closed   bool // closeSockets has run
	// The first phase of a final stop (see stop): the workers are closing
	// their listeners; the drain waits for them, until closeWaitTimer.
	closingLns     bool
	closeWaitTimer Timer
	reload         reloadState
	recycle        recycleState
	// A graceful stop's ShutdownDelay (readiness.go): readiness fails,
	// the workers serve on, the stop begins when delayTimer fires.
	delaying   bool
	delayTimer Timer
	ready      struct { // the pool's readiness as last recorded
		ok  bool
		why string
	}

	announced     bool // every worker was ready once: READY=1, PID file, tableflip Ready
	upgrading     bool
	upgradeWait   []chan error // Server.Upgrade calls waiting for the upgrade in progress
	handedOver    bool         // a new master took over: this one drains and leaves
	successor     int          // the new master's pid, once it took over (0 if it did not say)
	waitingParent bool         // started by an upgrade, and the old master is still there
	watchdogTimer Timer
}

// slot is one of the N places a worker serves in. During a reload it holds
// the serving worker and its replacement, until the replacement is ready.
type slot struct {
	id           int
	w            *worker // the worker that serves, or boots for, this slot
	next         *worker // its replacement, booting, during a reload
	failures     int     // in a row, for the backoff
	bootFailures int     // in a row, for giving up
	restart      Timer
	degraded     bool       // could not be refilled while others serve; retrying at maxBackoff
	lastErr      *BootError // why, while degraded
}

type worker struct {
	s            *slot
	slot, gen    int
	proc         Process
	ctl          net.Conn
	spawnedAt    time.Time
	readyAt      time.Time
	ready        bool
	stopping     bool // the master asked it to go
	closingLns   bool // told to close its listeners at a stop; has not said it did
	bootTimedOut bool
	killed       bool // the master sent SIGKILL, or SIGABRT (hung): what it says now no longer counts
	bootTimer    Timer
	killTimer    Timer
	beatTimer    Timer            // fires when a serving worker has been silent for HeartbeatTimeout
	tracker      *recycle.Tracker // its recycle limits, drawn when it became ready; nil without any
	due          *recycle.Due     // the limit it reached: it waits to be recycled
	usage        usage            // its latest heartbeat's counts
	// Its metrics are settled (finishMetrics) once it has exited and its
	// control channel has been read to the end, whichever comes last.
	exited   bool
	expected bool                // it exited as asked (EventExited's Expected)
	ctlDone  bool                // its control reader has ended
	final    []*dto.MetricFamily // the final snapshot it sent, if any
	told     telling             // what it was last told of the pool's readiness
	failure  string              // why it said it exits (control.TypeFailed), for its Exit
	// ctlEnded is closed when its control reader has ended and posted
	// everything it read: its exit is handled after that (see spawn).
	ctlEnded chan struct{}
}

// Loop events.
type (
	exitEvent struct {
		w    *worker
		exit Exit
	}
	msgEvent struct {
		w   *worker
		msg control.Message
	}
	ctlErrEvent struct {
		w   *worker
		err error
	}
	unknownMsgEvent struct {
		w   *worker
		typ string
	}
	orphanEvent struct {
		pid    int
		status string
	}
	actionsEvent struct{} // requests are queued (see do)
	timerEvent   struct{ t *loopTimer }
)

func newMaster(cfg *config) (*master, error) {
	m := &master{
		cfg:     cfg,
		clock:   cfg.Clock,
		spawner: cfg.Spawner,
		baseEnv: handoff.WorkerEnviron(os.Environ()),
		events:  make(chan any, 64),
		done:    make(chan struct{}),
		workers: make(map[*worker]struct{}),
		reading: make(map[*worker]struct{}),
	}
	mx, err := newMasterMetrics(m)
	if err != nil {
		return nil, err
	}
	m.mx = mx
	if cfg.LogFile != "" {
		lf, err := openLogFile(cfg.LogFile)
		if err != nil {
			return nil, &OptionError{Field: "LogFile", Value: cfg.LogFile, Reason: err.Error(), Err: err}
		}
		m.logFile = lf
		if cfg.defaultLogger {
			cfg.Logger = withReadableDurations(slog.New(slog.NewTextHandler(lf, &slog.HandlerOptions{Level: cfg.LogLevel})))
		}
	}
	if m.spawner == nil {
		m.spawner = m.execSpawner()
	}
	for i := range cfg.Workers {
		m.slots = append(m.slots, &slot{id: i})
	}
	if err := m.init(); err != nil {
		m.tellParent(err)
		m.closeSockets()
		m.unlinkOwned()
		if m.logFile != nil {
			m.logFile.Close()
		}
		return nil, err
	}
	return m, nil
}

// execSpawner is the spawner of a master given none: this program again,
// its output to LogFile when one is set, its stray stderr lines as
// records when the program set a Logger.
func (m *master) execSpawner() *ExecSpawner {
	es := &ExecSpawner{Path: invokedAs(), self: true, binaryGone: func(binary, running string) {
		m.emit(Event{Kind: EventBinaryGone, Path: binary, Detail: running}) // Spawn runs in the loop
	}}
	if m.logFile != nil {
		es.Stdout, es.Stderr = m.logFile, m.logFile
	}
	if !m.cfg.defaultLogger {
		es.Logger = m.cfg.Logger
	}
	return es
}

// init connects the master to systemd and tableflip and takes its sockets.
func (m *master) init() error {
	var err error
	if m.notify, err = sdnotify.FromEnv(os.Getenv); err != nil {
		return err
	}
	if err := m.setupUpgrader(); err != nil {
		return err
	}
	if err := m.setupWatchdog(); err != nil {
		return err
	}
	if f := m.cfg.PIDFile; f != "" && !m.hasParent() {
		if err := checkPIDFile(f); err != nil {
			return &OptionError{Field: "PIDFile", Value: f, Reason: err.Error()}
		}
	}
	return m.bindAll()
}

// request is an action asked of the loop: by a signal, with no reply, or
// by a Server method, which waits on reply for the outcome.
type request struct {
	a     signals.Action
	scale bool // Server.Scale: set the worker count to n
	n     int
	reply chan error // buffered; nil when nobody waits
	sig   os.Signal  // the signal that asked, if one did
	// A scrape to start (the metrics handler), or a status to report
	// (Server.Status): neither is an action.
	gather *scrape
	status chan []WorkerStatus // buffered
}

// answer completes the request's waiter, if it has one.
func (r request) answer(err error) { answer(r.reply, err) }

// answer gives a waiter, if there is one, its outcome.
func answer(reply chan error, err error) {
	if reply != nil {
		reply <- err
	}
}

// do queues r for the loop. It never blocks: the requests queue, without
// bound, and the loop takes them in order — those asked before Run once
// Run starts. Once the loop has ended it returns ErrServerClosed.
func (m *master) do(r request) error {
	m.actionsMu.Lock()
	defer m.actionsMu.Unlock()
	if m.ended {
		return ErrServerClosed
	}
	m.actions = append(m.actions, r)
	if m.woken {
		return nil
	}
	select {
	case m.events <- actionsEvent{}:
		m.woken = true
	default:
		// The queue is full: the loop will handle those events, and takes
		// the actions after each one.
	}
	return nil
}

// runActions acts on what do queued.
func (m *master) runActions() {
	m.actionsMu.Lock()
	rs := m.actions
	m.actions, m.woken = nil, false
	m.actionsMu.Unlock()
	for _, r := range rs {
		m.onRequest(r)
	}
}

// endActions refuses, once the loop has ended, what is still queued and
// every request asked from now on.
func (m *master) endActions() {
	m.actionsMu.Lock()
	rs := m.actions
	m.actions, m.ended = nil, true
	m.actionsMu.Unlock()
	for _, r := range rs {
		r.answer(ErrServerClosed)
	}
}

// release closes the sockets of a master that never ran.
func (m *master) release() {
	m.endActions()
	m.releaseMetrics()
	m.closeSockets()
	m.unlinkOwned()
	if m.logFile != nil {
		m.logFile.Close()
	}
}

// run starts the workers and supervises them until a shutdown; ctx ending
// asks for a graceful one.
func (m *master) run(ctx context.Context) error {
	stopSignals := m.forwardSignals()
	stopCtx := context.AfterFunc(ctx, func() { m.do(request{a: signals.Shutdown}) })
	ctx, cancel := context.WithCancel(context.Background())
	m.watchPredecessor(ctx)
	m.readMetricsImport()
	m.serveMetrics()
	m.startHooks()
	for _, s := range m.slots {
		m.spawn(s, false)
	}
	setServing(true)
	m.setLiveCheck()
	if m.cfg.ReloadOnChange {
		m.watch()
	}
	m.loop()
	close(m.done)
	m.endActions()
	m.stopMetrics()
	stopCtx()
	cancel()
	stopSignals()
	if m.watchdogTimer != nil {
		m.watchdogTimer.Stop()
	}
	m.closeSockets()
	m.exportMetrics() // after tableflip's copy of the pipe is closed: a new master that does not read it cannot hold the write
	m.wg.Wait()
	m.unlinkOwned()
	if m.cfg.PIDFile != "" && !m.handedOver {
		removePIDFile(m.cfg.PIDFile)
	}
	m.tellParent(m.stopErr)
	m.finishHooks() // OnExit, and what is still queued, within HooksExitWait
	m.emit(Event{Kind: EventStopped})
	if m.handedOver && interactive() {
		m.awaitSuccessorInTerminal() // does not return when it works
	}
	if m.logFile != nil {
		m.logFile.Close()
	}
	return m.stopErr
}

// loop handles the events — and the master hooks' reports — until the
// master has stopped and nothing is left to wait for. An upgrade in
// progress at the stop ends soon (closeSockets stopped tableflip); its
// outcome decides whether the new master must stop too. The last workers'
// control channels are read to their end, so that their final metrics are
// folded before the metrics server stops.
func (m *master) loop() {
	for !(m.stopping && len(m.workers) == 0 && len(m.reading) == 0 && !m.upgrading) {
		select {
		case ev := <-m.events:
			m.handle(ev)
		case e := <-m.hookReports():
			m.handle(callEvent{func() { m.emit(e) }})
		}
	}
}

func (m *master) forwardSignals() (stop func()) {
	ignorePipe.Do(func() { signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE) })
	sigc := make(chan os.Signal, 8)
	signal.Notify(sigc, m.cfg.Signals.Signals()...)
	quit := make(chan struct{})
	m.wg.Go(func() {
		for {
			select {
			case sig := <-sigc:
				m.do(request{a: m.cfg.Signals[sig], sig: sig})
			case <-quit:
				return
			}
		}
	})
	stopReaper := m.startReaper()
	return func() { signal.Stop(sigc); close(quit); stopReaper() }
}

// ignorePipe catches SIGPIPE for the rest of the process's life, as the
// workers do: when the reader of the master's stderr goes away (a log
// pipe's reader restarted), Go's default would kill the master on its next
// log line, and the workers with their serving sockets after it. Caught,
// the write fails with EPIPE, which the loggers and the copy of the
// workers' stderr ignore. Not stopped when Run returns: the master still
// logs after that, and so may the program.
var ignorePipe sync.Once

// post hands an event to the loop, or drops it once the loop has ended.
func (m *master) post(ev any) {
	select {
	case m.events <- ev:
	case <-m.done:
	}
}

// after runs f in the loop once d has passed on the master's clock,
// unless the timer was stopped first.
//
// The clock's own Stop cannot promise that: once the timer has fired, its
// event may wait in the queue behind others — a heartbeat that re-arms a
// worker's deadline, a ready that ends its boot — while the loop is stalled
// (a blocked log write). Stop then reports false and the stale f would still
// run: a kill of a worker that is fine. So the loop checks, when the event
// comes up, that the timer is still the current one: Stop, called in the
// loop, marks it stale, and its f never runs.
func (m *master) after(d time.Duration, f func()) Timer {
	t := &loopTimer{f: f}
	t.clock = m.clock.AfterFunc(d, func() { m.post(timerEvent{t}) })
	return t
}

// loopTimer is a Timer whose call runs in the loop. stopped is read and
// written only by the loop goroutine.
type loopTimer struct {
	clock   Timer
	f       func()
	stopped bool
}

// Stop cancels the call, even when the timer has fired and its event waits
// in the queue. Only the loop goroutine may call it.
func (t *loopTimer) Stop() bool {
	t.clock.Stop()
	was := !t.stopped
	t.stopped = true
	return was
}

// fire runs the call once, unless the timer was stopped.
func (t *loopTimer) fire() {
	if t.stopped {
		return
	}
	t.stopped = true
	t.f()
}

func (m *master) handle(ev any) {
	switch ev := ev.(type) {
	case exitEvent:
		m.onExit(ev.w, ev.exit)
	case msgEvent:
		m.onMessage(ev.w, ev.msg)
	case ctlErrEvent:
		m.onProtocolError(ev.w, ev.err)
	case unknownMsgEvent:
		m.onUnknownMessage(ev)
	case orphanEvent:
		m.emit(Event{Kind: EventOrphanReaped, Pid: ev.pid, Detail: ev.status})
	case timerEvent:
		ev.t.fire()
	case upgradeEvent:
		m.onUpgrade(ev)
	case predecessorEvent:
		m.onPredecessorGone(ev)
	case ctlDoneEvent:
		m.onCtlDone(ev)
	case callEvent:
		ev.f()
	}
	if _, ok := ev.(actionsEvent); ok || m.actionsLost() {
		m.runActions()
	}
	m.updateReadiness()
}

// actionsLost reports queued actions whose wake-up did not fit in the full
// events queue; the loop takes them after the next event. While a wake-up
// is queued the actions wait for it, so that they run in their place in
// the queue and no stale wake-up is left behind.
func (m *master) actionsLost() bool {
	m.actionsMu.Lock()
	defer m.actionsMu.Unlock()
	return len(m.actions) > 0 && !m.woken
}

// onRequest acts on a request of a signal or a Server method.
func (m *master) onRequest(r request) {
	switch {
	case r.gather != nil:
		m.startScrape(r.gather)
		return
	case r.status != nil:
		r.status <- m.workerStatus()
		return
	}
	if r.scale {
		if m.stopping || m.delaying {
			r.answer(ErrServerClosed)
			return
		}
		if m.scaleRefused() {
			a := signals.AddWorker
			if r.n < len(m.slots) {
				a = signals.RemoveWorker
			}
			m.emit(Event{Kind: EventActionRefused, Action: a, Detail: errScaleDuringUpgrade.Error()})
			r.answer(errScaleDuringUpgrade)
			return
		}
		m.scale(r.n)
		r.answer(nil)
		return
	}
	m.onAction(r)
}

func (m *master) onAction(r request) {
	a := r.a
	if r.sig == sigWINCH && r.sig != nil && a == signals.StopWorkers && interactive() {
		m.emit(Event{Kind: EventSignalIgnored})
		return
	}
	m.emit(Event{Kind: EventAction, Action: a})
	if a == signals.Shutdown || a == signals.Quit {
		m.asked = true
		if m.handedOver {
			m.forwardStop(a)
		}
	}
	if m.refused(r) {
		return
	}
	switch a {
	case signals.Shutdown:
		if !m.beginShutdownDelay(stopWhy(r)) {
			m.stop(true, nil)
		}
	case signals.Quit:
		setStopping(stopWhy(r))
		m.stop(false, nil)
	case signals.Reload:
		m.startReload(r.reply)
		return
	case signals.Upgrade:
		m.startUpgrade(r.reply)
		return
	case signals.AddWorker:
		m.addWorker()
	case signals.RemoveWorker:
		m.removeWorker()
	case signals.StopWorkers:
		m.stopWorkers()
	case signals.ReopenLogs:
		m.reopenLogs()
	}
	r.answer(nil)
}

// refused answers r, and reports true, when its action cannot run now: a
// stop has begun (only Quit hurries it), a shutdown delay runs, or a
// scale would split per-slot sockets between two masters.
func (m *master) refused(r request) bool {
	a := r.a
	switch {
	case m.stopping && a != signals.Quit:
		r.answer(ErrServerClosed)
	case m.delaying && refusedWhileDelaying(a):
		m.emit(Event{Kind: EventActionRefused, Action: a, Detail: "stopping after the shutdown delay"})
		r.answer(ErrServerClosed)
	case (a == signals.AddWorker || a == signals.RemoveWorker || a == signals.StopWorkers) && m.scaleRefused():
		m.emit(Event{Kind: EventActionRefused, Action: a, Detail: errScaleDuringUpgrade.Error()})
		r.answer(errScaleDuringUpgrade)
	default:
		return false
	}
	return true
}

func cancelRestart(s *slot) {
	if s.restart != nil {
		s.restart.Stop()
		s.restart = nil
	}
}

// liveWorkers lists the workers in a stable order, for deterministic logs.
func (m *master) liveWorkers() []*worker {
	ws := make([]*worker, 0, len(m.workers))
	for w := range m.workers {
		ws = append(ws, w)
	}
	slices.SortFunc(ws, func(a, b *worker) int { return a.gen - b.gen })
	return ws
}

// stopWorker tells w to drain or quit, and arms the kill that follows if it
// has not exited in time.
func (m *master) stopWorker(w *worker, graceful bool) {
	w.stopping = true
	if w.killed {
		return // dying on a deadline of its own (see abort): a drain must not put it off
	}
	stopTimer(w.beatTimer) // it has a deadline now
	msg := control.Message{Type: control.TypeQuit}
	deadline := quitTimeout
	if graceful {
		msg = control.Message{Type: control.TypeDrain, Deadline: m.cfg.GracefulTimeout}
		deadline = satAdd(m.cfg.GracefulTimeout, killGrace)
		m.emit(Event{Kind: EventDraining, Slot: w.slot, Generation: w.gen, Pid: w.proc.Pid()})
	}
	m.send(w, msg)
	if w.killTimer != nil {
		w.killTimer.Stop()
	}
	w.killTimer = m.after(deadline, func() {
		if _, live := m.workers[w]; live {
			m.emit(Event{Kind: EventKilled, Slot: w.slot, Generation: w.gen, Pid: w.proc.Pid(), Delay: deadline})
			w.proc.Signal(syscall.SIGKILL)
		}
	})
}

// satAdd adds durations without overflowing: a GracefulTimeout meant as
// "forever" must not wrap into an immediate kill.
func satAdd(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// send writes one message to a worker. A worker that cannot take it is dead
// or dying; its exit arrives as an event, so the error is dropped here.
func (m *master) send(w *worker, msg control.Message) {
	w.ctl.SetWriteDeadline(time.Now().Add(time.Second))
	control.Write(w.ctl, msg)
}

// describe names a worker in errors.
func (w *worker) String() string {
	return fmt.Sprintf("worker slot %d (gen %d, pid %d)", w.slot, w.gen, w.proc.Pid())
}
