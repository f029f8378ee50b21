package prefork

// TEMPORARY: the seam of issue 9 (see worker.go in the worker branch)
// implemented on top of today's workerProc. The lead deletes this file when
// the worker branch, which moves the serving core into internal/worker,
// is merged.

import (
	"context"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"syscall"
)

// workerRole is this process when it is a worker.
type workerRole struct {
	w *workerProc

	mu      sync.Mutex
	running bool // run has started its signal handling
	quitted bool // quit was called
	ended   bool
}

// newWorkerRole reads the hand-off, takes the inherited control channel
// and listeners, and builds the serving core. cfg comes from
// Options.validate() (common validation only).
func newWorkerRole(h http.Handler, cfg *config) (*workerRole, error) {
	if markerErr != nil {
		return nil, markerErr
	}
	if mySpec.procs > 0 {
		runtime.GOMAXPROCS(mySpec.procs)
	}
	w := &workerProc{cfg: cfg, done: make(chan struct{}), failed: make(chan error, len(mySpec.fds))}
	w.log = cfg.Logger.With("slot", mySpec.slot, "gen", mySpec.gen, "pid", os.Getpid())
	if err := w.inherit(mySpec); err != nil {
		return nil, err
	}
	w.srv = w.server(h)
	w.h2 = splitHTTP2(w.srv, w.log)
	return &workerRole{w: w}, nil
}

// run serves until a stop: the master's Drain/Quit, a signal, EOF on the
// control channel, or ctx done (= graceful drain within GracefulTimeout).
func (r *workerRole) run(ctx context.Context) error {
	r.mu.Lock()
	if r.quitted {
		r.mu.Unlock()
		return nil // released by quit
	}
	r.running = true
	r.mu.Unlock()
	// Today's worker stops on signals only: ctx's end is a SIGTERM to
	// itself, which it drains on.
	stop := context.AfterFunc(ctx, func() { r.signal(syscall.SIGTERM) })
	defer stop()
	defer func() {
		r.mu.Lock()
		r.ended = true
		r.mu.Unlock()
	}()
	return r.w.run()
}

// signal sends this process sig while run catches it.
func (r *workerRole) signal(sig os.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.running || r.ended {
		return
	}
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		p.Signal(sig)
	}
}

// quit stops at once (Close semantics); safe before, during or after run.
func (r *workerRole) quit() {
	r.mu.Lock()
	was := r.quitted
	r.quitted = true
	running := r.running
	r.mu.Unlock()
	switch {
	case running:
		r.signal(syscall.SIGQUIT)
	case !was:
		r.release()
	}
}

// release closes what the worker inherited, when it never runs.
func (r *workerRole) release() {
	for _, ln := range r.w.lns {
		ln.Close()
	}
	r.w.ctl.Close()
}

// addrs are the inherited listeners' addresses.
func (r *workerRole) addrs() []net.Addr {
	out := make([]net.Addr, len(r.w.lns))
	for i, ln := range r.w.lns {
		out[i] = ln.Addr()
	}
	return out
}
