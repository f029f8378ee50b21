package prefork

import (
	"context"
	"fmt"
	"os"
	"time"
)

// workerShutdownMin is the least time WorkerShutdown's context gives it.
const workerShutdownMin = time.Second

// workerInit runs Hooks.WorkerInit, before the worker serves; ok says it
// returned nil (or there is none), so that WorkerShutdown is to run. A
// stop asked meanwhile — a stop signal, quit, Run's ctx ending — cancels
// its context and is returned once WorkerInit has returned: the worker
// then stops without serving, and an error WorkerInit returned is only
// logged. Otherwise its error is a failed boot: a quit, and the error
// for Run to return.
func (w *workerRole) workerInit(ctx context.Context, sigc <-chan os.Signal) (req *stopReq, ok bool, err error) {
	f := w.cfg.Hooks.WorkerInit
	if f == nil {
		return nil, true, nil
	}
	ictx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	asked := make(chan *stopReq, 1)
	go func() { asked <- w.watchInit(ctx, cancel, sigc, done) }()
	err = f(ictx)
	close(done)
	if req = <-asked; req != nil {
		if err != nil {
			w.log.Info("WorkerInit ended by a stop", "why", req.why, "err", err.Error())
		}
		return req, err == nil, nil
	}
	if err != nil {
		err = fmt.Errorf("prefork: WorkerInit: %w", err)
		w.log.Error("worker boot failed", "err", err.Error())
		return &stopReq{why: "WorkerInit failed"}, false, err
	}
	return nil, true, nil
}

// watchInit waits, while WorkerInit runs (until done is closed), for a
// stop; it cancels WorkerInit's context, waits for it to return, and
// returns the stop. Signals it does not take wait in sigc for the drain.
func (w *workerRole) watchInit(ctx context.Context, cancel func(), sigc <-chan os.Signal, done <-chan struct{}) *stopReq {
	var req stopReq
	for {
		select {
		case <-done:
			return nil
		case sig := <-sigc:
			r, ok := w.signalStop(sig)
			if !ok {
				continue
			}
			req = r
		case <-w.quitc:
			req = stopReq{why: "quit"}
		case <-ctx.Done():
			req = stopReq{drain: true, deadline: w.cfg.GracefulTimeout, why: "context done"}
		}
		cancel()
		<-done
		return &req
	}
}

// workerShutdown runs Hooks.WorkerShutdown once the worker has stopped
// serving (req is how, began when the stop began), and waits for it until
// it returns or its context ends: at the drain's deadline, and no sooner
// than workerShutdownMin from now.
func (w *workerRole) workerShutdown(req stopReq, began time.Time) {
	f := w.cfg.Hooks.WorkerShutdown
	if f == nil {
		return
	}
	d := workerShutdownMin
	if req.drain {
		d = max(req.deadline-time.Since(began), d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			w.log.Warn("WorkerShutdown failed", "err", err.Error())
		}
	case <-ctx.Done():
		w.log.Warn("WorkerShutdown has not returned by its deadline; the worker exits without it", "after", d.String())
	}
}
