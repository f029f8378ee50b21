package prefork

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// SingleProcessEnv is the environment variable that, set to 1 or true,
// chooses the single-process mode as Options.SingleProcess does.
const SingleProcessEnv = "GRACEFORK_SINGLE_PROCESS"

// health is this process's readiness, as ReadyHandler reports it. Every
// role sets it: a worker (serving, and the pool's readiness as the master
// tells it), the single-process server (serving, its pool is itself), and
// the master (its pool; served on MetricsAddr).
var health = struct {
	sync.Mutex
	serving  bool   // this process serves (a worker or single process) or supervises a pool that does (master)
	pool     bool   // the pool has every worker ready and is not degraded; true where there is no pool
	stopping string // why a stop began, or ""; never cleared: a stopping process does not come back
	poolWhy  string // why the pool is not ready, when it is not
}{}

// setServing records that this process serves (or no longer does).
func setServing(ok bool) {
	health.Lock()
	health.serving = ok
	health.Unlock()
}

// setPoolReady records the pool's readiness, and why it is not ready.
func setPoolReady(ok bool, why string) {
	health.Lock()
	health.pool, health.poolWhy = ok, why
	health.Unlock()
}

// setStopping records that a stop began: readiness fails from now on.
func setStopping(why string) {
	health.Lock()
	if health.stopping == "" {
		health.stopping = why
	}
	health.Unlock()
}

// readiness says whether this process is ready, and if not why.
func readiness() (bool, string) {
	health.Lock()
	defer health.Unlock()
	switch {
	case health.stopping != "":
		return false, "stopping: " + health.stopping
	case !health.serving:
		return false, "not serving yet"
	case !health.pool:
		if health.poolWhy != "" {
			return false, health.poolWhy
		}
		return false, "pool not ready"
	}
	return true, ""
}

// ReadyHandler answers a readiness probe (Kubernetes' readinessProbe, a
// load balancer's health check): 200 "ready" while this instance should
// get traffic, 503 with the reason otherwise — before it serves, from the
// first moment of a graceful stop (through the whole ShutdownDelay, while
// requests are still served), and, in multi-process mode, while fewer
// than Options.Workers workers are ready or the pool is degraded. Mount it
// on the handler given to Serve (every worker answers for the pool, as
// the master tells it), or read it from the master at MetricsAddr/readyz.
func ReadyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok, why := readiness()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready: " + why + "\n"))
			return
		}
		w.Write([]byte("ready\n"))
	})
}

// liveCheck, when set, is how LiveHandler learns that this process works:
// the master sets it to a round trip through its loop.
var liveCheck atomic.Pointer[func(context.Context) error]

// liveTimeout bounds LiveHandler's check: a master loop that has not
// taken an event for that long is wedged.
const liveTimeout = 5 * time.Second

// LiveHandler answers a liveness probe (Kubernetes' livenessProbe): 200
// "alive" until the process is really wedged, and 503 then, so that the
// orchestrator restarts it. In a worker or a single process an answer at
// all means alive: a stop, a drain, a degraded pool or a missing master
// does not fail it (readiness does), since restarting the process would not
// help and would cut the requests it serves. In the master (MetricsAddr's
// /livez) it is 503 when the master's loop has not taken an event within 5
// seconds.
func LiveHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if f := liveCheck.Load(); f != nil {
			ctx, cancel := context.WithTimeout(r.Context(), liveTimeout)
			defer cancel()
			if err := (*f)(ctx); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				w.Write([]byte("not alive: " + err.Error() + "\n"))
				return
			}
		}
		w.Write([]byte("alive\n"))
	})
}
