package prefork

import (
	rdebug "runtime/debug"
	"sync"
	"time"

	"github.com/gracefork/gracefork/recycle"
	"github.com/prometheus/client_golang/prometheus"
)

// Why a worker left its slot, for gracefork_master_worker_restarts_total.
const (
	causeCrash   = "crash"   // exited unasked after it was ready (a protocol error's kill too)
	causeHung    = "hung"    // no heartbeat for HeartbeatTimeout: killed
	causeReload  = "reload"  // replaced by a reload
	causeRecycle = "recycle" // replaced on reaching a recycle limit
	causeScale   = "scale"   // drained by a scale-down (TTOU, Scale, stop-workers)
	causeUpgrade = "upgrade" // drained after a new master took over
)

var restartCauses = []string{causeCrash, causeHung, causeReload, causeRecycle, causeScale, causeUpgrade}

// Worker states, for gracefork_master_workers.
const (
	stateBooting  = "booting"
	stateServing  = "serving"
	stateDraining = "draining"
)

// ownMetrics are the master's own metrics. They are driven by the events
// (observe, called by emit, the one place every event passes) and by the
// loop's note of why it stops a worker (leaving). Most calls come from the
// loop, some from New and from Run after the loop: a mutex keeps the
// per-worker state.
type ownMetrics struct {
	workers      *prometheus.GaugeVec
	restarts     *prometheus.CounterVec
	bootFailures prometheus.Counter
	reloads      *prometheus.CounterVec
	reloadTime   *prometheus.HistogramVec
	upgrades     *prometheus.CounterVec
	upgradeTime  *prometheus.HistogramVec
	recycles     *prometheus.CounterVec
	buildInfo    *prometheus.GaugeVec
	startTime    prometheus.Gauge

	mu           sync.Mutex
	gens         map[int]*genState // live workers, by generation
	reloadStart  time.Time
	upgradeStart time.Time
}

type genState struct {
	state string
	ready bool
	cause string // why the master stopped it, if it did
}

// Durations of reloads and upgrades: a worker's boot (tens of
// milliseconds) times the slots, up to BootTimeout and UpgradeTimeout.
var durationBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

func newOwnMetrics(start time.Time) *ownMetrics {
	o := &ownMetrics{
		workers: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gracefork_master_workers",
			Help: "Worker processes by state: booting (not ready yet), serving, draining (told to stop)."}, []string{"state"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gracefork_master_worker_restarts_total",
			Help: "Workers that left their slot, by reason: crash and hung (restarted), reload, recycle and upgrade (replaced), scale (removed)."}, []string{"reason"}),
		bootFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "gracefork_master_boot_failures_total",
			Help: "Workers that failed to start or exited before they were ready, boot timeouts included."}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gracefork_master_reloads_total",
			Help: "Rolling reloads, by result: ok (every slot replaced) or failed (a new worker did not boot; the old ones serve on)."}, []string{"result"}),
		reloadTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gracefork_master_reload_duration_seconds",
			Help: "How long rolling reloads took, by result.", Buckets: durationBuckets}, []string{"result"}),
		upgrades: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gracefork_master_upgrades_total",
			Help: "Binary upgrades, by result: ok (the new master took over), failed, cancelled (by a stop) or refused (could not start)."}, []string{"result"}),
		upgradeTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gracefork_master_upgrade_duration_seconds",
			Help: "How long binary upgrades took, from start to the new master's ready or failure, by result.", Buckets: durationBuckets}, []string{"result"}),
		recycles: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gracefork_master_recycles_total",
			Help: "Workers recycled, by the limit they reached."}, []string{"reason"}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gracefork_master_build_info",
			Help: "The master's build: its Go version, the program's module version and gracefork's; always 1."}, []string{"goversion", "version", "gracefork"}),
		startTime: prometheus.NewGauge(prometheus.GaugeOpts{Name: "gracefork_master_start_time_seconds",
			Help: "When the master started, in seconds since the Unix epoch."}),
		gens: map[int]*genState{},
	}
	// Every series exists from the start, so that rates see the first one.
	for _, s := range []string{stateBooting, stateServing, stateDraining} {
		o.workers.WithLabelValues(s)
	}
	for _, c := range restartCauses {
		o.restarts.WithLabelValues(c)
	}
	for _, r := range []string{"ok", "failed"} {
		o.reloads.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "failed", "cancelled", "refused"} {
		o.upgrades.WithLabelValues(r)
	}
	for _, r := range []recycle.Reason{recycle.Requests, recycle.Age, recycle.Memory, recycle.Runaway} {
		o.recycles.WithLabelValues(r.String())
	}
	o.buildInfo.WithLabelValues(buildVersions()).Set(1)
	o.startTime.Set(float64(start.UnixNano()) / 1e9)
	return o
}

// buildVersions returns the Go version, the main module's version and
// gracefork's, "unknown" where the binary does not say.
func buildVersions() (goVersion, version, gracefork string) {
	goVersion, version, gracefork = "unknown", "unknown", "unknown"
	bi, ok := rdebug.ReadBuildInfo()
	if !ok {
		return
	}
	goVersion = bi.GoVersion
	if bi.Main.Version != "" {
		version = bi.Main.Version
	}
	if bi.Main.Path == "github.com/gracefork/gracefork" {
		gracefork = version
	}
	for _, d := range bi.Deps {
		if d.Path == "github.com/gracefork/gracefork" {
			gracefork = d.Version
		}
	}
	return
}

func (o *ownMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{o.workers, o.restarts, o.bootFailures, o.reloads, o.reloadTime,
		o.upgrades, o.upgradeTime, o.recycles, o.buildInfo, o.startTime}
}

// register registers every collector on r, or none.
func (o *ownMetrics) register(r prometheus.Registerer) error {
	cs := o.collectors()
	for i, c := range cs {
		if err := r.Register(c); err != nil {
			for _, done := range cs[:i] {
				r.Unregister(done)
			}
			return err
		}
	}
	return nil
}

// leaving notes why the master stops the worker of generation gen, for
// the restart counter at its exit.
func (o *ownMetrics) leaving(gen int, cause string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if g := o.gens[gen]; g != nil && g.cause == "" {
		g.cause = cause
	}
}

// observe updates the metrics an event changes.
func (o *ownMetrics) observe(e Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch e.Kind {
	case EventSpawned:
		o.gens[e.Generation] = &genState{state: stateBooting}
		o.workers.WithLabelValues(stateBooting).Inc()
	case EventReady:
		if g := o.gens[e.Generation]; g != nil {
			g.ready = true
			o.setState(g, stateServing)
		}
	case EventDraining:
		if g := o.gens[e.Generation]; g != nil {
			o.setState(g, stateDraining)
		}
	case EventExited:
		o.exited(e)
	case EventSpawnFailed:
		o.bootFailures.Inc()
	case EventRecycled:
		o.recycles.WithLabelValues(e.Reason.String()).Inc()
	case EventReloadStarted:
		o.reloadStart = e.Time
	case EventReloadDone:
		o.reloadEnded(e.Time, "ok")
	case EventReloadFailed:
		o.reloadEnded(e.Time, "failed")
	case EventUpgradeStarted:
		o.upgradeStart = e.Time
	case EventUpgraded:
		o.upgradeEnded(e.Time, "ok")
	case EventUpgradeFailed:
		o.upgradeEnded(e.Time, "failed")
	case EventUpgradeCancelled:
		o.upgradeEnded(e.Time, "cancelled")
	case EventUpgradeRefused:
		o.upgrades.WithLabelValues("refused").Inc()
	}
}

func (o *ownMetrics) setState(g *genState, s string) {
	if g.state == s {
		return
	}
	o.workers.WithLabelValues(g.state).Dec()
	o.workers.WithLabelValues(s).Inc()
	g.state = s
}

// exited counts a worker's end: a restart by its cause, a crash, or a
// failed boot.
func (o *ownMetrics) exited(e Event) {
	g := o.gens[e.Generation]
	if g == nil {
		return
	}
	delete(o.gens, e.Generation)
	o.workers.WithLabelValues(g.state).Dec()
	switch {
	case g.cause == causeHung:
		o.restarts.WithLabelValues(causeHung).Inc()
	case !e.Expected && g.ready:
		o.restarts.WithLabelValues(causeCrash).Inc()
	case !e.Expected:
		o.bootFailures.Inc()
	case g.cause != "":
		o.restarts.WithLabelValues(g.cause).Inc()
	}
}

func (o *ownMetrics) reloadEnded(at time.Time, result string) {
	o.reloads.WithLabelValues(result).Inc()
	if !o.reloadStart.IsZero() {
		o.reloadTime.WithLabelValues(result).Observe(at.Sub(o.reloadStart).Seconds())
		o.reloadStart = time.Time{}
	}
}

func (o *ownMetrics) upgradeEnded(at time.Time, result string) {
	o.upgrades.WithLabelValues(result).Inc()
	if !o.upgradeStart.IsZero() {
		o.upgradeTime.WithLabelValues(result).Observe(at.Sub(o.upgradeStart).Seconds())
		o.upgradeStart = time.Time{}
	}
}
