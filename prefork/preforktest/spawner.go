package preforktest

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gracefork/gracefork/internal/control"
	"github.com/gracefork/gracefork/prefork"
)

// Patience bounds every wait in this package. It is a safety net that
// turns a hung test into a failure, never a way to let time pass.
var Patience = 30 * time.Second

// Spawner is a prefork.Spawner whose workers are [Worker] values driven by
// the test. The zero value is not usable; call NewSpawner.
type Spawner struct {
	spawned chan *Worker
	mu      sync.Mutex
	fail    []error
	pid     int
}

var _ prefork.Spawner = (*Spawner)(nil)

// NewSpawner returns a Spawner with no workers.
func NewSpawner() *Spawner {
	return &Spawner{spawned: make(chan *Worker, 1024), pid: 100000}
}

// FailNext makes the next Spawn return err instead of a worker.
func (s *Spawner) FailNext(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = append(s.fail, err)
}

// Spawn implements prefork.Spawner.
func (s *Spawner) Spawn(spec prefork.WorkerSpec) (prefork.Process, error) {
	s.mu.Lock()
	if len(s.fail) > 0 {
		err := s.fail[0]
		s.fail = s.fail[1:]
		s.mu.Unlock()
		return nil, err
	}
	s.pid++
	pid := s.pid
	s.mu.Unlock()
	conn, err := net.FileConn(spec.Control)
	if err != nil {
		return nil, err
	}
	w := &Worker{
		Slot: spec.Slot, Generation: spec.Generation, Env: spec.Env, Listeners: len(spec.Listeners),
		pid: pid, conn: conn, told: make(chan control.Message, 16), closeAsked: make(chan struct{}, 16), limit: make(chan uint64, 16), gather: make(chan uint64, 1024), readiness: make(chan Readiness, 1024), pool: make(chan Pool, 1024),
		exited: make(chan struct{}), signals: make(chan os.Signal, 16),
	}
	go w.read()
	s.spawned <- w
	return w, nil
}

// Next waits for the master's next spawn and returns the worker.
func (s *Spawner) Next(t testing.TB) *Worker {
	t.Helper()
	select {
	case w := <-s.spawned:
		return w
	case <-time.After(Patience):
		t.Fatalf("preforktest: no worker spawned within %v", Patience)
		return nil
	}
}

// Worker is a fake worker process. It implements prefork.Process.
type Worker struct {
	Slot, Generation int      // as the master numbered it (prefork.WorkerStatus)
	Env              []string // the environment the master gave it
	Listeners        int      // how many sockets the worker was handed

	pid     int
	conn    net.Conn
	told    chan control.Message
	signals chan os.Signal
	// CloseListeners: asked, and whether the worker leaves the answer to
	// the test.
	closeAsked chan struct{}
	holdClose  atomic.Bool
	limit      chan uint64 // RequestLimit messages
	gather     chan uint64 // Gather messages' scrape numbers
	readiness  chan Readiness
	pool       chan Pool
	pools      atomic.Int64 // Pool messages received (PoolsTold)
	once       sync.Once
	exited     chan struct{}
	exit       prefork.Exit
}

var _ prefork.Process = (*Worker)(nil)

// Pid returns the worker's fake pid.
func (w *Worker) Pid() int { return w.pid }

// Signal records sig; SIGKILL ends the worker as the kernel would.
func (w *Worker) Signal(sig os.Signal) error {
	select {
	case w.signals <- sig:
	default:
	}
	if sig == syscall.SIGKILL {
		w.end(prefork.Exit{Code: -1, Signal: syscall.SIGKILL})
	}
	return nil
}

// Wait implements prefork.Process.
func (w *Worker) Wait() prefork.Exit {
	<-w.exited
	return w.exit
}

// Ready tells the master the worker serves.
func (w *Worker) Ready() error { return w.send(control.Message{Type: control.TypeReady}) }

// Heartbeat reports the worker's counters.
func (w *Worker) Heartbeat(requests uint64, active uint32) error {
	return w.send(control.Message{Type: control.TypeHeartbeat, Requests: requests, Active: active})
}

// Usage is what a heartbeat reports.
type Usage struct {
	Requests uint64 // served so far
	Active   uint32 // connections open now
	InFlight uint32 // handlers running now
	RSS      uint64 // resident set size, bytes
}

// Report sends a heartbeat with every counter.
func (w *Worker) Report(u Usage) error {
	return w.send(control.Message{Type: control.TypeHeartbeat, Requests: u.Requests, Active: u.Active, InFlight: u.InFlight, RSS: u.RSS})
}

// RetireRunaway asks the master to recycle the worker, as a worker does
// whose handler ran for d past the request timeout and its grace.
func (w *Worker) RetireRunaway(d time.Duration) error {
	return w.send(control.Message{Type: control.TypeRetire, Reason: control.RetireRunaway, Value: uint64(d)})
}

// Fail tells the master why the worker is about to exit, as a worker
// whose WorkerInit hook failed does before Exit: the exit's
// prefork.Exit.Failure, and a boot failure's error, quote reason.
func (w *Worker) Fail(reason string) error {
	return w.send(control.Message{Type: control.TypeFailed, Payload: reason})
}

// SendRaw writes bytes as they are to the control channel, to test how the
// master treats a worker that breaks the protocol.
func (w *Worker) SendRaw(b []byte) error {
	_, err := w.conn.Write(b)
	return err
}

func (w *Worker) send(m control.Message) error { return control.Write(w.conn, m) }

// Exit ends the worker with the status code, as if it had written the
// stderr lines last.
func (w *Worker) Exit(code int, stderr ...string) {
	w.end(prefork.Exit{Code: code, Stderr: stderr})
}

// Exited reports whether the worker has ended.
func (w *Worker) Exited() bool {
	select {
	case <-w.exited:
		return true
	default:
		return false
	}
}

func (w *Worker) end(e prefork.Exit) {
	w.once.Do(func() {
		w.exit = e
		w.conn.Close()
		close(w.exited)
	})
}

// HoldListeners makes the worker leave its answer to the master's
// CloseListeners (the first phase of a stop) to the test: it answers when
// the test calls ListenersClosed, or never, as a stalled worker. Without
// it the worker answers at once.
func (w *Worker) HoldListeners() { w.holdClose.Store(true) }

// ListenersClosed tells the master the worker has closed its listeners.
func (w *Worker) ListenersClosed() error {
	return w.send(control.Message{Type: control.TypeListenersClosed})
}

// WaitCloseListeners waits until the master tells the worker to close its
// listeners.
func (w *Worker) WaitCloseListeners(t testing.TB) {
	t.Helper()
	await(t, w, w.closeAsked, "was not told to close its listeners")
}

// await returns the next value from c, or fails the test after Patience,
// saying that the worker what.
func await[T any](t testing.TB, w *Worker, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(Patience):
		t.Fatalf("preforktest: worker slot %d gen %d %s within %v", w.Slot, w.Generation, what, Patience)
		var zero T
		return zero
	}
}

// Stop is what the master told a worker: drain within Deadline, or quit.
type Stop struct {
	Drain    bool          // drain (graceful), not quit
	Deadline time.Duration // the time allowed for the drain
}

// WaitStop waits until the master tells the worker to drain or quit.
// CloseListeners, which comes first in a final stop, is not a stop.
func (w *Worker) WaitStop(t testing.TB) Stop {
	t.Helper()
	select {
	case m, ok := <-w.told:
		if !ok {
			t.Fatalf("preforktest: worker slot %d gen %d: control channel closed before a stop", w.Slot, w.Generation)
		}
		return Stop{Drain: m.Type == control.TypeDrain, Deadline: m.Deadline}
	case <-time.After(Patience):
		t.Fatalf("preforktest: worker slot %d gen %d was not told to stop within %v", w.Slot, w.Generation, Patience)
		return Stop{}
	}
}

// WaitRequestLimit waits until the master tells the worker its request
// limit for recycling, and returns it.
func (w *Worker) WaitRequestLimit(t testing.TB) uint64 {
	t.Helper()
	return await(t, w, w.limit, "was told no request limit")
}

// WaitGather waits until the master asks the worker for a metrics
// snapshot, and returns the scrape's number, for Metrics.
func (w *Worker) WaitGather(t testing.TB) uint64 {
	t.Helper()
	return await(t, w, w.gather, "was not asked for metrics")
}

// Metrics answers the scrape numbered seq with a snapshot: metric
// families encoded as a worker encodes its registry's (see
// internal/metrics.Encode; the master rejects anything else).
func (w *Worker) Metrics(seq uint64, snapshot []byte) error {
	return w.send(control.Message{Type: control.TypeMetrics, Seq: seq, Payload: string(snapshot)})
}

// FinalMetrics sends the snapshot a draining worker sends after its last
// request, before it exits.
func (w *Worker) FinalMetrics(snapshot []byte) error {
	return w.send(control.Message{Type: control.TypeMetrics, Final: true, Payload: string(snapshot)})
}

// Readiness is what the master told a worker of the pool's readiness.
type Readiness struct {
	Ready    bool // the pool serves as /readyz should say
	Stopping bool // not ready because the master is stopping
}

// WaitReadiness waits for the next Readiness message the master sends the
// worker, and returns it.
func (w *Worker) WaitReadiness(t testing.TB) Readiness {
	t.Helper()
	return await(t, w, w.readiness, "was told nothing of the pool's readiness")
}

// Pool is what the master told a worker of the pool, for balancing.
type Pool struct {
	Conns    int // open connections across the pool
	InFlight int // handlers running across the pool
	Workers  int // serving workers
	Fewest   int // the fewest connections one serving worker holds
}

// WaitPool waits for the next Pool message the master sends the worker (in
// answer to its heartbeat), and returns it.
func (w *Worker) WaitPool(t testing.TB) Pool {
	t.Helper()
	return await(t, w, w.pool, "was told nothing of the pool")
}

// PoolsTold is how many Pool messages the worker has received. Messages
// arrive in the order the master sent them: once WaitStop has returned,
// it counts every Pool sent before the stop.
func (w *Worker) PoolsTold() int { return int(w.pools.Load()) }

// WaitSignal waits until the master signals the worker.
func (w *Worker) WaitSignal(t testing.TB) os.Signal {
	t.Helper()
	return await(t, w, w.signals, "got no signal")
}

func (w *Worker) read() {
	defer close(w.told)
	for {
		m, err := control.Read(w.conn)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				w.Exit(0) // the master closed the channel: it is gone
			}
			return
		}
		if m.Type == control.TypeGather {
			select {
			case w.gather <- m.Seq:
			default: // a test that never looks: the master must not care
			}
			continue
		}
		if m.Type == control.TypePool {
			w.pools.Add(1)
			select {
			case w.pool <- Pool{Conns: int(m.Active), InFlight: int(m.InFlight), Workers: int(m.Workers), Fewest: int(m.Fewest)}:
			default: // a test that never looks: the master must not care
			}
			continue
		}
		if m.Type == control.TypeReadiness {
			select {
			case w.readiness <- Readiness{Ready: m.Ready, Stopping: m.Reason == control.NotReadyStopping}:
			default: // a test that never looks: the master must not care
			}
			continue
		}
		if m.Type == control.TypeRequestLimit {
			w.limit <- m.Requests
			continue
		}
		if m.Type == control.TypeCloseListeners {
			select {
			case w.closeAsked <- struct{}{}:
			default:
			}
			if !w.holdClose.Load() {
				w.ListenersClosed()
			}
			continue
		}
		w.told <- m
	}
}
