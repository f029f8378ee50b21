package metrics

import (
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// benchWorker returns a snapshot of 1,000 series: 900 counters over 9
// families and 100 histograms with 10 buckets.
func benchWorker(b *testing.B) []*dto.MetricFamily {
	reg := prometheus.NewPedanticRegistry()
	for f := range 9 {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bench_counter_" + strconv.Itoa(f) + "_total", Help: "c"}, []string{"route", "code"})
		reg.MustRegister(c)
		for i := range 100 {
			c.WithLabelValues("/r"+strconv.Itoa(i/5), strconv.Itoa(200+i%5)).Add(float64(i))
		}
	}
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "bench_seconds", Help: "h"}, []string{"route"})
	reg.MustRegister(h)
	for i := range 100 {
		h.WithLabelValues("/r" + strconv.Itoa(i)).Observe(float64(i) / 100)
	}
	fams, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	return fams
}

// BenchmarkGather: a scrape's merge with 8 workers × 1,000 series, half
// the slots with a base from a retired worker.
func BenchmarkGather(b *testing.B) {
	fams := benchWorker(b)
	enc, _ := Encode(fams)
	m := NewMerger()
	for slot := range 8 {
		if slot%2 == 0 {
			f, _ := Decode(enc)
			if err := m.Retire(slot, 0, f); err != nil {
				b.Fatal(err)
			}
		}
		f, _ := Decode(enc)
		if err := m.Update(slot, slot+1, f, t0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpdate: decoding one worker's 1,000-series snapshot and
// recording it.
func BenchmarkUpdate(b *testing.B) {
	enc, _ := Encode(benchWorker(b))
	b.SetBytes(int64(len(enc)))
	m := NewMerger()
	b.ReportAllocs()
	for b.Loop() {
		f, err := Decode(enc)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Update(0, 1, f, t0); err != nil {
			b.Fatal(err)
		}
	}
}
