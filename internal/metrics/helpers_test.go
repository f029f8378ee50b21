package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// app is a worker's registry with one of each kind of metric.
type app struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	inflight prometheus.Gauge
	duration prometheus.Histogram
	native   prometheus.Histogram
	summary  prometheus.Summary
}

func newApp(t testing.TB) *app {
	a := &app{reg: prometheus.NewPedanticRegistry()}
	a.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "app_requests_total", Help: "Requests."}, []string{"route"})
	a.inflight = prometheus.NewGauge(prometheus.GaugeOpts{Name: "app_inflight", Help: "In flight."})
	a.duration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "app_duration_seconds", Help: "Duration.", Buckets: []float64{0.1, 1}})
	a.native = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "app_native_seconds", Help: "Native.",
		NativeHistogramBucketFactor: 1.1, NativeHistogramZeroThreshold: prometheus.DefNativeHistogramZeroThreshold})
	a.summary = prometheus.NewSummary(prometheus.SummaryOpts{Name: "app_summary_seconds", Help: "Summary."})
	a.reg.MustRegister(a.requests, a.inflight, a.duration, a.native, a.summary)
	return a
}

// snapshot gathers the app's registry and sends it through Encode and
// Decode, as a worker's answer travels.
func (a *app) snapshot(t testing.TB) []*dto.MetricFamily {
	t.Helper()
	fams, err := a.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Encode(fams)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// serve records n requests on route, each taking d seconds.
func (a *app) serve(route string, n int, d float64) {
	for range n {
		a.requests.WithLabelValues(route).Inc()
		a.duration.Observe(d)
		a.native.Observe(d)
		a.summary.Observe(d)
	}
}

func update(t testing.TB, m *Merger, slot, gen int, a *app, at time.Time) {
	t.Helper()
	if err := m.Update(slot, gen, a.snapshot(t), at); err != nil {
		t.Fatal(err)
	}
}

func compare(t testing.TB, g prometheus.Gatherer, want string, names ...string) {
	t.Helper()
	if err := testutil.GatherAndCompare(g, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
}

// total is the sum over every series of a counter family, or of a
// histogram's or summary's count, as sum() in PromQL.
func total(t testing.TB, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var s float64
	for _, mf := range fams {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			s += m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount()) + float64(m.GetSummary().GetSampleCount())
		}
	}
	return s
}

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
