package prefork

import (
	"cmp"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gracefork/gracefork/internal/control"
	"github.com/gracefork/gracefork/internal/metrics"
	"github.com/gracefork/gracefork/internal/workermetrics"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// metricsWriteTimeout bounds the write of one Metrics frame (up to 4 MiB,
// more than a control socket's buffer): long enough for a master that
// reads, short enough that a draining worker whose master stopped reading
// still exits.
const metricsWriteTimeout = 10 * time.Second

// workerGather is the worker's side of the master's scrapes: it answers
// each Gather with a snapshot of Options.MetricsGatherer (and of the
// library's worker metrics, with Options.WorkerMetrics), and sends a
// final one after a drain.
//
// Gathering runs on a goroutine of its own, one at a time, so that a slow
// collector never stalls the control channel (a Drain or Quit behind a
// Gather). A Gather that comes while one is being gathered is coalesced:
// only the newest waits, and is gathered afresh once the current one is
// sent; an older one that waited gets no answer of its own.
type workerGather struct {
	user    prometheus.Gatherer
	private *workermetrics.Metrics // nil without Options.WorkerMetrics
	w       *workerRole

	pending chan uint64 // the newest Gather's Seq waiting, at most one

	mu    sync.Mutex // held to send; the final snapshot is the last sent
	final bool

	warned atomic.Bool
}

func newWorkerGather(w *workerRole, cfg *config) *workerGather {
	g := &workerGather{user: cfg.MetricsGatherer, w: w, pending: make(chan uint64, 1)}
	if g.user == nil {
		g.user = prometheus.DefaultGatherer
	}
	if cfg.WorkerMetrics {
		// Read at each gather: w.core does not exist yet.
		g.private = workermetrics.New(func() int { return w.core.InFlight() }, func() int { return w.core.Conns() })
	}
	return g
}

// ask queues a Gather; it never blocks (it runs on the goroutine that
// reads the control channel). A Gather still waiting is replaced.
func (g *workerGather) ask(seq uint64) {
	for {
		select {
		case g.pending <- seq:
			return
		default:
		}
		select {
		case <-g.pending: // superseded
		default:
		}
	}
}

// loop answers the Gathers until done is closed.
func (g *workerGather) loop(done <-chan struct{}) {
	for {
		select {
		case seq := <-g.pending:
			g.send(seq, false, g.snapshot())
		case <-done:
			return
		}
	}
}

// sendFinal sends the last snapshot, after the drain: the master folds it
// into the slot's counts. Nothing is sent after it. A gatherer that takes
// longer than timeout (a collector stuck on a lock) must not keep the
// worker from exiting: the final snapshot is then not sent.
func (g *workerGather) sendFinal(timeout time.Duration) {
	snap := make(chan string, 1)
	go func() { snap <- g.snapshot() }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case payload := <-snap:
		g.send(0, true, payload)
	case <-t.C:
		g.w.log.Warn("worker sends no final metrics: gathering them took too long", "timeout", timeout)
	}
}

func (g *workerGather) send(seq uint64, final bool, payload string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.final {
		return // a live snapshot gathered before the final one: stale
	}
	g.final = final
	g.w.sendLarge(control.Message{Type: control.TypeMetrics, Seq: seq, Final: final, Payload: payload})
}

// snapshot gathers and encodes; "" when that fails, which the master reads
// as "no new snapshot". The first failure is logged as a warning, later
// ones at debug level: a scrape every few seconds must not flood the log.
func (g *workerGather) snapshot() string {
	fams, err := g.gather()
	var b []byte
	if err == nil {
		b, err = metrics.Encode(fams)
	}
	if err != nil {
		if g.warned.CompareAndSwap(false, true) {
			g.w.log.Warn("worker sends no metrics", "err", err.Error(), "next", "logged at debug level")
		} else {
			g.w.log.Debug("worker sends no metrics", "err", err.Error())
		}
		return ""
	}
	return string(b)
}

// gather is the user's families and the library's. The default registry
// has its own Go and process collectors: a family the user's gatherer
// has already is the user's, where prometheus.Gatherers would fail the
// whole gather on the duplicate series.
func (g *workerGather) gather() ([]*dto.MetricFamily, error) {
	fams, err := g.user.Gather()
	if err != nil || g.private == nil {
		return fams, err
	}
	own, err := g.private.Gatherer().Gather()
	if err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(fams))
	for _, f := range fams {
		have[f.GetName()] = true
	}
	for _, f := range own {
		if !have[f.GetName()] {
			fams = append(fams, f)
		}
	}
	slices.SortFunc(fams, func(a, b *dto.MetricFamily) int { return cmp.Compare(a.GetName(), b.GetName()) })
	return fams, nil
}

// sendLarge sends a message of up to 4 MiB. A frame cut short (the write
// deadline passed with part of it written) leaves the channel out of
// step: the worker then closes it, which the master reads as a broken
// channel, and drains as when the master is gone.
func (w *workerRole) sendLarge(msg control.Message) {
	b, err := control.Append(nil, msg)
	if err != nil {
		w.log.Error("worker cannot send", "type", msg.Type.String(), "err", err.Error())
		return
	}
	w.ctlMu.Lock()
	defer w.ctlMu.Unlock()
	w.ctl.SetWriteDeadline(time.Now().Add(metricsWriteTimeout))
	n, err := w.ctl.Write(b)
	if err != nil && n > 0 && n < len(b) && !errors.Is(err, net.ErrClosed) {
		w.log.Error("worker control channel broken: a message was cut short", "type", msg.Type.String(),
			"sent", n, "of", len(b), "err", err.Error())
		w.ctl.Close()
	}
}
