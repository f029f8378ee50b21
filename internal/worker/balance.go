package worker

import (
	"net/http"
	"sync/atomic"
	"time"
)

// Balancing the pool's keep-alive connections across workers that accept
// from one shared socket. Linux wakes the most recent waiter on a shared
// accept queue, so the worker that has just accepted tends to accept again,
// and with keep-alive a connection then stays with it: one worker of two
// served 99 % of a 16-connection load. Two measures, both off until the
// master tells the worker the pool's totals (SetPool) and both only with two
// workers or more:
//
//   - a worker holding more than its share of the pool's connections, or
//     its fair share while another worker holds fewer, holds back from
//     Accept — a moment at a time, up to holdbackMax — so that the others
//     take the new connections: the one with the fewest first;
//   - it answers a kept-alive client, once per connection over its share,
//     with "Connection: close": the client reconnects, and since this worker
//     holds back, the connection lands on another. A client is never cut:
//     it is told, with a whole answer, as a drain tells it.
const (
	holdbackStep = 5 * time.Millisecond
	holdbackMax  = 50 * time.Millisecond
)

// pool is what the master last said of the pool.
type pool struct {
	conns   atomic.Int64 // open connections across the pool
	workers atomic.Int64 // workers serving
	fewest  atomic.Int64 // the fewest connections a serving worker holds
	shed    atomic.Int64 // connections this worker still sends away
}

// SetPool records the pool's totals: its open connections, its serving
// workers, and the fewest connections one of them holds. The worker then
// keeps within its share (see balance.go), and sends away now the
// connections it holds beyond it.
func (w *Worker) SetPool(conns, workers, fewest int) {
	w.pool.conns.Store(int64(conns))
	w.pool.workers.Store(int64(workers))
	w.pool.fewest.Store(int64(fewest))
	w.pool.shed.Store(int64(max(w.Conns()-w.shareLimit(), 0)))
	if w.overShare() {
		for _, l := range w.accepts {
			l.kick() // an Accept that waits would take the next connection
		}
	}
}

// shareLimit is the most connections this worker should hold: its fair
// share of the pool's (rounded up), plus a tenth for slack — none below
// ten, where one connection more is already a fifth over (4 connections
// over 4 workers: one each). With fewer than two workers, or before the
// master has said, there is no limit.
func (w *Worker) shareLimit() int {
	n, c := w.pool.workers.Load(), w.pool.conns.Load()
	if n < 2 || c == 0 {
		return int(^uint(0) >> 1)
	}
	fair := (c + n - 1) / n
	return int(fair + fair/10)
}

// overShare reports whether this worker holds more than its share, or
// holds its fair share while another worker holds fewer connections:
// then that one should take the next. Alone, or before the master has
// said, never.
func (w *Worker) overShare() bool {
	c, limit := w.Conns(), w.shareLimit()
	if c > limit {
		return true
	}
	n := w.pool.workers.Load()
	if n < 2 {
		return false
	}
	fair := (w.pool.conns.Load() + n - 1) / n
	return int64(c) >= fair && int64(c) > w.pool.fewest.Load()
}

// holdBack, called before each Accept, waits while this worker holds more
// than its share, at most holdbackMax, and reports whether it still does:
// the Accept then takes only a connection no other worker took
// (acceptSignal). A queued connection waits holdbackMax at most, whatever
// the totals say.
func (w *Worker) holdBack() bool {
	for waited := time.Duration(0); waited < holdbackMax; waited += holdbackStep {
		if w.draining.Load() || !w.overShare() {
			return false
		}
		time.Sleep(holdbackStep)
	}
	return !w.draining.Load() && w.overShare()
}

// shedOne tells one kept-alive client over this worker's share to
// reconnect; one atomic load a request otherwise.
func (w *Worker) shedOne(rw http.ResponseWriter) {
	for {
		n := w.pool.shed.Load()
		if n <= 0 {
			return
		}
		if w.pool.shed.CompareAndSwap(n, n-1) {
			rw.Header().Set("Connection", "close")
			return
		}
	}
}
