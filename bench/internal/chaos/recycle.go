package chaos

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// Recycle is the recycle scenario's setting: each worker retires after
// MaxRequests requests plus a draw from [0, Jitter], as Gunicorn's
// --max-requests and --max-requests-jitter. The zero Recycle is the
// same run's baseline: the target is started without the flags.
type Recycle struct {
	MaxRequests uint64 `json:"max_requests"`
	Jitter      uint64 `json:"max_requests_jitter"`
}

// On reports whether the target is asked to recycle.
func (r Recycle) On() bool { return r.MaxRequests > 0 }

// Variant names the run: "recycle" or "baseline".
func (r Recycle) Variant() string {
	if r.On() {
		return "recycle"
	}
	return "baseline"
}

func graceforkRecycleArgs(r Recycle) []string {
	return []string{"-max-requests", strconv.FormatUint(r.MaxRequests, 10),
		"-max-requests-jitter", strconv.FormatUint(r.Jitter, 10)}
}

func gunicornRecycleArgs(r Recycle) []string {
	return []string{"--max-requests", strconv.FormatUint(r.MaxRequests, 10),
		"--max-requests-jitter", strconv.FormatUint(r.Jitter, 10)}
}

// graceforkRecycled matches the master's record of a finished recycle
// (prefork's EventRecycled in slog's text format: msg=recycled).
var graceforkRecycled = regexp.MustCompile(`(?m)\bmsg="?recycled"?(\s|$)`)

// graceforkReplacements counts the master's "recycled" records.
func graceforkReplacements(log []byte, _ int) int {
	return len(graceforkRecycled.FindAll(log, -1))
}

// gunicornReplacements counts the workers gunicorn booted beyond the
// first ones: uvicorn's worker exits silently at its request limit, and
// the arbiter logs "Booting worker with pid" for its replacement.
func gunicornReplacements(log []byte, workers int) int {
	return max(bytes.Count(log, []byte("Booting worker with pid"))-workers, 0)
}

// RecycleStats is what a run of the recycle scenario showed, recycling or
// not.
type RecycleStats struct {
	Recycle
	// WorkerPIDs counts the distinct pids that answered; Replacements is
	// that minus the workers: the replacement workers that served.
	WorkerPIDs   int `json:"worker_pids"`
	Replacements int `json:"replacements"`
	// LogReplacements counts the replacements the target's log records
	// (gracefork: the master's "recycled" lines; gunicorn: workers booted
	// beyond the first); -1 when unknown.
	LogReplacements int `json:"log_replacements"`
	// LongestGapMS is the longest time without a successful response,
	// from the start of the load to its end.
	LongestGapMS float64 `json:"longest_gap_ms"`
	// ZeroBucketsMS is the longest run of 250 ms buckets without a
	// successful response, in ms.
	ZeroBucketsMS float64 `json:"zero_buckets_ms"`
	// BaselinePct is the steady throughput as a percentage of the same
	// round's baseline run (recycling runs only; nil without one).
	BaselinePct *float64 `json:"baseline_pct,omitempty"`
}

// recycleStats fills s.Recycle from the run's results and the target's
// log.
func (s *Summary) recycleStats(r Recycle, t *Target, results []Result, total time.Duration, log []byte) {
	st := &RecycleStats{Recycle: r, WorkerPIDs: len(s.PIDShares), LogReplacements: -1}
	st.Replacements = max(st.WorkerPIDs-s.Workers, 0)
	if t.replacements != nil && log != nil {
		st.LogReplacements = t.replacements(log, s.Workers)
	}
	st.LongestGapMS = float64(LongestGap(results, total)) / float64(time.Millisecond)
	st.ZeroBucketsMS = float64(ZeroStretch(s.Buckets)) / float64(time.Millisecond)
	s.Recycle = st
}

// LongestGap returns the longest time in [0, total] without a successful
// response completing.
func LongestGap(results []Result, total time.Duration) time.Duration {
	ends := []time.Duration{0, total}
	for _, r := range results {
		if r.Cause == OK && r.End >= 0 && r.End <= total {
			ends = append(ends, r.End)
		}
	}
	slices.Sort(ends)
	var gap time.Duration
	for i := 1; i < len(ends); i++ {
		gap = max(gap, ends[i]-ends[i-1])
	}
	return gap
}

// ZeroStretch returns the longest run of buckets without a successful
// response, as a duration.
func ZeroStretch(bs []Bucket) time.Duration {
	var run, best int
	for _, b := range bs {
		if b.OK == 0 {
			run++
			best = max(best, run)
		} else {
			run = 0
		}
	}
	return time.Duration(best) * BucketWidth
}

// RecycleRow is one target's recycling run of one round next to its
// baseline.
type RecycleRow struct {
	Target   string
	Round    int
	Recycle  *Summary
	Baseline *Summary // nil when it did not run
}

// CompareRecycle pairs each recycling run with the baseline of the same
// target and round, sets its BaselinePct, and returns the pairs by target
// (in the order they first ran) and round.
func CompareRecycle(sums []*Summary) []RecycleRow {
	type key struct {
		target string
		round  int
	}
	base := make(map[key]*Summary)
	order := make(map[string]int)
	for _, s := range sums {
		if _, ok := order[s.Target]; !ok {
			order[s.Target] = len(order)
		}
		if s.Skipped == "" && s.Recycle != nil && !s.Recycle.On() {
			base[key{s.Target, s.Round}] = s
		}
	}
	var rows []RecycleRow
	for _, s := range sums {
		if s.Skipped != "" || s.Recycle == nil || !s.Recycle.On() {
			continue
		}
		row := RecycleRow{Target: s.Target, Round: s.Round, Recycle: s, Baseline: base[key{s.Target, s.Round}]}
		if b := row.Baseline; b != nil && b.SteadyRPS > 0 {
			pct := 100 * s.SteadyRPS / b.SteadyRPS
			s.Recycle.BaselinePct = &pct
		}
		rows = append(rows, row)
	}
	slices.SortStableFunc(rows, func(a, b RecycleRow) int {
		return cmp.Or(cmp.Compare(order[a.Target], order[b.Target]), cmp.Compare(a.Round, b.Round))
	})
	return rows
}

// Median returns the median of xs (the mean of the middle two for an even
// count); 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// WriteRecycleTable prints the recycle scenario's comparison: per target
// and round, the recycling run's failures, its throughput as a share of
// the baseline's, the worker replacements seen and the longest stretch
// without a successful response; then each target's medians.
func WriteRecycleTable(w io.Writer, rows []RecycleRow) {
	fmt.Fprintf(w, "%-10s %-6s %7s %22s %14s %10s %11s | %s\n", "target", "round", "failed", "req/s (% of baseline)",
		"replaced pids", "log", "0 req/s gap", "baseline: failed, req/s, gap")
	var med struct {
		failed, pct, pids, logged, gap, zero, bFailed, bRPS, bGap []float64
	}
	flush := func(target string) {
		if len(med.failed) == 0 {
			return
		}
		fmt.Fprintf(w, "%-10s %-6s %7.0f %22s %14.0f %10s %9.0fms | %s\n", target, "median", Median(med.failed),
			pctText(med.pct), Median(med.pids), logText(med.logged), Median(med.gap), baseText(med.bFailed, med.bRPS, med.bGap))
		fmt.Fprintf(w, "%-10s %-6s longest run of empty 250 ms buckets, median %.0f ms\n", target, "", Median(med.zero))
		med = struct{ failed, pct, pids, logged, gap, zero, bFailed, bRPS, bGap []float64 }{}
	}
	for i, r := range rows {
		s, st := r.Recycle, r.Recycle.Recycle
		rate := fmt.Sprintf("%.0f (n/a)", s.SteadyRPS)
		if st.BaselinePct != nil {
			rate = fmt.Sprintf("%.0f (%.1f%%)", s.SteadyRPS, *st.BaselinePct)
			med.pct = append(med.pct, *st.BaselinePct)
		}
		logged := "n/a"
		if st.LogReplacements >= 0 {
			logged = strconv.Itoa(st.LogReplacements)
			med.logged = append(med.logged, float64(st.LogReplacements))
		}
		base := "not run"
		if b := r.Baseline; b != nil {
			gap := 0.0
			if b.Recycle != nil {
				gap = b.Recycle.LongestGapMS
			}
			base = fmt.Sprintf("%d, %.0f, %.0fms", b.Failed, b.SteadyRPS, gap)
			med.bFailed = append(med.bFailed, float64(b.Failed))
			med.bRPS = append(med.bRPS, b.SteadyRPS)
			med.bGap = append(med.bGap, gap)
		}
		fmt.Fprintf(w, "%-10s %-6d %7d %22s %14d %10s %9.0fms | %s\n", r.Target, r.Round, s.Failed, rate,
			st.Replacements, logged, st.LongestGapMS, base)
		med.failed = append(med.failed, float64(s.Failed))
		med.pids = append(med.pids, float64(st.Replacements))
		med.gap = append(med.gap, st.LongestGapMS)
		med.zero = append(med.zero, st.ZeroBucketsMS)
		if i+1 == len(rows) || rows[i+1].Target != r.Target {
			flush(r.Target)
		}
	}
}

// pctText is the median of the percentages, or n/a.
func pctText(xs []float64) string {
	if len(xs) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%%", Median(xs))
}

// logText is the median of the log counts, or n/a.
func logText(xs []float64) string {
	if len(xs) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f", Median(xs))
}

// baseText is the medians of the baselines, or "not run".
func baseText(failed, rps, gap []float64) string {
	if len(failed) == 0 {
		return "not run"
	}
	return fmt.Sprintf("%.0f, %.0f, %.0fms", Median(failed), Median(rps), Median(gap))
}
