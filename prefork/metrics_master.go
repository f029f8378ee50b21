package prefork

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gracefork/gracefork/internal/control"
	"github.com/gracefork/gracefork/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// ctlLinger bounds how long the master reads a dead worker's control
// channel for what it wrote before it exited (its final snapshot). The
// worker's end closed with the process; only a descendant that inherited
// the descriptor keeps it open.
const ctlLinger = time.Second

// scrapesKept is how many recent scrapes the master remembers, to date
// their late answers.
const scrapesKept = 16

// masterMetrics is the master's side of the metrics: the workers'
// snapshots merged, the master's own registry, and the scrapes in flight.
//
// Snapshots arrive on the per-worker control readers and go straight to
// the Merger, which is safe for concurrent use; the loop never decodes
// one. A scrape's waiter is woken by the readers, not by the loop, so a
// scrape never waits for the loop past its start.
type masterMetrics struct {
	merger  *metrics.Merger
	reg     *prometheus.Registry
	own     *ownMetrics
	handler http.Handler
	upgrade metricsUpgrade

	mu      sync.Mutex
	seq     uint64
	last    time.Time          // the latest scrape's start
	scrapes map[uint64]*scrape // the recent ones, by number
	order   []uint64
}

// scrape is one gathering of the workers' snapshots.
type scrape struct {
	seq   uint64
	start time.Time
	want  map[*worker]bool // asked, and not answered yet
	asked chan struct{}    // closed once the loop has asked every worker
	done  chan struct{}    // closed once every worker asked has answered or ended
}

func newMasterMetrics(m *master) (*masterMetrics, error) {
	mx := &masterMetrics{
		merger:  metrics.NewMerger(),
		reg:     prometheus.NewRegistry(),
		own:     newOwnMetrics(m.clock.Now()),
		scrapes: map[uint64]*scrape{},
	}
	if err := mx.own.register(mx.reg); err != nil {
		return nil, err
	}
	if r := m.cfg.MetricsRegisterer; r != nil {
		if err := mx.own.register(r); err != nil {
			return nil, &OptionError{Field: "MetricsRegisterer", Value: phrase("a prometheus.Registerer"), Reason: "cannot register the master's metrics: " + err.Error(), Err: err}
		}
	}
	mx.handler = metrics.Handler(prometheus.Gatherers{mx.reg, mx.merger}, m.refreshMetrics, metricsLogger{m})
	return mx, nil
}

// MetricsHandler returns the handler Options.MetricsAddr serves at
// /metrics, for a route of the program's own in the master process (its
// admin server, say): every worker's metrics, each series labelled
// worker="<slot>", merged with what retired workers counted, and the
// master's own. Each request asks the workers for a snapshot and waits
// up to Options.MetricsTimeout; a worker that has not answered by then is
// served from its previous snapshot and gracefork_worker_metrics_stale
// says so. Text, OpenMetrics and protobuf are negotiated as promhttp
// does. In single-process mode it serves this process's metrics
// (MetricsGatherer, and the worker metrics with WorkerMetrics); in a
// worker it returns nil.
func (s *Server) MetricsHandler() http.Handler {
	if s.IsSingleProcess() {
		return s.w.singleMetricsHandler()
	}
	if s.m == nil {
		return nil
	}
	return s.m.mx.handler
}

// MetricsAddr returns the address the master serves its metrics on, or
// nil without Options.MetricsAddr, and in a worker. In single-process
// mode it is where this process serves them.
func (s *Server) MetricsAddr() net.Addr {
	if s.IsSingleProcess() && s.w.single.metricsLn != nil {
		return s.w.single.metricsLn.Addr()
	}
	if s.m == nil || s.m.metricsLn == nil {
		return nil
	}
	return s.m.metricsLn.Addr()
}

// refreshMetrics gathers the workers' snapshots for a scrape: the loop
// asks every serving worker, and the answers come in on the workers'
// control readers. It returns when all have answered or gone, when
// MetricsTimeout has passed on the master's clock, when ctx ends or when
// the loop has ended; a stopped worker never holds a scrape longer.
//
// In a new master after a binary upgrade, it first waits for the old
// master's totals (see awaitImport).
func (m *master) refreshMetrics(ctx context.Context) {
	m.awaitImport(ctx)
	timeout := make(chan struct{})
	t := m.clock.AfterFunc(m.cfg.MetricsTimeout, func() { close(timeout) })
	defer t.Stop()
	sc := &scrape{want: map[*worker]bool{}, asked: make(chan struct{}), done: make(chan struct{})}
	if m.do(request{gather: sc}) != nil {
		return
	}
	for _, c := range []chan struct{}{sc.asked, sc.done} {
		select {
		case <-c:
		case <-timeout:
			return
		case <-ctx.Done():
			return
		case <-m.done:
			return
		}
	}
}

// startScrape, in the loop, asks every serving worker for a snapshot. A
// worker still booting is not asked (it reads its control channel once it
// serves); a killed one is dying.
func (m *master) startScrape(sc *scrape) {
	mx := m.mx
	var ask []*worker
	for _, w := range m.liveWorkers() {
		if w.ready && !w.killed && !w.ctlDone {
			ask = append(ask, w)
		}
	}
	mx.mu.Lock()
	mx.seq++
	sc.seq = mx.seq
	// Strictly later than the previous scrape, even on a clock that has
	// not moved (a test's): a snapshot of an earlier scrape must be older.
	sc.start = m.clock.Now()
	if !sc.start.After(mx.last) {
		sc.start = mx.last.Add(time.Nanosecond)
	}
	mx.last = sc.start
	for _, w := range ask {
		sc.want[w] = true
	}
	mx.scrapes[sc.seq] = sc
	mx.order = append(mx.order, sc.seq)
	if len(mx.order) > scrapesKept {
		delete(mx.scrapes, mx.order[0])
		mx.order = mx.order[1:]
	}
	mx.merger.MarkScrape(sc.start)
	if len(sc.want) == 0 {
		close(sc.done)
	}
	mx.mu.Unlock()
	for _, w := range ask {
		m.send(w, control.Message{Type: control.TypeGather, Seq: sc.seq})
	}
	close(sc.asked)
}

// onMetrics takes a worker's snapshot, on its control reader. A final
// one is also kept for the worker's retirement (see finishMetrics).
func (m *master) onMetrics(w *worker, msg control.Message, final *[]*dto.MetricFamily) {
	mx := m.mx
	defer mx.answered(w, msg.Seq, msg.Final)
	fams, err := metrics.Decode([]byte(msg.Payload))
	if err != nil {
		m.postEmit(Event{Kind: EventMetricsRejected, Slot: w.slot, Generation: w.gen, Pid: w.proc.Pid(), Err: err})
		return
	}
	mx.mu.Lock()
	at := mx.last
	if sc := mx.scrapes[msg.Seq]; sc != nil && !msg.Final {
		at = sc.start
	} else if !msg.Final {
		at = time.Time{} // an answer to a scrape long gone, or to none
	}
	mx.mu.Unlock()
	if msg.Final {
		*final = fams
	}
	if at.IsZero() {
		return
	}
	if err := mx.merger.Update(w.slot, w.gen, fams, at); err != nil && !errors.Is(err, metrics.ErrFinished) {
		m.postEmit(Event{Kind: EventMetricsRejected, Slot: w.slot, Generation: w.gen, Pid: w.proc.Pid(), Err: err})
	}
}

// answered counts w's answer to scrape seq; a final snapshot, or the end
// of its control channel (all true), answers every scrape it owes.
func (mx *masterMetrics) answered(w *worker, seq uint64, all bool) {
	mx.mu.Lock()
	defer mx.mu.Unlock()
	for n, sc := range mx.scrapes {
		if (all || n == seq) && sc.want[w] {
			delete(sc.want, w)
			if len(sc.want) == 0 {
				close(sc.done)
			}
		}
	}
}

// ctlDoneEvent: a worker's control reader has ended, with the final
// snapshot the worker sent, if any.
type ctlDoneEvent struct {
	w     *worker
	final []*dto.MetricFamily
}

// onCtlDone notes that nothing more will come from w; once w has exited
// too, its counts are retired or dropped.
func (m *master) onCtlDone(ev ctlDoneEvent) {
	w := ev.w
	w.ctlDone, w.final = true, ev.final
	delete(m.reading, w)
	if w.exited {
		w.ctl.Close()
		m.finishMetrics(w)
	}
}

// finishMetrics settles the counts of a worker that has exited and whose
// control channel is read to its end: a worker that left as asked
// (drained or quit, not killed) has its final snapshot — or, without
// one, its latest — folded into its slot, so the pool's counters never go
// down through a reload, a recycle, a scale-down or a stop; a crash, a
// hung or boot-timeout kill, drops them, as Prometheus expects of a
// crashed process.
func (m *master) finishMetrics(w *worker) {
	how := "dropped"
	if w.expected {
		how = "folded"
		m.mx.merger.Retire(w.slot, w.gen, w.final) // ErrFinished only: nothing to do
	} else {
		m.mx.merger.Drop(w.slot, w.gen)
	}
	w.final = nil
	m.emit(Event{Kind: EventMetricsSettled, Slot: w.slot, Generation: w.gen, Pid: w.proc.Pid(), Detail: how})
}

// callEvent runs f in the loop.
type callEvent struct{ f func() }

// postEmit emits e from the loop, for code that runs outside it; it never
// blocks, and drops e when the loop's queue is full or the loop has ended.
func (m *master) postEmit(e Event) {
	select {
	case m.events <- callEvent{func() { m.emit(e) }}:
	case <-m.done:
	default:
	}
}

// metricsLogger turns promhttp's gathering errors into events.
type metricsLogger struct{ m *master }

func (l metricsLogger) Println(v ...any) {
	l.m.postEmit(Event{Kind: EventMetricsError, Err: errors.New(fmt.Sprint(v...))})
}

// serveMetrics serves Options.MetricsAddr until the loop ends, or the
// master hands over to a new one.
func (m *master) serveMetrics() {
	if m.metricsLn == nil {
		return
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.mx.handler)
	mux.HandleFunc("/status", m.serveStatus)
	mux.Handle("/readyz", ReadyHandler())
	mux.Handle("/livez", LiveHandler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	m.metricsSrv = srv
	ln := m.metricsLn
	m.wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.postEmit(Event{Kind: EventMetricsError, Err: err})
		}
	})
}

// stopMetrics stops serving Options.MetricsAddr: at the loop's end, once
// every worker's counts are settled, or at a handover, after which the
// new master alone answers on the socket (two masters answering in turn
// would show Prometheus two different pools). Scrapes under way finish,
// within a second.
func (m *master) stopMetrics() {
	if srv := m.metricsSrv; srv != nil {
		m.metricsSrv = nil
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		srv.Close()
	}
	m.releaseMetrics()
}

// releaseMetrics closes the metrics socket of a master that never ran.
func (m *master) releaseMetrics() {
	m.closeMetricsUpgrade()
	if m.metricsLn != nil {
		m.metricsLn.Close()
		m.metricsFile.Close()
	}
}
