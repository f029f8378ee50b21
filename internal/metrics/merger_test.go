package metrics

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestMergeLabelsEverySeriesWithItsSlot(t *testing.T) {
	m := NewMerger()
	a, b := newApp(t), newApp(t)
	a.serve("/", 3, 0.05)
	a.inflight.Set(2)
	b.serve("/", 1, 0.5)
	b.serve("/x", 2, 2)
	b.inflight.Set(1)
	update(t, m, 0, 1, a, t0)
	update(t, m, 1, 2, b, t0)
	compare(t, m, `
# HELP app_requests_total Requests.
# TYPE app_requests_total counter
app_requests_total{route="/",worker="0"} 3
app_requests_total{route="/",worker="1"} 1
app_requests_total{route="/x",worker="1"} 2
# HELP app_inflight In flight.
# TYPE app_inflight gauge
app_inflight{worker="0"} 2
app_inflight{worker="1"} 1
# HELP app_duration_seconds Duration.
# TYPE app_duration_seconds histogram
app_duration_seconds_bucket{worker="0",le="0.1"} 3
app_duration_seconds_bucket{worker="0",le="1"} 3
app_duration_seconds_bucket{worker="0",le="+Inf"} 3
app_duration_seconds_sum{worker="0"} 0.15000000000000002
app_duration_seconds_count{worker="0"} 3
app_duration_seconds_bucket{worker="1",le="0.1"} 0
app_duration_seconds_bucket{worker="1",le="1"} 1
app_duration_seconds_bucket{worker="1",le="+Inf"} 3
app_duration_seconds_sum{worker="1"} 4.5
app_duration_seconds_count{worker="1"} 3
# HELP gracefork_worker_metrics_stale Whether a worker slot's metrics are from before the latest scrape: a worker did not answer in time.
# TYPE gracefork_worker_metrics_stale gauge
gracefork_worker_metrics_stale{worker="0"} 0
gracefork_worker_metrics_stale{worker="1"} 0
`, "app_requests_total", "app_inflight", "app_duration_seconds", StaleMetric)
}

func TestWorkerLabelOfTheUserIsRenamed(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jobs_total", Help: "Jobs."}, []string{"worker", "exported_worker"})
	reg.MustRegister(c)
	c.WithLabelValues("w", "e").Add(4)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	m := NewMerger()
	if err := m.Update(3, 1, fams, t0); err != nil {
		t.Fatal(err)
	}
	// As Prometheus renames on a scrape collision: the first free of
	// exported_worker, exported_exported_worker…
	compare(t, m, `
# HELP jobs_total Jobs.
# TYPE jobs_total counter
jobs_total{exported_exported_worker="w",exported_worker="e",worker="3"} 4
`, "jobs_total")
	// And the renamed series survives a retirement and an export.
	if err := m.Retire(3, 1, nil); err != nil {
		t.Fatal(err)
	}
	exp, err := m.Export(false)
	if err != nil {
		t.Fatal(err)
	}
	n := NewMerger()
	if err := n.Import(exp); err != nil {
		t.Fatal(err)
	}
	if err := n.Update(3, 1, fams, t0); err != nil {
		t.Fatal(err)
	}
	compare(t, n, `
# HELP jobs_total Jobs.
# TYPE jobs_total counter
jobs_total{exported_exported_worker="w",exported_worker="e",worker="3"} 8
`, "jobs_total")
}

// TestCountsNeverDecreaseThroughPlannedRestarts: a reload (old and new
// worker live together), the old one's retirement, the new one's updates,
// a recycle, then a scale-down: the sum over the pool never goes down.
func TestCountsNeverDecreaseThroughPlannedRestarts(t *testing.T) {
	m := NewMerger()
	names := []string{"app_requests_total", "app_duration_seconds", "app_native_seconds", "app_summary_seconds"}
	last := map[string]float64{}
	check := func(step string, want float64) {
		t.Helper()
		for _, n := range names {
			got := total(t, m, n)
			if got < last[n] {
				t.Fatalf("%s: sum(%s) went down from %v to %v", step, n, last[n], got)
			}
			if got != want {
				t.Fatalf("%s: sum(%s) = %v, want %v", step, n, got, want)
			}
			last[n] = got
		}
	}
	old, other := newApp(t), newApp(t)
	old.serve("/", 5, 0.05)
	other.serve("/", 1, 0.05)
	update(t, m, 0, 1, old, t0)
	update(t, m, 1, 2, other, t0)
	check("start", 6)

	// Reload of slot 0: the replacement is ready while the old drains.
	repl := newApp(t)
	repl.serve("/", 2, 0.5)
	update(t, m, 0, 3, repl, t0)
	check("both live", 8)
	old.serve("/", 1, 0.05) // its last request, after its last snapshot
	if err := m.Retire(0, 1, old.snapshot(t)); err != nil {
		t.Fatal(err)
	}
	check("old retired", 9)
	repl.serve("/", 3, 0.5)
	update(t, m, 0, 3, repl, t0)
	check("replacement serves", 12)

	// A recycle of slot 0 whose final snapshot did not come: the latest
	// one is folded.
	if err := m.Retire(0, 3, nil); err != nil {
		t.Fatal(err)
	}
	check("recycled", 12)
	fresh := newApp(t)
	update(t, m, 0, 4, fresh, t0)
	check("fresh worker", 12)

	// Scale-down: slot 1 goes and its series stay.
	if err := m.Retire(1, 2, other.snapshot(t)); err != nil {
		t.Fatal(err)
	}
	check("scaled down", 12)
	compare(t, m, `
# HELP app_requests_total Requests.
# TYPE app_requests_total counter
app_requests_total{route="/",worker="0"} 11
app_requests_total{route="/",worker="1"} 1
# HELP app_inflight In flight.
# TYPE app_inflight gauge
app_inflight{worker="0"} 0
# HELP gracefork_worker_metrics_folded_total Retiring workers' counts folded into their slot.
# TYPE gracefork_worker_metrics_folded_total counter
gracefork_worker_metrics_folded_total 3
`, "app_requests_total", "app_inflight", FoldedMetric)
}

func TestRetireFoldsHistogramsAndSummaries(t *testing.T) {
	m := NewMerger()
	a := newApp(t)
	a.serve("/", 2, 0.05)
	a.serve("/", 1, 5)
	if err := m.Retire(0, 1, a.snapshot(t)); err != nil {
		t.Fatal(err)
	}
	b := newApp(t)
	b.serve("/", 1, 0.5)
	update(t, m, 0, 2, b, t0)
	compare(t, m, `
# HELP app_duration_seconds Duration.
# TYPE app_duration_seconds histogram
app_duration_seconds_bucket{worker="0",le="0.1"} 2
app_duration_seconds_bucket{worker="0",le="1"} 3
app_duration_seconds_bucket{worker="0",le="+Inf"} 4
app_duration_seconds_sum{worker="0"} 5.6
app_duration_seconds_count{worker="0"} 4
# HELP app_summary_seconds Summary.
# TYPE app_summary_seconds summary
app_summary_seconds_sum{worker="0"} 5.6
app_summary_seconds_count{worker="0"} 4
`, "app_duration_seconds", "app_summary_seconds")

	// The native histogram is the one a single process observing all
	// four values would have.
	want := newApp(t)
	want.serve("/", 2, 0.05)
	want.serve("/", 1, 5)
	want.serve("/", 1, 0.5)
	wantH := find(t, want.snapshot(t), "app_native_seconds").Metric[0].Histogram
	got, _ := m.Gather()
	gotH := find(t, got, "app_native_seconds").Metric[0].Histogram
	sameNative(t, gotH, wantH)
}

func find(t testing.TB, fams []*dto.MetricFamily, name string) *dto.MetricFamily {
	t.Helper()
	for _, mf := range fams {
		if mf.GetName() == name {
			return mf
		}
	}
	t.Fatalf("no family %q", name)
	return nil
}

func sameNative(t testing.TB, got, want *dto.Histogram) {
	t.Helper()
	g, w := nativeBuckets(got), nativeBuckets(want)
	if got.GetSchema() != want.GetSchema() || got.GetZeroCount() != want.GetZeroCount() ||
		got.GetSampleCount() != want.GetSampleCount() || len(g) != len(w) {
		t.Fatalf("native histogram:\n got %v\nwant %v", got, want)
	}
	for i, c := range w {
		if g[i] != c {
			t.Fatalf("native bucket %d: got %d, want %d\n got %v\nwant %v", i, g[i], c, got, want)
		}
	}
}

// nativeBuckets maps bucket index → count (positive buckets; negative
// ones with index -i-1<<20).
func nativeBuckets(h *dto.Histogram) map[int32]uint64 {
	m := map[int32]uint64{}
	collect(m, h.PositiveSpan, h.PositiveDelta, h.GetSchema(), h.GetSchema(), -1)
	neg := map[int32]uint64{}
	collect(neg, h.NegativeSpan, h.NegativeDelta, h.GetSchema(), h.GetSchema(), -1)
	for i, c := range neg {
		m[-i-1<<20] = c
	}
	return m
}

func TestAddNativeAcrossSchemasAndZeroThresholds(t *testing.T) {
	fine := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Help: "h", NativeHistogramBucketFactor: 1.05, NativeHistogramZeroThreshold: 0.001})
	coarse := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Help: "h", NativeHistogramBucketFactor: 1.2, NativeHistogramZeroThreshold: 0.01})
	all := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Help: "h", NativeHistogramBucketFactor: 1.2, NativeHistogramZeroThreshold: 0.01})
	for i, v := range []float64{0.0001, 0.005, 0.02, 0.3, 1, 1.7, 40, -0.2, -3, 1e6} {
		if i%2 == 0 {
			fine.Observe(v)
		} else {
			coarse.Observe(v)
		}
		all.Observe(v)
	}
	h := func(c prometheus.Collector) *dto.Histogram {
		m := &dto.Metric{}
		if err := c.(prometheus.Metric).Write(m); err != nil {
			t.Fatal(err)
		}
		return m.Histogram
	}
	a, b := h(fine), h(coarse)
	if a.GetSchema() <= b.GetSchema() {
		t.Fatalf("schemas %d, %d: the test wants the first finer", a.GetSchema(), b.GetSchema())
	}
	got := addHistogram(a, b)
	want := h(all)
	sameNative(t, got, want)
	if got.GetZeroThreshold() != want.GetZeroThreshold() {
		t.Fatalf("zero threshold %g, want %g", got.GetZeroThreshold(), want.GetZeroThreshold())
	}
	// And both ways round.
	sameNative(t, addHistogram(b, a), want)
}

func TestAddBucketsWithDifferentBounds(t *testing.T) {
	bk := func(pairs ...float64) []*dto.Bucket {
		var out []*dto.Bucket
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, &dto.Bucket{UpperBound: f64(pairs[i]), CumulativeCount: u64(uint64(pairs[i+1]))})
		}
		return out
	}
	got := addBuckets(bk(0.1, 1, 1, 3), bk(0.5, 2, 1, 4, 5, 6))
	want := bk(0.1, 1, 0.5, 3, 1, 7, 5, 9)
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].GetUpperBound() != want[i].GetUpperBound() || got[i].GetCumulativeCount() != want[i].GetCumulativeCount() {
			t.Fatalf("bucket %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

func TestDropLosesCountsAsAReset(t *testing.T) {
	m := NewMerger()
	a := newApp(t)
	a.serve("/", 4, 0.05)
	if err := m.Retire(0, 1, a.snapshot(t)); err != nil {
		t.Fatal(err)
	}
	b := newApp(t)
	b.serve("/", 3, 0.05)
	update(t, m, 0, 2, b, t0)
	m.Drop(0, 2)
	m.Drop(0, 2) // twice: counted once
	compare(t, m, `
# HELP app_requests_total Requests.
# TYPE app_requests_total counter
app_requests_total{route="/",worker="0"} 4
# HELP gracefork_worker_metrics_dropped_total Worker metric snapshots discarded because their worker died: resets of its slot's counts.
# TYPE gracefork_worker_metrics_dropped_total counter
gracefork_worker_metrics_dropped_total 1
`, "app_requests_total", DroppedMetric)
}

// TestLateSnapshotAfterRetireIsRefused: an answer to an earlier scrape
// that arrives after the worker's final snapshot would count it twice.
func TestLateSnapshotAfterRetireIsRefused(t *testing.T) {
	m := NewMerger()
	a := newApp(t)
	a.serve("/", 2, 0.05)
	late := a.snapshot(t)
	if err := m.Retire(0, 1, a.snapshot(t)); err != nil {
		t.Fatal(err)
	}
	if err := m.Update(0, 1, late, t0); !errors.Is(err, ErrFinished) {
		t.Fatalf("Update after Retire: %v, want ErrFinished", err)
	}
	if err := m.Retire(0, 1, late); !errors.Is(err, ErrFinished) {
		t.Fatalf("Retire twice: %v, want ErrFinished", err)
	}
	m.Drop(0, 1)
	if got := total(t, m, "app_requests_total"); got != 2 {
		t.Fatalf("sum = %v, want 2", got)
	}
}

func TestOlderSnapshotDoesNotReplaceNewer(t *testing.T) {
	m := NewMerger()
	a := newApp(t)
	a.serve("/", 1, 0.05)
	before := a.snapshot(t)
	a.serve("/", 1, 0.05)
	update(t, m, 0, 1, a, t0.Add(time.Second))
	if err := m.Update(0, 1, before, t0); err != nil {
		t.Fatal(err)
	}
	if got := total(t, m, "app_requests_total"); got != 2 {
		t.Fatalf("sum = %v, want 2", got)
	}
}

func TestStaleWorkerServedFromItsLastSnapshot(t *testing.T) {
	m := NewMerger()
	a, b := newApp(t), newApp(t)
	a.serve("/", 1, 0.05)
	b.serve("/", 7, 0.05)
	update(t, m, 0, 1, a, t0)
	update(t, m, 1, 2, b, t0)
	// The next scrape: slot 0 answers, slot 1 (SIGSTOPped) does not.
	scrape := t0.Add(1500 * time.Millisecond)
	m.MarkScrape(scrape)
	a.serve("/", 1, 0.05)
	update(t, m, 0, 1, a, scrape.Add(time.Millisecond))
	compare(t, m, `
# HELP app_requests_total Requests.
# TYPE app_requests_total counter
app_requests_total{route="/",worker="0"} 2
app_requests_total{route="/",worker="1"} 7
# HELP gracefork_worker_metrics_stale Whether a worker slot's metrics are from before the latest scrape: a worker did not answer in time.
# TYPE gracefork_worker_metrics_stale gauge
gracefork_worker_metrics_stale{worker="0"} 0
gracefork_worker_metrics_stale{worker="1"} 1
# HELP gracefork_worker_metrics_age_seconds Age, at the latest scrape's start, of the oldest snapshot served for a worker slot.
# TYPE gracefork_worker_metrics_age_seconds gauge
gracefork_worker_metrics_age_seconds{worker="0"} 0
gracefork_worker_metrics_age_seconds{worker="1"} 1.5
`, "app_requests_total", StaleMetric, AgeMetric)
}

// TestTypeConflictKeepsTheRest: a reload into a build that made a
// counter a gauge. The newest worker's type is served, the other's
// series of that family are left out and reported, and every other
// family is still there.
func TestTypeConflictKeepsTheRest(t *testing.T) {
	m := NewMerger()
	a := newApp(t)
	a.serve("/", 2, 0.05)
	update(t, m, 0, 1, a, t0)
	reg := prometheus.NewPedanticRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "app_requests_total", Help: "Now a gauge."})
	reg.MustRegister(g)
	g.Set(9)
	fams, _ := reg.Gather()
	if err := m.Update(0, 2, fams, t0); err != nil {
		t.Fatal(err)
	}
	got, err := m.Gather()
	var me prometheus.MultiError
	if !errors.As(err, &me) && err == nil {
		t.Fatal("no error for the conflict")
	}
	t.Log(err)
	mf := find(t, got, "app_requests_total")
	if mf.GetType() != dto.MetricType_GAUGE || len(mf.Metric) != 1 || mf.Metric[0].GetGauge().GetValue() != 9 {
		t.Fatalf("conflicting family: %v", mf)
	}
	find(t, got, "app_duration_seconds")
}

func TestUserFamilyNamedLikeOwnMetricIsLeftOut(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: DroppedMetric, Help: "x"})
	reg.MustRegister(c)
	fams, _ := reg.Gather()
	m := NewMerger()
	if err := m.Update(0, 1, fams, t0); err != nil {
		t.Fatal(err)
	}
	got, err := m.Gather()
	if err == nil {
		t.Fatal("no error")
	}
	if mf := find(t, got, DroppedMetric); len(mf.Metric) != 1 || len(mf.Metric[0].Label) != 0 {
		t.Fatalf("own metric: %v", mf)
	}
}

func TestUpdateRejectsMalformedFamilies(t *testing.T) {
	m := NewMerger()
	name := "x"
	bad := []*dto.MetricFamily{{Name: &name, Type: dto.MetricType_COUNTER.Enum(), Metric: []*dto.Metric{{Gauge: &dto.Gauge{}}}}}
	if err := m.Update(0, 1, bad, t0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Update: %v, want ErrMalformed", err)
	}
	if err := m.Retire(0, 1, bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Retire: %v, want ErrMalformed", err)
	}
	if err := m.Update(-1, 1, nil, t0); err == nil {
		t.Fatal("Update of slot -1: no error")
	}
}

func TestExportImportContinuesTotals(t *testing.T) {
	old := NewMerger()
	a, b := newApp(t), newApp(t)
	a.serve("/", 5, 0.05)
	b.serve("/x", 3, 0.5)
	if err := old.Retire(0, 1, a.snapshot(t)); err != nil {
		t.Fatal(err)
	}
	update(t, old, 1, 2, b, t0) // live at the handover: folded with Export(true)
	exp, err := old.Export(true)
	if err != nil {
		t.Fatal(err)
	}
	// Export folds a copy: the old Merger is unchanged.
	if got := total(t, old, "app_requests_total"); got != 8 {
		t.Fatalf("old sum after export = %v, want 8", got)
	}

	m := NewMerger()
	c := newApp(t)
	c.serve("/", 1, 0.05)
	update(t, m, 0, 1, c, t0) // the new master's workers serve already
	if err := m.Import(exp); err != nil {
		t.Fatal(err)
	}
	c.serve("/", 1, 0.05)
	update(t, m, 0, 1, c, t0)
	compare(t, m, `
# HELP app_requests_total Requests.
# TYPE app_requests_total counter
app_requests_total{route="/",worker="0"} 7
app_requests_total{route="/x",worker="1"} 3
# HELP app_summary_seconds Summary.
# TYPE app_summary_seconds summary
app_summary_seconds_sum{worker="0"} 0.35
app_summary_seconds_count{worker="0"} 7
app_summary_seconds_sum{worker="1"} 1.5
app_summary_seconds_count{worker="1"} 3
`, "app_requests_total", "app_summary_seconds")

	for _, in := range [][]byte{nil, {1}, {exportFormat, 0}, {exportFormat, 0, 5, 1}, append(exp[:len(exp):len(exp)], 0, 1, 0)} {
		if err := NewMerger().Import(in); err == nil {
			t.Errorf("Import(%q): no error", in)
		}
	}
}
