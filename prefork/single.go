package prefork

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gracefork/gracefork/internal/sdnotify"
	"github.com/gracefork/gracefork/internal/sockets"
	"github.com/gracefork/gracefork/recycle"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ErrSingleProcess is returned by the master-only methods (Reload, Upgrade,
// Scale, ReopenLogs) in single-process mode: there are no workers to
// replace, and the orchestrator restarts the process instead.
var ErrSingleProcess = errors.New("prefork: single-process mode: no workers to reload, upgrade or scale; restart the process instead")

// chooseSingle says whether this process serves alone: Options.SingleProcess,
// the environment variable SingleProcessEnv, or a platform without the
// multi-process mode. A value of the variable that is neither true nor false
// is an error naming it.
func chooseSingle(o Options, getenv func(string) string) (bool, error) {
	if supported() != nil {
		return true, nil
	}
	if o.SingleProcess {
		return true, nil
	}
	v := strings.TrimSpace(getenv(SingleProcessEnv))
	if v == "" {
		return false, nil
	}
	on, err := strconv.ParseBool(strings.ToLower(v))
	if err != nil {
		return false, &OptionError{Field: SingleProcessEnv, Value: phrase(strconv.Quote(v)), Reason: "must be 1, true, 0 or false", env: true}
	}
	return on, nil
}

// single is what the worker role needs when it serves alone: no master
// feeds it, so it binds, watches its own recycling limits, serves its own
// metrics and readiness, and tells systemd itself.
type single struct {
	metricsLn net.Listener // MetricsAddr, or nil
	metrics   *http.Server
	notify    *sdnotify.Notifier
	tracker   *recycle.Tracker
	started   time.Time
	recycled  chan recycle.Due // a limit was reached (buffered: the first one counts)
	endReaper func()           // see startSingleReaper
}

// validateSingle checks what the single-process mode uses of the master's
// options: recycling, the metrics address, the PID file.
func (c *config) validateSingle() error {
	if err := c.checkPIDFileDir(); err != nil {
		return err
	}
	if c.PIDFile != "" {
		if err := checkPIDFile(c.PIDFile); err != nil {
			return &OptionError{Field: "PIDFile", Value: c.PIDFile, Reason: err.Error()}
		}
	}
	if err := c.checkRecycle(); err != nil {
		return err
	}
	if c.ReloadOnChange || len(c.ReloadWatch) > 0 {
		return &OptionError{Field: "ReloadOnChange", Value: true, Reason: "needs the multi-process mode: a single process has no workers to reload"}
	}
	return c.parseMetricsAddr()
}

// newSingleRole binds every address and builds the serving core for a
// process that serves alone.
func newSingleRole(h http.Handler, cfg *config) (*workerRole, error) {
	if err := cfg.validateSingle(); err != nil {
		return nil, err
	}
	w := &workerRole{cfg: cfg, done: make(chan struct{}), quitc: make(chan struct{})}
	w.log = cfg.Logger.With("pid", os.Getpid())
	w.single = &single{recycled: make(chan recycle.Due, 1)}
	var err error
	if w.single.notify, err = sdnotify.FromEnv(os.Getenv); err != nil {
		return nil, fmt.Errorf("prefork: %w", err)
	}
	lns, err := w.bindSingle()
	if err != nil {
		return nil, err
	}
	if err := w.build(h, lns); err != nil {
		for _, ln := range lns {
			ln.Close()
		}
		if w.single.metricsLn != nil {
			w.single.metricsLn.Close()
		}
		return nil, err
	}
	return w, nil
}

// bindSingle binds every address, the metrics one included: a socket
// systemd passed (socket activation) is taken as the master takes it,
// the others are bound here. On an error the sockets bound so far are
// closed, and the error names the option.
func (w *workerRole) bindSingle() (lns []net.Listener, err error) {
	acts, err := sockets.Activation(os.Getenv, os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("prefork: socket activation: %w", err)
	}
	if err := w.cfg.checkPassed(acts); err != nil {
		return nil, err
	}
	defer func() {
		for _, act := range acts {
			if act.Listener != nil {
				if err == nil {
					w.log.Warn("a socket systemd passed matches no address: closed", "addr", act.Listener.Addr().String(), "name", act.Name)
				}
				act.Listener.Close()
			}
		}
		if err != nil {
			for _, ln := range lns {
				ln.Close()
			}
		}
	}()
	for i, a := range w.cfg.addrs {
		ln, err := bindOne(a, acts, w.cfg.perms[i])
		if err != nil {
			return lns, &OptionError{Field: w.cfg.fields[i], Value: a.String(), Reason: err.Error(), Err: err}
		}
		lns = append(lns, ln)
		w.log.Info("listening", "addr", listenAddr(ln))
	}
	if a := w.cfg.metricsAddr; a.Network != "" {
		ln, err := bindOne(a, acts, sockets.NoPerm)
		if err != nil {
			return lns, &OptionError{Field: "MetricsAddr", Value: w.cfg.MetricsAddr, Reason: err.Error(), Err: err}
		}
		w.single.metricsLn = ln
	}
	return lns, nil
}

// bindOne takes systemd's socket for a, or the parent's, or binds one
// with the file permissions p.
func bindOne(a sockets.Addr, acts []sockets.Activated, p sockets.Perm) (net.Listener, error) {
	if a.Network == "fd" {
		return sockets.OpenFD(a)
	}
	for i := range acts {
		if ln := acts[i].Listener; ln != nil && acts[i].Match(a) {
			acts[i].Listener = nil // taken; never unlinked: it is systemd's
			return ln, nil
		}
	}
	if a.Network == "unix" {
		if err := sockets.RemoveStale(a.Address); err != nil {
			return nil, err
		}
	}
	// A unix socket bound here is unlinked when the drain closes it.
	return sockets.Listen(a, p)
}

// startSingle is the single process's part once it serves: readiness,
// systemd, the PID file, the metrics address, the recycling limits.
func (w *workerRole) startSingle() {
	s := w.single
	setPoolReady(true, "")
	setServing(true)
	s.started = time.Now()
	s.endReaper = w.startSingleReaper()
	if s.metricsLn != nil {
		s.metrics = &http.Server{Handler: w.singleMetricsMux(), ReadHeaderTimeout: 10 * time.Second}
		go s.metrics.Serve(s.metricsLn)
	}
	if f := w.cfg.PIDFile; f != "" {
		if err := writePIDFile(f); err != nil {
			w.log.Error("cannot write the PID file", "file", f, "err", err.Error())
		}
	}
	if err := s.notify.Send(sdnotify.Ready()); err != nil {
		w.log.Warn("cannot notify systemd", "err", err.Error())
	}
	if w.cfg.Recycle.Enabled() {
		s.tracker = w.cfg.Recycle.Track()
		if n := s.tracker.Limits().Requests; n > 0 {
			w.core.NotifyAt(n, func() { w.checkRecycle() })
		}
		w.wg.Go(w.watchRecycle)
	}
	w.log.Info("serving in single-process mode")
}

// singleMetricsMux serves, at MetricsAddr, this process's metrics and its
// probes.
func (w *workerRole) singleMetricsMux() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", w.singleMetricsHandler())
	mux.Handle("/readyz", ReadyHandler())
	mux.Handle("/livez", LiveHandler())
	return mux
}

// singleMetricsHandler serves this process's metrics.
func (w *workerRole) singleMetricsHandler() http.Handler {
	return promhttp.HandlerFor(prometheus.GathererFunc(w.gath.gather), promhttp.HandlerOpts{})
}

// watchRecycle checks the age and memory limits once a second (the request
// limit is checked as each request ends, see startSingle).
func (w *workerRole) watchRecycle() {
	t := time.NewTicker(heartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			w.checkRecycle()
		case <-w.done:
			return
		}
	}
}

// checkRecycle posts the first limit reached. The tracker is read by the
// ticker's goroutine and the request-limit notice's; Check is cheap, so
// one lock serves both.
func (w *workerRole) checkRecycle() {
	w.ctlMu.Lock()
	due, ok := w.single.tracker.Check(recycle.Usage{Requests: w.core.Requests(), Age: time.Since(w.single.started), RSS: readRSS()})
	w.ctlMu.Unlock()
	if ok {
		select {
		case w.single.recycled <- due:
		default:
		}
	}
}

// shutdownDelay, in single-process mode, begins a stop: readiness fails at
// once, and a graceful stop serves on as before for ShutdownDelay, so that
// the orchestrator takes the process out of its endpoints before the drain
// sends clients away. A quit during the delay cuts it short; req becomes
// the quit. A process that never served (stopped during WorkerInit) has
// nobody to keep serving: it does not wait.
func (w *workerRole) shutdownDelay(req *stopReq, sigc <-chan os.Signal, stops <-chan stopReq, served bool) {
	setStopping(req.why)
	if err := w.single.notify.Send(sdnotify.Stopping()); err != nil {
		w.log.Warn("cannot notify systemd", "err", err.Error())
	}
	d := w.cfg.ShutdownDelay
	if !req.drain || d <= 0 || !served {
		return
	}
	w.log.Info("stopping: readiness fails, serving on for the shutdown delay", "why", req.why, "delay", d.String())
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return
		case sig := <-sigc:
			if r := stopFor(sig, w.cfg.GracefulTimeout); !r.drain {
				*req = r
				return
			}
		case r := <-stops:
			if !r.drain {
				*req = r
				return
			}
		case <-w.quitc:
			*req = stopReq{why: "quit"}
			return
		}
	}
}

// endSingle, after the drain, stops the metrics server and removes the PID
// file.
func (w *workerRole) endSingle() {
	s := w.single
	setServing(false)
	if s.endReaper != nil {
		s.endReaper()
	}
	if s.metrics != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		s.metrics.Shutdown(ctx)
		cancel()
	} else if s.metricsLn != nil {
		s.metricsLn.Close()
	}
	if f := w.cfg.PIDFile; f != "" {
		removePIDFile(f)
	}
}
