package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// sumMetric adds up every sample of the metric name in a text-format
// scrape (any labels), and says how many samples it saw.
func sumMetric(text, name string) (float64, int) {
	var sum float64
	n := 0
	for line := range strings.Lines(text) {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if i := strings.LastIndexByte(rest, '}'); i >= 0 {
			rest = rest[i+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		sum += v
		n++
	}
	return sum, n
}

// quantile returns the q-quantile (nearest rank) of ds; 0 if empty.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func median[T int | int64 | float64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

type stats struct{ p50, p99, max time.Duration }

func statsOf(ds []time.Duration) stats {
	return stats{quantile(ds, 0.5), quantile(ds, 0.99), quantile(ds, 1)}
}

type latencyResult struct {
	samples      int // bench_series_total samples in one scrape
	bytes        int
	idle, loaded stats
}

// latencyRound starts the series target with c.workers workers of
// c.series series each and scrapes its master c.scrapes times idle, then
// c.scrapes times under load.
func latencyRound(ctx context.Context, c config, bin, tmp string) (latencyResult, error) {
	var res latencyResult
	addr, err := freePort()
	if err != nil {
		return res, err
	}
	maddr, err := freePort()
	if err != nil {
		return res, err
	}
	p, err := start(bin, []string{"-addr", addr, "-metrics-addr", maddr, "-workers", strconv.Itoa(c.workers),
		"-series", strconv.Itoa(c.series)}, tmp, nil, filepath.Join(tmp, "latency.log"))
	if err != nil {
		return res, err
	}
	defer p.stop()
	url := "http://" + maddr + "/metrics"
	want := c.workers * c.series
	if err := waitFor(p, fmt.Sprintf("%d bench_series_total samples", want), func() bool {
		body, _, err := scrape(url)
		_, n := sumMetric(body, "bench_series_total")
		return err == nil && n == want
	}); err != nil {
		return res, err
	}
	measure := func() ([]time.Duration, error) {
		var ds []time.Duration
		for range c.scrapes {
			body, d, err := scrape(url)
			if err != nil {
				return nil, err
			}
			if _, n := sumMetric(body, "bench_series_total"); n != want {
				return nil, fmt.Errorf("scrape has %d bench_series_total samples, want %d", n, want)
			}
			res.bytes = len(body)
			res.samples = want
			ds = append(ds, d)
		}
		return ds, nil
	}
	idle, err := measure()
	if err != nil {
		return res, err
	}
	lctx, cancel := context.WithCancel(ctx)
	l := startLoad(lctx, addr, c.conns)
	loaded, err := measure()
	cancel()
	l.wg.Wait()
	if err != nil {
		return res, err
	}
	res.idle, res.loaded = statsOf(idle), statsOf(loaded)
	return res, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

func writeLatencyReport(w io.Writer, c config, rs []latencyResult) {
	pick := func(f func(latencyResult) time.Duration) string {
		var ds []time.Duration
		for _, r := range rs {
			ds = append(ds, f(r))
		}
		return ms(median(ds))
	}
	fmt.Fprintf(w, "## scrape latency: gracefork master /metrics, %d workers x %d series (%d samples, %d bytes), %d scrapes each, median of %d rounds\n\n",
		c.workers, c.series, rs[0].samples, rs[0].bytes, c.scrapes, len(rs))
	fmt.Fprintf(w, "| | p50 ms | p99 ms | max ms |\n| --- | --- | --- | --- |\n")
	fmt.Fprintf(w, "| idle | %s | %s | %s |\n", pick(func(r latencyResult) time.Duration { return r.idle.p50 }),
		pick(func(r latencyResult) time.Duration { return r.idle.p99 }), pick(func(r latencyResult) time.Duration { return r.idle.max }))
	fmt.Fprintf(w, "| under load (%d conns) | %s | %s | %s |\n\n", c.conns, pick(func(r latencyResult) time.Duration { return r.loaded.p50 }),
		pick(func(r latencyResult) time.Duration { return r.loaded.p99 }), pick(func(r latencyResult) time.Duration { return r.loaded.max }))
}

type sample struct {
	at    time.Duration
	took  time.Duration
	total float64
	files int
	err   string
}

type recycleResult struct {
	target   string
	round    int
	samples  []sample
	answered int64
	failed   int64
	pids     int     // distinct worker pids seen in the bodies
	final    float64 // scraped total after the load
	files    int     // files in the multiprocess dir at the end (gunicorn)
}

// window is the median scrape time of the samples in [from, to) of the run.
func (r recycleResult) window(from, to time.Duration) time.Duration {
	var ds []time.Duration
	for _, s := range r.samples {
		if s.err == "" && s.at >= from && s.at < to {
			ds = append(ds, s.took)
		}
	}
	return median(ds)
}

func (r recycleResult) errors() int {
	n := 0
	for _, s := range r.samples {
		if s.err != "" {
			n++
		}
	}
	return n
}

func (r recycleResult) summary() string {
	return fmt.Sprintf("answered=%d failed=%d pids=%d final=%.0f files=%d scrape errors=%d", r.answered, r.failed, r.pids, r.final, r.files, r.errors())
}

func (r recycleResult) csv() string {
	var b strings.Builder
	b.WriteString("at_ms,scrape_ms,total,files,error\n")
	for _, s := range r.samples {
		fmt.Fprintf(&b, "%d,%s,%.0f,%d,%s\n", s.at.Milliseconds(), ms(s.took), s.total, s.files, strings.ReplaceAll(s.err, ",", ";"))
	}
	return b.String()
}

// recycleRound runs one target with -max-requests under load for
// c.duration, scraping every c.interval, then scrapes once more after the
// load has stopped.
func recycleRound(ctx context.Context, c config, target, bin, tmp string) (recycleResult, error) {
	res := recycleResult{target: target}
	addr, err := freePort()
	if err != nil {
		return res, err
	}
	var p *proc
	var url, mpdir string
	switch target {
	case "gracefork":
		maddr, err := freePort()
		if err != nil {
			return res, err
		}
		p, err = start(bin, []string{"-addr", addr, "-metrics-addr", maddr, "-workers", strconv.Itoa(c.recWorkers),
			"-max-requests", strconv.Itoa(c.maxRequests)}, tmp, nil, filepath.Join(tmp, "gracefork.log"))
		if err != nil {
			return res, err
		}
		url = "http://" + maddr + "/metrics"
	case "gunicorn":
		p, mpdir, err = startGunicorn(tmp, addr, c.recWorkers, c.maxRequests)
		if err != nil {
			return res, err
		}
		url = "http://" + addr + "/metrics"
	}
	defer p.stop()
	if err := waitFor(p, "/metrics", func() bool { _, _, err := scrape(url); return err == nil }); err != nil {
		return res, err
	}
	// The readiness scrapes are answered by gunicorn's workers and count
	// towards their --max-requests but not towards hello_requests_total.
	lctx, cancel := context.WithTimeout(ctx, c.duration)
	l := startLoad(lctx, addr, c.conns)
	t0 := time.Now()
	tick := time.NewTicker(c.interval)
	for lctx.Err() == nil {
		select {
		case <-lctx.Done():
		case <-tick.C:
			s := sample{at: time.Since(t0)}
			body, d, err := scrape(url)
			if err != nil {
				s.err = err.Error()
			} else {
				s.took = d
				s.total, _ = sumMetric(body, "hello_requests_total")
			}
			if mpdir != "" {
				s.files = countFiles(mpdir)
			}
			res.samples = append(res.samples, s)
		}
	}
	tick.Stop()
	cancel()
	l.wg.Wait()
	res.answered, res.failed, res.pids = l.answered.Load(), l.failed.Load(), l.distinctPids()
	// The final count: retry a few times, a worker may be in its recycle.
	for range 10 {
		body, _, err := scrape(url)
		if err == nil {
			res.final, _ = sumMetric(body, "hello_requests_total")
			if int64(res.final) >= res.answered {
				break
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	if mpdir != "" {
		res.files = countFiles(mpdir)
	}
	return res, nil
}

func writeRecycleReport(w io.Writer, c config, rs []recycleResult) {
	edge := 3 * time.Second
	fmt.Fprintf(w, "## recycling under load: %d workers, --max-requests %d, %d conns, %s, scraped every %s; median of rounds\n\n",
		c.recWorkers, c.maxRequests, c.conns, c.duration, c.interval)
	fmt.Fprintf(w, "| target | rounds | answered | worker pids seen | scrape ms, first %s | scrape ms, last %s | end/start | files in dir | final total - answered | scrape errors |\n", edge, edge)
	fmt.Fprintf(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, t := range []string{"gracefork", "gunicorn"} {
		var answered, pids, files, diff, errs []int64
		var first, last []time.Duration
		var ratio []float64
		n := 0
		for _, r := range rs {
			if r.target != t {
				continue
			}
			n++
			answered = append(answered, r.answered)
			pids = append(pids, int64(r.pids))
			files = append(files, int64(r.files))
			diff = append(diff, int64(r.final)-r.answered)
			errs = append(errs, int64(r.errors()))
			f, l := r.window(0, edge), r.window(c.duration-edge, c.duration+time.Second)
			first, last = append(first, f), append(last, l)
			if f > 0 {
				ratio = append(ratio, float64(l)/float64(f))
			}
		}
		if n == 0 {
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %d | %d | %s | %s | %.1fx | %d | %d | %d |\n", t, n, median(answered), median(pids),
			ms(median(first)), ms(median(last)), median(ratio), median(files), median(diff), median(errs))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "per round:")
	for _, r := range rs {
		fmt.Fprintf(w, "  %s r%d: %s\n", r.target, r.round, r.summary())
	}
	fmt.Fprintln(w)
}
