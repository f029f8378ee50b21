package metrics

import (
	"math"
	"slices"

	dto "github.com/prometheus/client_model/go"
)

// Every value this package stores or returns is immutable once made:
// merging builds new structs and never writes through a pointer it did
// not just allocate, so a gathered family may be encoded while the
// Merger folds the next retirement.

// additive reports whether a type's values add up across a slot's
// workers and into its base: a counter's value, a histogram's buckets,
// count and sum, a summary's count and sum. A gauge, an untyped value or
// a gauge histogram is a reading of one process: the slot shows its
// newest worker's, and a retiring worker's is dropped.
func additive(t dto.MetricType) bool {
	return t == dto.MetricType_COUNTER || t == dto.MetricType_HISTOGRAM || t == dto.MetricType_SUMMARY
}

// strip returns a new metric with m's value, without labels, timestamps
// or created timestamps: a slot's series is made of several processes'
// values, so no single one's creation time describes it, and Prometheus
// detects resets from the values alone.
func strip(m *dto.Metric) *dto.Metric {
	out := &dto.Metric{}
	if c := m.Counter; c != nil {
		out.Counter = &dto.Counter{Value: c.Value, Exemplar: c.Exemplar}
	}
	if g := m.Gauge; g != nil {
		out.Gauge = &dto.Gauge{Value: g.Value}
	}
	if u := m.Untyped; u != nil {
		out.Untyped = &dto.Untyped{Value: u.Value}
	}
	if s := m.Summary; s != nil {
		out.Summary = &dto.Summary{SampleCount: s.SampleCount, SampleSum: s.SampleSum, Quantile: s.Quantile}
	}
	if h := m.Histogram; h != nil {
		out.Histogram = stripHistogram(h)
	}
	return out
}

func stripHistogram(h *dto.Histogram) *dto.Histogram {
	return &dto.Histogram{
		SampleCount: h.SampleCount, SampleCountFloat: h.SampleCountFloat, SampleSum: h.SampleSum,
		Bucket: h.Bucket,
		Schema: h.Schema, ZeroThreshold: h.ZeroThreshold, ZeroCount: h.ZeroCount, ZeroCountFloat: h.ZeroCountFloat,
		NegativeSpan: h.NegativeSpan, NegativeDelta: h.NegativeDelta, NegativeCount: h.NegativeCount,
		PositiveSpan: h.PositiveSpan, PositiveDelta: h.PositiveDelta, PositiveCount: h.PositiveCount,
		Exemplars: h.Exemplars,
	}
}

// counts returns m's additive part only, as a base keeps it: no
// exemplars, no quantiles (a summary's quantiles are one process's
// sliding window and do not add up).
func counts(t dto.MetricType, m *dto.Metric) *dto.Metric {
	out := strip(m)
	switch t {
	case dto.MetricType_COUNTER:
		out.Counter.Exemplar = nil
	case dto.MetricType_SUMMARY:
		out.Summary.Quantile = nil
	case dto.MetricType_HISTOGRAM:
		out.Histogram.Exemplars = nil
		out.Histogram.Bucket = slices.Clone(out.Histogram.Bucket)
		for i, b := range out.Histogram.Bucket {
			if b.Exemplar != nil {
				out.Histogram.Bucket[i] = &dto.Bucket{UpperBound: b.UpperBound, CumulativeCount: b.CumulativeCount, CumulativeCountFloat: b.CumulativeCountFloat}
			}
		}
	}
	return out
}

// add returns a new metric: a's value plus b's, for an additive type.
// What does not add (exemplars, quantiles) is a's.
func add(t dto.MetricType, a, b *dto.Metric) *dto.Metric {
	switch t {
	case dto.MetricType_COUNTER:
		return &dto.Metric{Counter: &dto.Counter{
			Value:    f64(a.Counter.GetValue() + b.Counter.GetValue()),
			Exemplar: a.Counter.Exemplar,
		}}
	case dto.MetricType_SUMMARY:
		return &dto.Metric{Summary: &dto.Summary{
			SampleCount: u64(a.Summary.GetSampleCount() + b.Summary.GetSampleCount()),
			SampleSum:   f64(a.Summary.GetSampleSum() + b.Summary.GetSampleSum()),
			Quantile:    a.Summary.Quantile,
		}}
	case dto.MetricType_HISTOGRAM:
		return &dto.Metric{Histogram: addHistogram(a.Histogram, b.Histogram)}
	}
	return strip(a)
}

func addHistogram(a, b *dto.Histogram) *dto.Histogram {
	h := &dto.Histogram{
		SampleCount: u64(a.GetSampleCount() + b.GetSampleCount()),
		SampleSum:   f64(a.GetSampleSum() + b.GetSampleSum()),
		Bucket:      addBuckets(a.Bucket, b.Bucket),
		Exemplars:   a.Exemplars,
	}
	if a.SampleCountFloat != nil || b.SampleCountFloat != nil {
		h.SampleCountFloat = f64(a.GetSampleCountFloat() + b.GetSampleCountFloat())
	}
	switch {
	case isNative(a) && isNative(b):
		addNative(h, a, b)
	case isNative(a):
		copyNative(h, a)
	case isNative(b):
		copyNative(h, b)
	}
	return h
}

// addBuckets adds two classic bucket lists. With the same bounds (the
// usual case) counts add bound by bound and a's exemplars stay. With
// different bounds (a new build changed them) the result has every bound
// of either, each side counting, at a bound it lacks, what it has at its
// largest bound below: a lower bound, exact at the side's own bounds,
// and still cumulative.
func addBuckets(a, b []*dto.Bucket) []*dto.Bucket {
	if len(a) == 0 {
		return b
	}
	if len(b) == 0 {
		return a
	}
	same := len(a) == len(b)
	for i := 0; same && i < len(a); i++ {
		same = a[i].GetUpperBound() == b[i].GetUpperBound()
	}
	if same {
		out := make([]*dto.Bucket, len(a))
		for i := range a {
			out[i] = sumBucket(a[i].UpperBound, a[i], b[i])
			out[i].Exemplar = a[i].Exemplar
		}
		return out
	}
	out := make([]*dto.Bucket, 0, len(a)+len(b))
	var i, j int
	var lastA, lastB *dto.Bucket
	for i < len(a) || j < len(b) {
		var ub float64
		switch {
		case j == len(b) || (i < len(a) && a[i].GetUpperBound() < b[j].GetUpperBound()):
			ub = a[i].GetUpperBound()
		default:
			ub = b[j].GetUpperBound()
		}
		if i < len(a) && a[i].GetUpperBound() == ub {
			lastA = a[i]
			i++
		}
		if j < len(b) && b[j].GetUpperBound() == ub {
			lastB = b[j]
			j++
		}
		out = append(out, sumBucket(f64(ub), lastA, lastB))
	}
	return out
}

func sumBucket(ub *float64, a, b *dto.Bucket) *dto.Bucket {
	out := &dto.Bucket{UpperBound: ub, CumulativeCount: u64(a.GetCumulativeCount() + b.GetCumulativeCount())}
	if a.GetCumulativeCountFloat() != 0 || b.GetCumulativeCountFloat() != 0 {
		out.CumulativeCountFloat = f64(a.GetCumulativeCountFloat() + b.GetCumulativeCountFloat())
	}
	return out
}

func copyNative(h, src *dto.Histogram) {
	h.Schema, h.ZeroThreshold, h.ZeroCount, h.ZeroCountFloat = src.Schema, src.ZeroThreshold, src.ZeroCount, src.ZeroCountFloat
	h.PositiveSpan, h.PositiveDelta, h.PositiveCount = src.PositiveSpan, src.PositiveDelta, src.PositiveCount
	h.NegativeSpan, h.NegativeDelta, h.NegativeCount = src.NegativeSpan, src.NegativeDelta, src.NegativeCount
}

// addNative adds two native histograms into h: both are brought to the
// coarser schema (merging 2^d adjacent buckets, as Prometheus does) and
// the wider zero bucket (absorbing the buckets wholly inside it), then
// added bucket by bucket. Integer counts only: float counts are for
// gauge histograms, which never add; a float-count side is left out.
func addNative(h, a, b *dto.Histogram) {
	if len(a.PositiveCount)+len(a.NegativeCount) > 0 {
		copyNative(h, b)
		return
	}
	if len(b.PositiveCount)+len(b.NegativeCount) > 0 {
		copyNative(h, a)
		return
	}
	schema := min(a.GetSchema(), b.GetSchema())
	zt := max(a.GetZeroThreshold(), b.GetZeroThreshold())
	zero := a.GetZeroCount() + b.GetZeroCount()
	pos := map[int32]uint64{}
	neg := map[int32]uint64{}
	for _, x := range []*dto.Histogram{a, b} {
		zero += collect(pos, x.PositiveSpan, x.PositiveDelta, x.GetSchema(), schema, zt)
		zero += collect(neg, x.NegativeSpan, x.NegativeDelta, x.GetSchema(), schema, zt)
	}
	h.Schema = &schema
	h.ZeroThreshold = f64(zt)
	h.ZeroCount = u64(zero)
	h.PositiveSpan, h.PositiveDelta = spans(pos)
	h.NegativeSpan, h.NegativeDelta = spans(neg)
	if len(h.PositiveSpan)+len(h.NegativeSpan) == 0 {
		// An empty native histogram still says it is one, as
		// client_golang writes it.
		h.PositiveSpan = []*dto.BucketSpan{{Offset: new(int32), Length: new(uint32)}}
	}
}

// collect adds the buckets of one side (spans and deltas at schema from)
// into m at schema to, and returns the count of those whose upper bound
// is within the zero threshold zt.
func collect(m map[int32]uint64, sp []*dto.BucketSpan, deltas []int64, from, to int32, zt float64) (zero uint64) {
	var idx int32
	var count int64
	k := 0
	for i, s := range sp {
		if i == 0 {
			idx = s.GetOffset()
		} else {
			idx += s.GetOffset()
		}
		for n := uint32(0); n < s.GetLength(); n++ {
			count += deltas[k]
			k++
			c := uint64(max(count, 0))
			t := ((idx - 1) >> (from - to)) + 1
			if upperBound(t, to) <= zt {
				zero += c
			} else {
				m[t] += c
			}
			idx++
		}
	}
	return zero
}

// upperBound is the upper bound of native bucket i at schema s:
// 2^(i·2^-s).
func upperBound(i, s int32) float64 {
	return math.Exp2(math.Ldexp(float64(i), -int(s)))
}

// spans writes buckets as client_golang does: sorted, runs of adjacent
// buckets as one span, counts as deltas from the previous bucket.
func spans(m map[int32]uint64) ([]*dto.BucketSpan, []int64) {
	if len(m) == 0 {
		return nil, nil
	}
	idx := make([]int32, 0, len(m))
	for i := range m {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	var sp []*dto.BucketSpan
	deltas := make([]int64, 0, len(idx))
	var prev int64
	var last int32
	for n, i := range idx {
		if n == 0 || i != last+1 {
			off := i
			if n > 0 {
				off = i - last - 1
			}
			sp = append(sp, &dto.BucketSpan{Offset: &off, Length: new(uint32)})
		}
		*sp[len(sp)-1].Length++
		c := int64(m[i])
		deltas = append(deltas, c-prev)
		prev, last = c, i
	}
	return sp, deltas
}

func f64(v float64) *float64 { return &v }
func u64(v uint64) *uint64   { return &v }
