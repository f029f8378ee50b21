package metrics

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Names of the Merger's own metrics, served with the workers'.
const (
	// StaleMetric: 1 for a slot one of whose live workers did not answer
	// the latest scrape, whose previous snapshot is served instead.
	StaleMetric = "gracefork_worker_metrics_stale"
	// AgeMetric: how old, at the latest scrape's start, the oldest
	// snapshot served for a slot is; 0 when every worker answered.
	AgeMetric = "gracefork_worker_metrics_age_seconds"
	// DroppedMetric: live snapshots discarded because their worker
	// died; each is a reset of its slot's counters.
	DroppedMetric = "gracefork_worker_metrics_dropped_total"
	// FoldedMetric: retiring workers' counts folded into their slot.
	FoldedMetric = "gracefork_worker_metrics_folded_total"
)

// finishedKept is how many retired or dropped generations a slot
// remembers, to refuse their late snapshots.
const finishedKept = 8

// Merger holds the metrics of a pool's workers and merges them, per slot,
// into one view: a [prometheus.Gatherer]. Its methods are safe for
// concurrent use.
//
// The Merger owns the families handed to it: the caller must not modify
// them afterwards. The families [Merger.Gather] returns share values with
// the Merger's and must not be modified either.
type Merger struct {
	mu      sync.Mutex
	live    map[workerID]*snapshot
	bases   map[int]*base
	done    map[int][]int // per slot, the latest finished generations
	scrape  time.Time     // the latest scrape's start (MarkScrape)
	dropped uint64
	folded  uint64
}

type workerID struct{ slot, gen int }

// snapshot is one worker's latest families, indexed for the merge.
type snapshot struct {
	id   workerID
	at   time.Time
	fams []*family
}

// family is a metric family with its series keyed and labelled for
// output, the worker label included.
type family struct {
	name, help, unit string
	typ              dto.MetricType
	series           []*series
}

type series struct {
	key    string           // canonical key of the user's labels
	labels []*dto.LabelPair // output labels, worker included, sorted
	m      *dto.Metric      // the value; its labels are not used
}

// base is what a slot's retired workers counted: per family, per series.
type base struct {
	fams map[string]*baseFamily
}

type baseFamily struct {
	family
	index map[string]int // series key → position in series
}

// NewMerger returns an empty Merger.
func NewMerger() *Merger {
	return &Merger{
		live:  map[workerID]*snapshot{},
		bases: map[int]*base{},
		done:  map[int][]int{},
	}
}

// Update records the snapshot worker (slot, gen) took at the given time,
// replacing an older one of the same worker; an older one than that held
// is ignored. It fails with [ErrMalformed] for families [Decode] would
// reject, and with [ErrFinished] for a worker already retired or dropped:
// its counts are in its slot's base, or were lost, and must not come back.
func (m *Merger) Update(slot, gen int, families []*dto.MetricFamily, at time.Time) error {
	if err := checkSlot(slot); err != nil {
		return err
	}
	if err := validate(families, false); err != nil {
		return err
	}
	s := index(workerID{slot, gen}, families, at)
	m.mu.Lock()
	defer m.mu.Unlock()
	if slices.Contains(m.done[slot], gen) {
		return fmt.Errorf("%w: worker slot %d gen %d", ErrFinished, slot, gen)
	}
	if old := m.live[s.id]; old != nil && old.at.After(at) {
		return nil
	}
	m.live[s.id] = s
	return nil
}

func checkSlot(slot int) error {
	if slot < 0 {
		return fmt.Errorf("metrics: worker slot %d: must be 0 or more", slot)
	}
	return nil
}

// Retire folds what worker (slot, gen) counted into its slot's base and
// forgets its live snapshot: a worker leaving gracefully (reload,
// recycle, scale-down, stop). Final is its last snapshot, taken once it
// served its last request; nil folds the latest snapshot Update gave
// instead (the final one did not come). Counters, histograms and
// summaries' count and sum are folded; gauges, untyped values, gauge
// histograms and quantiles are dropped. A slot's base stays after its
// slot is scaled away, so the pool's totals never go down.
func (m *Merger) Retire(slot, gen int, final []*dto.MetricFamily) error {
	if err := checkSlot(slot); err != nil {
		return err
	}
	var s *snapshot
	if final != nil {
		if err := validate(final, false); err != nil {
			return err
		}
		s = index(workerID{slot, gen}, final, time.Time{})
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	id := workerID{slot, gen}
	if slices.Contains(m.done[slot], gen) {
		return fmt.Errorf("%w: worker slot %d gen %d", ErrFinished, slot, gen)
	}
	if s == nil {
		s = m.live[id]
	}
	delete(m.live, id)
	m.finish(id)
	if s != nil {
		m.baseOf(slot).fold(s.fams)
		m.folded++
	}
	return nil
}

// Drop forgets worker (slot, gen) and its counts: a crash. Its slot's
// series go down by what it counted, which Prometheus reads as a reset.
func (m *Merger) Drop(slot, gen int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := workerID{slot, gen}
	if slices.Contains(m.done[slot], gen) {
		return
	}
	if _, ok := m.live[id]; ok {
		delete(m.live, id)
		m.dropped++
	}
	m.finish(id)
}

func (m *Merger) finish(id workerID) {
	d := append(m.done[id.slot], id.gen)
	if len(d) > finishedKept {
		d = d[len(d)-finishedKept:]
	}
	m.done[id.slot] = d
}

func (m *Merger) baseOf(slot int) *base {
	b := m.bases[slot]
	if b == nil {
		b = &base{fams: map[string]*baseFamily{}}
		m.bases[slot] = b
	}
	return b
}

// MarkScrape says a scrape asked every live worker for a snapshot at
// start. Until the next one, a worker whose latest snapshot is older is
// served from that snapshot and reported stale ([StaleMetric],
// [AgeMetric]).
func (m *Merger) MarkScrape(start time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.scrape = start
}

// index turns a worker's families into the merge's form: the worker
// label added, a colliding user label renamed (see [WorkerLabel]).
func index(id workerID, fams []*dto.MetricFamily, at time.Time) *snapshot {
	s := &snapshot{id: id, at: at, fams: make([]*family, 0, len(fams))}
	w := workerPair(id.slot)
	for _, mf := range fams {
		f := &family{name: mf.GetName(), help: mf.GetHelp(), unit: mf.GetUnit(), typ: mf.GetType()}
		f.series = make([]*series, len(mf.Metric))
		for i, mt := range mf.Metric {
			user := userLabels(mt.Label)
			f.series[i] = &series{key: labelKey(user), labels: withWorker(user, w), m: mt}
		}
		s.fams = append(s.fams, f)
	}
	return s
}

func workerPair(slot int) *dto.LabelPair {
	n, v := WorkerLabel, strconv.Itoa(slot)
	return &dto.LabelPair{Name: &n, Value: &v}
}

// fold adds a retiring worker's additive families into the base. A
// family whose type changed (a new build) starts over with the new type;
// help and unit follow the latest worker.
func (b *base) fold(fams []*family) {
	for _, f := range fams {
		if !additive(f.typ) {
			continue
		}
		bf := b.fams[f.name]
		if bf == nil || bf.typ != f.typ {
			bf = &baseFamily{family: family{name: f.name, typ: f.typ}, index: map[string]int{}}
			b.fams[f.name] = bf
		}
		bf.help, bf.unit = f.help, f.unit
		for _, s := range f.series {
			c := counts(f.typ, s.m)
			if i, ok := bf.index[s.key]; ok {
				old := bf.series[i]
				// A new series struct: a Gather in flight may hold the old.
				bf.series[i] = &series{key: s.key, labels: old.labels, m: add(f.typ, old.m, c)}
				continue
			}
			bf.index[s.key] = len(bf.series)
			bf.series = append(bf.series, &series{key: s.key, labels: s.labels, m: c})
		}
	}
}

// Gather implements [prometheus.Gatherer]: every family of every worker,
// each series labelled with its worker's slot, whose value is, for a
// counter, histogram or summary, its slot's base plus each of the slot's
// live workers' (two during a reload: the draining one and its
// replacement), and for other types the newest live worker's. Then the
// Merger's own metrics.
//
// A family whose type differs between workers (a reload into a build
// that changed it) is served as the newest worker has it; the others'
// series of it are left out and reported in the error, a
// [prometheus.MultiError], with everything else still returned — as
// [prometheus.Gatherers] does — so one bad family never fails a scrape
// (serve it with [promhttp.ContinueOnError]). Differing help or unit is
// no error: the newest worker's is served.
func (m *Merger) Gather() ([]*dto.MetricFamily, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g := gathering{fams: map[string]*outFamily{}}
	for _, s := range m.sources() {
		for _, f := range s.fams {
			g.add(s.slot, s.base, f)
		}
	}
	self := m.self()
	for _, mf := range self {
		if _, ok := g.fams[mf.GetName()]; ok {
			delete(g.fams, mf.GetName())
			g.errs = append(g.errs, fmt.Errorf("metrics: family %q of a worker has the name of gracefork's own metric: it is left out", mf.GetName()))
		}
	}
	out := append(g.result(), self...)
	slices.SortFunc(out, func(a, b *dto.MetricFamily) int { return cmp.Compare(a.GetName(), b.GetName()) })
	return out, g.errs.MaybeUnwrap()
}

type source struct {
	slot int
	base bool
	fams []*family
}

// sources lists what Gather merges, in precedence order: live workers,
// newest generation first, then bases.
func (m *Merger) sources() []source {
	lives := make([]*snapshot, 0, len(m.live))
	for _, s := range m.live {
		lives = append(lives, s)
	}
	slices.SortFunc(lives, func(a, b *snapshot) int {
		return cmp.Or(cmp.Compare(b.id.gen, a.id.gen), cmp.Compare(a.id.slot, b.id.slot))
	})
	out := make([]source, 0, len(lives)+len(m.bases))
	for _, s := range lives {
		out = append(out, source{slot: s.id.slot, fams: s.fams})
	}
	slots := make([]int, 0, len(m.bases))
	for slot := range m.bases {
		slots = append(slots, slot)
	}
	slices.Sort(slots)
	for _, slot := range slots {
		bfs := m.bases[slot].fams
		fams := make([]*family, 0, len(bfs))
		for _, bf := range bfs {
			fams = append(fams, &bf.family)
		}
		out = append(out, source{slot: slot, base: true, fams: fams})
	}
	return out
}

type gathering struct {
	fams map[string]*outFamily
	errs prometheus.MultiError
}

type outFamily struct {
	mf     *dto.MetricFamily
	series map[seriesID]*outSeries
	order  []*outSeries
}

type seriesID struct {
	slot int
	key  string
}

type outSeries struct {
	slot int
	m    *dto.Metric
}

func (g *gathering) add(slot int, isBase bool, f *family) {
	of := g.fams[f.name]
	if of == nil {
		of = &outFamily{
			mf:     &dto.MetricFamily{Name: &f.name, Type: f.typ.Enum()},
			series: make(map[seriesID]*outSeries, len(f.series)),
		}
		if f.help != "" {
			of.mf.Help = &f.help
		}
		if f.unit != "" {
			of.mf.Unit = &f.unit
		}
		g.fams[f.name] = of
	}
	if of.mf.GetType() != f.typ {
		what := "worker"
		if isBase {
			what = "retired workers of"
		}
		g.errs = append(g.errs, fmt.Errorf("metrics: family %q is a %s in %s slot %d but a %s in a newer worker: its series there are left out",
			f.name, f.typ, what, slot, of.mf.GetType()))
		return
	}
	for _, s := range f.series {
		id := seriesID{slot, s.key}
		o := of.series[id]
		if o == nil {
			m := strip(s.m)
			m.Label = s.labels
			o = &outSeries{slot: slot, m: m}
			of.series[id] = o
			of.order = append(of.order, o)
			continue
		}
		if additive(f.typ) {
			labels := o.m.Label
			o.m = add(f.typ, o.m, s.m)
			o.m.Label = labels
		}
	}
}

// result returns the merged families, series in slot order, then label
// order.
func (g *gathering) result() []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, 0, len(g.fams))
	for _, of := range g.fams {
		if len(of.order) == 0 {
			continue // as a registry does: an exposition cannot show it
		}
		slices.SortFunc(of.order, func(a, b *outSeries) int {
			return cmp.Or(cmp.Compare(a.slot, b.slot), compareLabels(a.m.Label, b.m.Label))
		})
		of.mf.Metric = make([]*dto.Metric, len(of.order))
		for i, o := range of.order {
			of.mf.Metric[i] = o.m
		}
		out = append(out, of.mf)
	}
	return out
}

// self returns the Merger's own metrics.
func (m *Merger) self() []*dto.MetricFamily {
	type state struct {
		stale bool
		age   float64
	}
	slots := map[int]*state{}
	for id, s := range m.live {
		st := slots[id.slot]
		if st == nil {
			st = &state{}
			slots[id.slot] = st
		}
		if s.at.Before(m.scrape) {
			st.stale = true
			st.age = max(st.age, m.scrape.Sub(s.at).Seconds())
		}
	}
	keys := slices.Sorted(maps.Keys(slots))
	stale := gaugeFamily(StaleMetric, "Whether a worker slot's metrics are from before the latest scrape: a worker did not answer in time.")
	age := gaugeFamily(AgeMetric, "Age, at the latest scrape's start, of the oldest snapshot served for a worker slot.")
	for _, slot := range keys {
		st := slots[slot]
		v := 0.0
		if st.stale {
			v = 1
		}
		labels := []*dto.LabelPair{workerPair(slot)}
		stale.Metric = append(stale.Metric, &dto.Metric{Label: labels, Gauge: &dto.Gauge{Value: f64(v)}})
		age.Metric = append(age.Metric, &dto.Metric{Label: labels, Gauge: &dto.Gauge{Value: f64(st.age)}})
	}
	out := []*dto.MetricFamily{
		counterFamily(DroppedMetric, "Worker metric snapshots discarded because their worker died: resets of its slot's counts.", m.dropped),
		counterFamily(FoldedMetric, "Retiring workers' counts folded into their slot.", m.folded),
	}
	if len(keys) > 0 {
		out = append(out, stale, age)
	}
	return out
}

func gaugeFamily(name, help string) *dto.MetricFamily {
	return &dto.MetricFamily{Name: &name, Help: &help, Type: dto.MetricType_GAUGE.Enum()}
}

func counterFamily(name, help string, v uint64) *dto.MetricFamily {
	return &dto.MetricFamily{Name: &name, Help: &help, Type: dto.MetricType_COUNTER.Enum(),
		Metric: []*dto.Metric{{Counter: &dto.Counter{Value: f64(float64(v))}}}}
}

var _ prometheus.Gatherer = (*Merger)(nil)
