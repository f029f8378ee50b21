package main

import (
	"strings"
	"testing"
	"time"
)

func TestSumMetric(t *testing.T) {
	text := `# HELP hello_requests_total Answers given by the hello handler.
# TYPE hello_requests_total counter
hello_requests_total{worker="0"} 12
hello_requests_total{worker="1",path="a}b"} 3.0
hello_requests_total_other 100
hello_requests_totalx{worker="2"} 100
hello_requests_total 1e3
`
	sum, n := sumMetric(text, "hello_requests_total")
	if sum != 1015 || n != 3 {
		t.Fatalf("sumMetric = %v, %d; want 1015, 3", sum, n)
	}
	if sum, n := sumMetric("", "x"); sum != 0 || n != 0 {
		t.Fatalf("empty: %v, %d", sum, n)
	}
}

func TestQuantileAndMedian(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(101-i)*time.Millisecond)
	}
	if q := quantile(ds, 0.5); q != 50*time.Millisecond {
		t.Errorf("p50 = %v", q)
	}
	if q := quantile(ds, 0.99); q != 99*time.Millisecond {
		t.Errorf("p99 = %v", q)
	}
	if q := quantile(ds, 1); q != 100*time.Millisecond {
		t.Errorf("max = %v", q)
	}
	if q := quantile(nil, 0.5); q != 0 {
		t.Errorf("empty = %v", q)
	}
	if m := median([]int{3, 1, 2}); m != 2 {
		t.Errorf("median odd = %d", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median even = %v", m)
	}
}

func TestRecycleReport(t *testing.T) {
	mk := func(target string, round int, first, last time.Duration, files int) recycleResult {
		return recycleResult{target: target, round: round, answered: 1000, final: 1002, pids: 7, files: files,
			samples: []sample{
				{at: 500 * time.Millisecond, took: first},
				{at: 1 * time.Second, err: "refused"},
				{at: 9500 * time.Millisecond, took: last},
			}}
	}
	rs := []recycleResult{
		mk("gracefork", 1, 2*time.Millisecond, 2*time.Millisecond, 0),
		mk("gunicorn", 1, 4*time.Millisecond, 40*time.Millisecond, 300),
	}
	if got := rs[1].window(0, 3*time.Second); got != 4*time.Millisecond {
		t.Fatalf("window = %v (the failed scrape must not count)", got)
	}
	var b strings.Builder
	writeRecycleReport(&b, config{recWorkers: 2, maxRequests: 200, conns: 16, duration: 10 * time.Second, interval: 500 * time.Millisecond}, rs)
	for _, want := range []string{
		"| gracefork | 1 | 1000 | 7 | 2.00 | 2.00 | 1.0x | 0 | 2 | 1 |",
		"| gunicorn | 1 | 1000 | 7 | 4.00 | 40.00 | 10.0x | 300 | 2 | 1 |",
		"gunicorn r1: answered=1000 failed=0 pids=7 final=1002 files=300 scrape errors=1",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
	if csv := rs[0].csv(); !strings.HasPrefix(csv, "at_ms,scrape_ms,total,files,error\n500,2.00,0,0,\n1000,0.00,0,0,refused\n") {
		t.Errorf("csv:\n%s", csv)
	}
}

func TestLatencyReport(t *testing.T) {
	r := latencyResult{samples: 8000, bytes: 500000,
		idle: stats{time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond}, loaded: stats{4 * time.Millisecond, 5 * time.Millisecond, 6 * time.Millisecond}}
	var b strings.Builder
	writeLatencyReport(&b, config{workers: 8, series: 1000, scrapes: 200, conns: 16}, []latencyResult{r, r, r})
	for _, want := range []string{"8 workers x 1000 series (8000 samples, 500000 bytes)", "| idle | 1.00 | 2.00 | 3.00 |", "| under load (16 conns) | 4.00 | 5.00 | 6.00 |"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}
