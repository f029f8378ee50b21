//go:build unix

package prefork_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gracefork/gracefork/internal/metrics"
	"github.com/gracefork/gracefork/prefork"
	"github.com/gracefork/gracefork/prefork/preforktest"
	"github.com/gracefork/gracefork/signals"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// scrapeTimeout is the tests' MetricsTimeout: no other timer of the
// master is armed at that distance.
const scrapeTimeout = 3 * time.Second

// snap encodes a worker's registry holding one counter, as a worker
// answers a scrape.
func snap(t *testing.T, v float64) []byte {
	t.Helper()
	name, help := "app_requests_total", "Requests."
	b, err := metrics.Encode([]*dto.MetricFamily{{Name: &name, Help: &help, Type: dto.MetricType_COUNTER.Enum(),
		Metric: []*dto.Metric{{Counter: &dto.Counter{Value: &v}}}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// scrape starts a scrape of r's merged metrics and returns the answer's
// channel; the test answers for the workers meanwhile.
func (r *rig) scrape() chan string {
	out := make(chan string, 1)
	h := r.m.MetricsHandler()
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		out <- rec.Body.String()
	}()
	return out
}

// answer makes each worker answer the scrape in progress with its value.
func answer(t *testing.T, ws map[*preforktest.Worker]float64) {
	t.Helper()
	for w, v := range ws {
		if err := w.Metrics(w.WaitGather(t), snap(t, v)); err != nil {
			t.Fatal(err)
		}
	}
}

func scraped(t *testing.T, out chan string) string {
	t.Helper()
	select {
	case s := <-out:
		return s
	case <-time.After(preforktest.Patience):
		t.Fatalf("the scrape did not return within %v", preforktest.Patience)
		return ""
	}
}

// wantLines checks that the exposition has every line.
func wantLines(t *testing.T, got string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(got, "\n"+l+"\n") {
			t.Errorf("scrape lacks %q; got:\n%s", l, got)
		}
	}
}

// settled waits until the master has folded or dropped w's metrics.
func (r *rig) settled(w *preforktest.Worker, how string) {
	r.t.Helper()
	e := r.ev.Wait(r.t, prefork.EventMetricsSettled, func(e prefork.Event) bool { return e.Generation == w.Generation })
	if e.Detail != how {
		r.t.Fatalf("worker gen %d's metrics %s, want %s", w.Generation, e.Detail, how)
	}
}

// Every worker's series come out labelled by slot; a worker that does not
// answer (stopped, wedged, an old build) holds the scrape only until
// MetricsTimeout, and its previous snapshot is served, marked stale.
func TestScrapeMergesWorkersAndMarksSilentOneStale(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 2, MetricsTimeout: scrapeTimeout})
	w0, w1 := r.boot(), r.boot()
	out := r.scrape()
	answer(t, map[*preforktest.Worker]float64{w0: 5, w1: 3})
	wantLines(t, scraped(t, out),
		`app_requests_total{worker="0"} 5`, `app_requests_total{worker="1"} 3`,
		metrics.StaleMetric+`{worker="0"} 0`, metrics.StaleMetric+`{worker="1"} 0`)

	out = r.scrape()
	answer(t, map[*preforktest.Worker]float64{w0: 6})
	w1.WaitGather(t) // asked, silent
	r.waitScrape(1)
	r.clk.WaitTimer(t, scrapeTimeout)
	r.clk.Advance(scrapeTimeout)
	wantLines(t, scraped(t, out),
		`app_requests_total{worker="0"} 6`, `app_requests_total{worker="1"} 3`,
		metrics.StaleMetric+`{worker="0"} 0`, metrics.StaleMetric+`{worker="1"} 1`)
	r.finish(true)
}

// A worker that drains sends a final snapshot, which its slot keeps
// counting after it has gone: the pool's counters never go down through a
// reload.
func TestReloadFoldsTheFinalSnapshot(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1, MetricsTimeout: scrapeTimeout})
	old := r.boot()
	out := r.scrape()
	answer(t, map[*preforktest.Worker]float64{old: 5})
	wantLines(t, scraped(t, out), `app_requests_total{worker="0"} 5`)

	prefork.Do(r.m, signals.Reload)
	repl := r.boot()
	if st := old.WaitStop(t); !st.Drain {
		t.Fatalf("old worker told %+v, want a drain", st)
	}
	if err := old.FinalMetrics(snap(t, 7)); err != nil {
		t.Fatal(err)
	}
	old.Exit(0)
	r.settled(old, "folded")

	out = r.scrape()
	answer(t, map[*preforktest.Worker]float64{repl: 1})
	wantLines(t, scraped(t, out), `app_requests_total{worker="0"} 8`, metrics.FoldedMetric+" 1")
	r.finish(true)
}

// A worker told to leave that exits without a final snapshot (an older
// build) has its latest one folded; its slot's counts stay after a
// scale-down.
func TestScaleDownFoldsTheLatestSnapshot(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 2, MetricsTimeout: scrapeTimeout})
	w0, w1 := r.boot(), r.boot()
	out := r.scrape()
	answer(t, map[*preforktest.Worker]float64{w0: 5, w1: 3})
	scraped(t, out)

	if err := r.m.Scale(1); err != nil {
		t.Fatal(err)
	}
	w1.WaitStop(t)
	w1.Exit(0)
	r.settled(w1, "folded")

	out = r.scrape()
	answer(t, map[*preforktest.Worker]float64{w0: 6})
	got := scraped(t, out)
	wantLines(t, got, `app_requests_total{worker="0"} 6`, `app_requests_total{worker="1"} 3`)
	if strings.Contains(got, metrics.StaleMetric+`{worker="1"}`) {
		t.Errorf("a retired slot is reported stale:\n%s", got)
	}
	r.finish(true)
}

// A crash loses what the worker counted, as Prometheus expects of a
// crashed process: its slot starts over, and a counter says so.
func TestCrashDropsTheWorkersCounts(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1, MetricsTimeout: scrapeTimeout})
	w := r.boot()
	out := r.scrape()
	answer(t, map[*preforktest.Worker]float64{w: 5})
	scraped(t, out)

	w.Exit(2, "panic: boom")
	r.settled(w, "dropped")
	r.waitRestart()
	repl := r.boot()
	out = r.scrape()
	answer(t, map[*preforktest.Worker]float64{repl: 1})
	wantLines(t, scraped(t, out), `app_requests_total{worker="0"} 1`, metrics.DroppedMetric+" 1")
	r.finish(true)
}

// The exit and the end of the control channel reach the loop in either
// order; the final snapshot written before the exit counts in both.
func TestFinalSnapshotCountsWhateverComesFirst(t *testing.T) {
	h := newHeldRig(t, prefork.Options{Workers: 1, MetricsTimeout: scrapeTimeout})
	w := h.boot()
	prefork.Do(h.m, signals.Reload)
	repl := h.boot()
	w.WaitStop(t)
	h.hold()
	if err := w.FinalMetrics(snap(t, 7)); err != nil {
		t.Fatal(err)
	}
	w.Exit(0)
	h.queued(2) // its exit, and the end of its control channel
	h.release()
	h.settled(w, "folded")
	out := h.scrape()
	answer(t, map[*preforktest.Worker]float64{repl: 1})
	wantLines(t, scraped(t, out), `app_requests_total{worker="0"} 8`)
	h.finish(true)
}

// The master's own metrics, on a registry of the program's as well as at
// /metrics; nothing on the default registry.
func TestMasterMetricsOnTheProgramsRegisterer(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	r := newRig(t, prefork.Options{Workers: 2, MetricsRegisterer: reg, MetricsTimeout: scrapeTimeout})
	w0, w1 := r.boot(), r.boot()
	w0.Exit(2) // a crash
	r.waitRestart()
	w2 := r.boot()
	prefork.Do(r.m, signals.Reload)
	r.boot()
	r.boot()
	for _, w := range []*preforktest.Worker{w2, w1} {
		w.WaitStop(t)
		w.Exit(0)
		r.ev.Wait(t, prefork.EventExited, func(e prefork.Event) bool { return e.Generation == w.Generation })
	}
	r.ev.Wait(t, prefork.EventReloadDone, nil)
	want := `
# HELP gracefork_master_boot_failures_total Workers that failed to start or exited before they were ready, boot timeouts included.
# TYPE gracefork_master_boot_failures_total counter
gracefork_master_boot_failures_total 0
# HELP gracefork_master_reloads_total Rolling reloads, by result: ok (every slot replaced) or failed (a new worker did not boot; the old ones serve on).
# TYPE gracefork_master_reloads_total counter
gracefork_master_reloads_total{result="failed"} 0
gracefork_master_reloads_total{result="ok"} 1
# HELP gracefork_master_worker_restarts_total Workers that left their slot, by reason: crash and hung (restarted), reload, recycle and upgrade (replaced), scale (removed).
# TYPE gracefork_master_worker_restarts_total counter
gracefork_master_worker_restarts_total{reason="crash"} 1
gracefork_master_worker_restarts_total{reason="hung"} 0
gracefork_master_worker_restarts_total{reason="recycle"} 0
gracefork_master_worker_restarts_total{reason="reload"} 2
gracefork_master_worker_restarts_total{reason="scale"} 0
gracefork_master_worker_restarts_total{reason="upgrade"} 0
# HELP gracefork_master_workers Worker processes by state: booting (not ready yet), serving, draining (told to stop).
# TYPE gracefork_master_workers gauge
gracefork_master_workers{state="booting"} 0
gracefork_master_workers{state="draining"} 0
gracefork_master_workers{state="serving"} 2
`
	names := []string{"gracefork_master_boot_failures_total", "gracefork_master_reloads_total", "gracefork_master_worker_restarts_total", "gracefork_master_workers"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "gracefork_master_reload_duration_seconds", "gracefork_master_build_info", "gracefork_master_start_time_seconds"); err != nil || n != 3 {
		t.Errorf("reload duration, build info and start time: %d series, %v; want 3", n, err)
	}
	if n, err := testutil.GatherAndCount(prometheus.DefaultGatherer, names...); err != nil || n != 0 {
		t.Errorf("%d series of the master's on the default registry (%v)", n, err)
	}
	out := r.scrape() // the same, at /metrics, with no worker answering
	r.clk.WaitTimer(t, scrapeTimeout)
	r.clk.Advance(scrapeTimeout)
	wantLines(t, scraped(t, out), `gracefork_master_workers{state="serving"} 2`, `gracefork_master_worker_restarts_total{reason="reload"} 2`)
	r.finish(true)
}

// A registerer that already holds the master's metrics is an option
// error, before anything is bound.
func TestMetricsRegistererConflict(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "gracefork_master_start_time_seconds", Help: "Mine."}))
	_, err := prefork.New(nil, prefork.Options{Addr: "127.0.0.1:0", MetricsRegisterer: reg, Spawner: preforktest.NewSpawner()})
	var oe *prefork.OptionError
	if !errors.As(err, &oe) || oe.Field != "MetricsRegisterer" {
		t.Fatalf("New = %v, want an OptionError for MetricsRegisterer", err)
	}
}

func TestMetricsAddrOptions(t *testing.T) {
	for _, c := range []struct{ addr, want string }{
		{"9100", `Options.MetricsAddr = "9100": `},
		{"127.0.0.1:8125", `repeats Options.Addr`},
		{":8125", `repeats Options.Addr`},
	} {
		_, err := prefork.New(nil, prefork.Options{Addr: "127.0.0.1:8125", MetricsAddr: c.addr, Spawner: preforktest.NewSpawner()})
		var oe *prefork.OptionError
		if !errors.As(err, &oe) || oe.Field != "MetricsAddr" || !strings.Contains(err.Error(), c.want) {
			t.Errorf("MetricsAddr %q: New = %v, want an OptionError with %q", c.addr, err, c.want)
		}
	}
	// A bare port binds loopback.
	s, err := prefork.New(nil, prefork.Options{Addr: "localhost:0", MetricsAddr: ":0", Spawner: preforktest.NewSpawner()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if a := s.MetricsAddr(); a == nil || !strings.HasPrefix(a.String(), "127.0.0.1:") {
		t.Fatalf("MetricsAddr() = %v, want 127.0.0.1:port", a)
	}
}

// MetricsAddr is the master's: a bare port binds loopback, the workers are
// not handed it, and it serves /metrics and /status.
func TestMetricsAddrServesMetricsAndStatus(t *testing.T) {
	r := newRig(t, prefork.Options{Workers: 1, MetricsAddr: "localhost:0", MetricsTimeout: scrapeTimeout})
	addr := r.m.MetricsAddr()
	w := r.boot()
	if w.Listeners != 1 {
		t.Fatalf("worker handed %d sockets, want 1: the metrics socket is the master's", w.Listeners)
	}
	if err := w.Report(preforktest.Usage{Requests: 10, Active: 2, InFlight: 1, RSS: 4096}); err != nil {
		t.Fatal(err)
	}
	st := r.waitStatus(func(st []prefork.WorkerStatus) bool { return len(st) == 1 && st[0].Requests == 10 })[0]
	if st.Slot != 0 || st.Generation != w.Generation || st.Pid != w.Pid() || st.State != "serving" ||
		st.InFlight != 1 || st.Connections != 2 || st.RSS != 4096 || !st.LastHeartbeat.Equal(r.clk.Now()) {
		t.Errorf("Status()[0] = %+v", st)
	}

	resp, err := http.Get("http://" + addr.String() + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Workers []struct {
			Slot     int    `json:"slot"`
			Pid      int    `json:"pid"`
			State    string `json:"state"`
			Requests uint64 `json:"requests"`
			RSS      uint64 `json:"rss_bytes"`
		} `json:"workers"`
	}
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil || len(got.Workers) != 1 || got.Workers[0].Pid != w.Pid() || got.Workers[0].State != "serving" || got.Workers[0].RSS != 4096 {
		t.Errorf("/status: %+v, %v", got, err)
	}

	body := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr.String() + "/metrics")
		if err != nil {
			body <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body <- string(b)
	}()
	answer(t, map[*preforktest.Worker]float64{w: 4})
	wantLines(t, scraped(t, body), `app_requests_total{worker="0"} 4`, `gracefork_master_workers{state="serving"} 1`)
	r.finish(true)
}

// waitScrape waits until the scrape under way waits for n workers only.
func (r *rig) waitScrape(n int) {
	r.t.Helper()
	deadline := time.Now().Add(preforktest.Patience)
	for prefork.ScrapeWaitsFor(r.m) != n {
		if time.Now().After(deadline) {
			r.t.Fatalf("the scrape waits for %d workers, want %d", prefork.ScrapeWaitsFor(r.m), n)
		}
		time.Sleep(time.Millisecond) // a worker's reader is taking its answer; no event to wait on
	}
}
