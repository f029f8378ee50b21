package prefork

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"

	"github.com/gracefork/gracefork/signals"
)

// Serve runs h in N worker processes of this binary that share the
// listening sockets, supervised by this process, the master.
//
// The same program runs in every process: Serve looks for the worker marker
// in the environment ([IsWorker]). Without it, this process is the master:
// it validates opts, binds every address, starts the workers, restarts the
// ones that crash, and acts on signals (see package signals) until it is
// told to stop. With it, Serve serves h on the inherited sockets until the
// master tells it to drain, or the master dies.
//
// In both roles Serve returns nil after a graceful shutdown, so write
//
//	if err := prefork.Serve(h, opts); err != nil {
//		log.Fatal(err)
//	}
//
// Serve is New followed by Run with a background context. Invalid options
// return an *OptionError before anything is started; repeated boot
// failures a *BootError. With Options.SingleProcess, GRACEFORK_SINGLE_PROCESS=1,
// or on Windows, Serve serves h in this process alone (see the package
// documentation's "Single-process mode").
func Serve(h http.Handler, opts Options) error {
	s, err := New(h, opts)
	if err != nil {
		return err
	}
	return s.Run(context.Background())
}

// Server is this process's part in a prefork service: the master, or one
// of its workers. [New] makes it in either role, so that a program that
// drives the service from Go — reload and wait, scale, shut down with a
// deadline — is written once; the master-only methods return
// [ErrNotMaster] in a worker.
//
// The methods that report an outcome (Reload, Upgrade, Shutdown) wait for
// it, or for their ctx: a ctx that ends first makes them return ctx.Err(),
// and does not cancel the action, which goes on in the master. None of
// them may be called from Options.OnEvent, which runs in the master's loop
// that decides the outcome.
type Server struct {
	m *master     // the master role, or nil
	w *workerRole // the worker role, or nil

	mu       sync.Mutex
	state    serverState
	cancel   context.CancelFunc // ends a worker's Run (a graceful drain)
	finished chan struct{}      // closed when Run has returned, or the Server was closed unrun
}

type serverState int

const (
	stateNew     serverState = iota // made by New, not run yet
	stateRunning                    // Run was called
	stateClosed                     // closed before Run: its sockets are released
)

// New makes this process's Server. In the master (no worker marker in the
// environment) it validates opts and binds every address — or takes them
// over from an old master during an upgrade, or from systemd's socket
// activation — and starts no process: Run does. In a worker it validates
// the options a worker uses and takes the sockets and the control channel
// the master handed down. The workers serve h (nil: http.DefaultServeMux,
// as in net/http); the master never calls it. Errors name the offending
// field and value. In single-process mode (Options.SingleProcess,
// SingleProcessEnv, Windows) it binds every address and makes a Server
// that serves h in this process, with no master and no workers.
//
// New is where an old master that upgraded in a terminal becomes the
// waiter that keeps its pid for the shell (see terminal.go): in that
// process — the old master re-executed with a private variable set — New
// does not return, and what the program does before New it does again.
func New(h http.Handler, opts Options) (*Server, error) {
	runTerminalWaiter() // does not return in the waiter
	if IsWorker() {
		if _, err := takeHandoff(); err != nil {
			return nil, err // a leaked marker, explained before any option error
		}
	}
	alone, err := chooseSingle(opts, os.Getenv)
	if err != nil {
		return nil, err
	}
	cfg, err := opts.validate()
	if err != nil {
		if !IsWorker() {
			reportToParent(err)
		}
		return nil, err
	}
	s := &Server{finished: make(chan struct{})}
	switch {
	case IsWorker():
		s.w, err = newWorkerRole(h, cfg)
	case alone:
		s.w, err = newSingleRole(h, cfg)
	default:
		s.m, err = newMasterRole(cfg)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// newMasterRole runs the master-only validation and makes the master.
func newMasterRole(cfg *config) (*master, error) {
	if err := cfg.validateMaster(); err != nil {
		reportToParent(err)
		return nil, err
	}
	return newMaster(cfg)
}

// IsMaster reports whether s is the master, rather than a worker or a
// single process.
func (s *Server) IsMaster() bool { return s.m != nil }

// IsSingleProcess reports whether s serves alone, in single-process mode
// (Options.SingleProcess, SingleProcessEnv, or Windows).
func (s *Server) IsSingleProcess() bool { return s.w != nil && s.w.single != nil }

// notMaster is the error of a master-only method called elsewhere.
func (s *Server) notMaster() error {
	if s.IsSingleProcess() {
		return ErrSingleProcess
	}
	return ErrNotMaster
}

// Run is the process's work. In the master it starts the workers and
// supervises them until a shutdown — a signal, Shutdown, Close, or ctx
// ending, which is a graceful shutdown — then returns nil, or a *BootError
// when workers kept failing to boot. It catches the signals of
// Options.Signals while it runs. In a worker it serves until the master
// says stop, or ctx ends (a graceful drain), and returns nil after a clean
// stop. Run may be called once; after Close or Shutdown of a Server that
// never ran, it returns ErrServerClosed.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	switch s.state {
	case stateClosed:
		s.mu.Unlock()
		return ErrServerClosed
	case stateRunning:
		s.mu.Unlock()
		return errors.New("prefork: Server.Run called twice")
	}
	s.state = stateRunning
	ctx, s.cancel = context.WithCancel(ctx)
	s.mu.Unlock()
	defer close(s.finished)
	defer s.cancel()
	if s.m != nil {
		return s.m.run(ctx)
	}
	return s.w.run(ctx)
}

// closeUnrun releases a Server that never ran and reports true, or
// reports false if Run was called.
func (s *Server) closeUnrun() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stateRunning:
		return false
	case stateNew:
		s.state = stateClosed
		if s.m != nil {
			s.m.release()
		} else {
			s.w.quit()
		}
		close(s.finished)
	}
	return true
}

// Shutdown stops gracefully, as http.Server.Shutdown does: the master
// drains every worker within GracefulTimeout, and Shutdown returns once
// every worker is gone and Run has returned — or returns ctx.Err() if ctx
// ends first, while the shutdown goes on. In a worker it drains this
// worker. A Server that never ran releases its sockets at once.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.closeUnrun() {
		if s.m != nil {
			s.m.do(request{a: signals.Shutdown})
		} else {
			s.cancel()
		}
	}
	select {
	case <-s.finished:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops at once and does not wait: the master quits every worker
// (their in-flight requests are cut) and Run returns once they have gone;
// a worker stops serving. A Server that never ran releases its sockets
// (unix socket files included) before Close returns, so that the address
// can be bound again.
func (s *Server) Close() error {
	if s.closeUnrun() {
		return nil
	}
	if s.m != nil {
		s.m.do(request{a: signals.Quit})
	} else {
		s.w.quit()
	}
	return nil
}

// Reload replaces every worker with one started from the binary on disk,
// as SIGHUP does, and returns once the rolling reload has finished: nil
// when every slot has a new worker that is ready, the *BootError of the
// new worker that failed (the old workers serve on), or ErrServerClosed
// if the master stopped first. A Reload asked during a reload waits for
// the further pass that covers it (reloads coalesce into one more pass).
// Before Run, the reload waits for Run to start.
func (s *Server) Reload(ctx context.Context) error {
	return s.ask(ctx, request{a: signals.Reload})
}

// Upgrade starts the binary on disk as a new master that inherits the
// sockets, as SIGUSR2 does, and returns nil once the new master and its
// workers are ready and took over (this master then drains and Run
// returns); otherwise an error wrapping ErrUpgradeRefused when an upgrade
// cannot start now (the error says why), or why the new master failed —
// this master serves on in both cases.
func (s *Server) Upgrade(ctx context.Context) error {
	return s.ask(ctx, request{a: signals.Upgrade})
}

// Scale sets the number of workers to n, from 0 to MaxWorkers: workers
// start or drain (the highest slots first) at once, without waiting for
// them. 0 stops every worker but keeps the master and its sockets, as
// StopWorkers does; a Reload or a Scale brings them back. It returns an
// *OptionError for an n out of range, ErrServerClosed if the master has
// stopped, and, with Options.ReusePort, an error while an upgrade is in
// progress (two masters then share the slot sockets).
func (s *Server) Scale(n int) error {
	if s.m == nil {
		return s.notMaster()
	}
	if n < 0 || n > MaxWorkers {
		return &OptionError{Field: "Workers", Value: n, Reason: "Scale takes 0 to 1024 (MaxWorkers)"}
	}
	return s.m.do(request{scale: true, n: n})
}

// ReopenLogs reopens Options.LogFile, as SIGUSR1 does, without waiting.
func (s *Server) ReopenLogs() error {
	if s.m == nil {
		return s.notMaster()
	}
	return s.m.do(request{a: signals.ReopenLogs})
}

// ask queues a request for its outcome and waits for it.
func (s *Server) ask(ctx context.Context, r request) error {
	if s.m == nil {
		return s.notMaster()
	}
	r.reply = make(chan error, 1)
	if err := s.m.do(r); err != nil {
		return err
	}
	select {
	case err := <-r.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Addrs returns the listening addresses, in Options order (Addr first); a
// ":0" address shows the port the kernel picked.
func (s *Server) Addrs() []net.Addr {
	if s.w != nil {
		return s.w.addrs()
	}
	out := make([]net.Addr, len(s.m.lns))
	for i, ln := range s.m.lns {
		out[i] = ln.Addr()
	}
	return out
}
