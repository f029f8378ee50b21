package chaos

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FaultRecord is one scheduled fault and what happened when it fired.
type FaultRecord struct {
	Action    Action  `json:"action"`
	Scheduled float64 `json:"scheduled_s"`
	At        float64 `json:"at_s"` // when it fired; 0 if it did not
	Fired     bool    `json:"fired"`
	Supported bool    `json:"supported"`
	// Injected is true when the action was carried out.
	Injected bool `json:"injected"`
	// NewPids are the processes first seen after this fault and before
	// the next one.
	NewPids []int  `json:"new_pids,omitempty"`
	Detail  string `json:"detail"`
	// Recovery says how long after the fault throughput was back to at
	// least 90% of steady (see Recovery).
	Recovery   string   `json:"recovery"`
	RecoveryS  *float64 `json:"recovery_s,omitempty"`
	firedAfter time.Duration
}

// PIDShare is the share of successful responses one pid served.
type PIDShare struct {
	PID   int     `json:"pid"`
	Count int     `json:"count"`
	Share float64 `json:"share"`
}

// Leftover is a target process still alive after its master exited.
type Leftover struct {
	PID     int    `json:"pid"`
	Cmdline string `json:"cmdline"`
}

// Losses splits the failed requests by where they failed, which is what
// a client can do about them: a request that failed on an established
// connection may have reached the server (lost); a refused dial reached
// nothing and is safe to retry elsewhere; a timeout left the client
// waiting.
type Losses struct {
	// Accepted counts requests that failed with a reset, EOF or broken
	// pipe after their connection was established (the kernel accepted
	// it) and the request was being written or read.
	Accepted int `json:"accepted"`
	// AcceptedNew and AcceptedKeptAlive split Accepted: on a connection
	// dialled for the request (one that waited in the backlog), or on a
	// kept-alive one that had carried a response.
	AcceptedNew       int `json:"accepted_new_conn"`
	AcceptedKeptAlive int `json:"accepted_kept_alive"`
	// OnKilledWorker counts the AcceptedKeptAlive requests whose
	// connection a worker the run SIGKILLed held (it answered the
	// connection's previous request): a crash's own loss. The rest were
	// lost on connections of workers that did not crash. Strict client
	// only.
	OnKilledWorker int `json:"on_killed_worker"`
	// Refused counts dials refused at once (ECONNREFUSED).
	Refused int `json:"refused"`
	// DialTimeout counts dials that met their connect bound (a full
	// backlog drops the SYN); ResponseTimeout requests whose deadline
	// passed on an established connection.
	DialTimeout     int `json:"dial_timeout"`
	ResponseTimeout int `json:"response_timeout"`
	// Other is everything else (5xx, garbage, a dial reset).
	Other int `json:"other"`
	// ByError counts every failure by "<stage> <kind>", such as
	// "read ECONNRESET" or "dial ECONNREFUSED".
	ByError map[string]int `json:"by_error"`
	// Samples holds one error message per ByError key.
	Samples map[string]string `json:"samples,omitempty"`
}

// LossOf returns the Losses field a failed request counts in: "accepted",
// "refused", "dial-timeout", "response-timeout" or "other"; "" for a
// request that did not fail.
func LossOf(stage Stage, k ErrKind) string {
	established := stage == StageWrite || stage == StageRead
	switch {
	case k == KindNone:
		return ""
	case established && k.Cause() == CauseReset:
		return "accepted"
	case stage == StageDial && k == KindRefused:
		return "refused"
	case stage == StageDial && k == KindDeadline:
		return "dial-timeout"
	case established && k == KindDeadline:
		return "response-timeout"
	}
	return "other"
}

// add counts one failed request; killed holds the workers the run
// SIGKILLed.
func (l *Losses) add(r Result, killed map[int32]bool) {
	if l.ByError == nil {
		l.ByError = make(map[string]int)
	}
	l.ByError[FailureKey(r.Stage, r.Kind)]++
	switch LossOf(r.Stage, r.Kind) {
	case "accepted":
		l.Accepted++
		if r.Reused {
			l.AcceptedKeptAlive++
			if killed[r.ConnPID] { // 0 (a dialled connection) is never a killed pid
				l.OnKilledWorker++
			}
		} else {
			l.AcceptedNew++
		}
	case "refused":
		l.Refused++
	case "dial-timeout":
		l.DialTimeout++
	case "response-timeout":
		l.ResponseTimeout++
	default:
		l.Other++
	}
}

// StopReport is what the term action showed: how the master ended after
// SIGTERM and what the load met afterwards.
type StopReport struct {
	TermAtS float64 `json:"term_at_s"` // when SIGTERM was sent, after the start of the load
	Master  int     `json:"master"`
	// ExitAfterS is how long the master took to exit after SIGTERM; nil
	// when not measured (see Exit).
	ExitAfterS *float64 `json:"exit_after_s,omitempty"`
	// Exit is the master's exit status, or why the time is unknown.
	Exit string `json:"exit"`
	// OKAfter counts successful responses completed after SIGTERM, the
	// last of them LastOKAfterS after it.
	OKAfter      int     `json:"ok_after"`
	LastOKAfterS float64 `json:"last_ok_after_s"`
	// FailedBefore counts failures before SIGTERM (expected 0).
	FailedBefore int `json:"failed_before"`
	// ReadyzFailedAfterMS is how long after SIGTERM the readiness path
	// began to fail, for targets that have one.
	ReadyzFailedAfterMS *float64 `json:"readyz_failed_after_ms,omitempty"`
	termAfter           time.Duration
}

// Summary is the report of one target's run.
type Summary struct {
	Target  string `json:"target"`
	Skipped string `json:"skipped,omitempty"`
	// Round is the run's round with -rounds (1, 2, ...); 0 for a single
	// round.
	Round int `json:"round,omitempty"`
	// Recycle is set in the recycle scenario, for the recycling run and
	// for its baseline alike.
	Recycle *RecycleStats `json:"recycle,omitempty"`
	// Interrupted is set when the harness was stopped by a signal.
	Interrupted bool    `json:"interrupted,omitempty"`
	Client      string  `json:"client"`
	Conns       int     `json:"conns"`
	Workers     int     `json:"workers"`
	DurationS   float64 `json:"duration_s"`

	Requests int            `json:"requests"`
	OK       int            `json:"ok"`
	Failed   int            `json:"failed"`
	FailedBy map[string]int `json:"failed_by"`
	// Unfinished requests were still waiting when the run ended; they
	// are in neither OK nor Failed.
	Unfinished         int     `json:"unfinished"`
	LongestUnfinishedS float64 `json:"longest_unfinished_s"`
	// ErrorSamples holds one error message per failure cause.
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	// Losses splits Failed by where the requests failed.
	Losses Losses `json:"losses"`
	// KilledWorkers lists the workers the run's faults SIGKILLed.
	KilledWorkers []int `json:"killed_workers,omitempty"`
	// Stop is set when the term action signalled the master.
	Stop *StopReport `json:"stop,omitempty"`

	// SteadyRPS is the mean throughput after warm-up and before the first
	// fault; 0 when that window holds no complete bucket.
	SteadyRPS    float64    `json:"steady_rps"`
	SteadyWindow [2]float64 `json:"steady_window_s"`
	// FaultMinRPS and FaultAvgRPS cover the fault window, from the first
	// fault to 1 s after the last one.
	FaultMinRPS float64    `json:"fault_min_rps"`
	FaultAvgRPS float64    `json:"fault_avg_rps"`
	FaultWindow [2]float64 `json:"fault_window_s"`

	LatencyP50MS float64 `json:"latency_p50_ms"`
	LatencyP99MS float64 `json:"latency_p99_ms"`
	LatencyMaxMS float64 `json:"latency_max_ms"`

	Faults    []FaultRecord `json:"faults"`
	PIDShares []PIDShare    `json:"pid_shares"`
	// SlotShares counts successful responses per worker= slot (-1 when the
	// body has none, as gunicorn's "worker=?").
	SlotShares map[int]int `json:"slot_counts"`
	// SteadySlotShares counts them after the warm-up only: how the load
	// is spread once the start's burst of connections has settled.
	SteadySlotShares map[int]int `json:"steady_slot_counts"`
	// SteadyConnShares counts the client's connections per slot — the
	// slot of each connection's latest answer — at ConnSamples instants
	// spread over the steady window, summed: how the open connections,
	// not the requests, are spread.
	SteadyConnShares map[int]int `json:"steady_conn_counts"`
	// MasterExit says how the target's master ended at the end of the run.
	MasterExit string     `json:"master_exit"`
	Leftovers  []Leftover `json:"leftovers"`
	LogPath    string     `json:"log"`

	Buckets []Bucket `json:"-"`
}

// Summarize fills s's statistics from the run's results. s.Faults must
// hold the fired faults; their recovery is computed here.
func (s *Summary) Summarize(results []Result, warmup, total time.Duration) {
	s.DurationS = total.Seconds()
	s.Buckets = Bucketize(results, BucketWidth, total)
	s.FailedBy = make(map[string]int)
	for _, c := range Causes {
		s.FailedBy[c.String()] = 0
	}
	shares := make(map[int]int)
	s.SlotShares = make(map[int]int)
	s.SteadySlotShares = make(map[int]int)
	lat := make([]time.Duration, 0, len(results))
	s.Losses.ByError = make(map[string]int)
	killed := make(map[int32]bool, len(s.KilledWorkers))
	for _, pid := range s.KilledWorkers {
		killed[int32(pid)] = true
	}
	for _, r := range results {
		s.Requests++
		if s.Stop != nil && r.End >= s.Stop.termAfter && r.Cause == OK {
			s.Stop.OKAfter++
			s.Stop.LastOKAfterS = max(s.Stop.LastOKAfterS, (r.End - s.Stop.termAfter).Seconds())
		}
		if r.Cause != OK {
			s.Failed++
			s.FailedBy[r.Cause.String()]++
			s.Losses.add(r, killed)
			if s.Stop != nil && r.End < s.Stop.termAfter {
				s.Stop.FailedBefore++
			}
			continue
		}
		s.OK++
		lat = append(lat, r.Latency)
		shares[int(r.PID)]++
		s.SlotShares[int(r.Slot)]++
		if r.End >= warmup {
			s.SteadySlotShares[int(r.Slot)]++
		}
	}
	s.latencies(lat)
	s.pidShares(shares)
	s.windows(warmup, total)
	s.SteadyConnShares = connShares(results, warmup, time.Duration(s.SteadyWindow[1]*float64(time.Second)))
	for i := range s.Faults {
		s.Faults[i].recovery(s.Buckets, s.SteadyRPS)
	}
}

// latencies sets the percentiles of the successful requests.
func (s *Summary) latencies(lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	s.LatencyP50MS = ms(Percentile(lat, 0.50))
	s.LatencyP99MS = ms(Percentile(lat, 0.99))
	s.LatencyMaxMS = ms(lat[len(lat)-1])
}

// Percentile returns the q-quantile (0..1) of sorted by the nearest-rank
// method.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// pidShares sets the per-pid shares, largest first.
func (s *Summary) pidShares(counts map[int]int) {
	s.PIDShares = s.PIDShares[:0]
	for pid, n := range counts {
		s.PIDShares = append(s.PIDShares, PIDShare{PID: pid, Count: n, Share: float64(n) / float64(max(s.OK, 1))})
	}
	slices.SortFunc(s.PIDShares, func(a, b PIDShare) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.PID, b.PID))
	})
}

// windows sets the steady and fault-window throughputs.
func (s *Summary) windows(warmup, total time.Duration) {
	first, last := total, time.Duration(-1)
	for _, f := range s.Faults {
		if f.Fired {
			first = min(first, f.firedAfter)
			last = max(last, f.firedAfter)
		}
	}
	s.SteadyWindow = [2]float64{warmup.Seconds(), first.Seconds()}
	s.SteadyRPS, _, _ = rateIn(s.Buckets, warmup, first)
	if last < 0 {
		return
	}
	end := min(last+time.Second, total)
	from := first.Truncate(BucketWidth)
	s.FaultWindow = [2]float64{from.Seconds(), end.Seconds()}
	s.FaultAvgRPS, s.FaultMinRPS, _ = rateIn(s.Buckets, from, end)
}

// rateIn returns the average and minimum OK rate of the buckets that lie
// entirely within [from, to), and how many there are.
func rateIn(bs []Bucket, from, to time.Duration) (avg, low float64, n int) {
	var sum float64
	for _, b := range bs {
		if b.Start < from || b.Start+BucketWidth > to {
			continue
		}
		r := b.OKRate(BucketWidth)
		if n == 0 || r < low {
			low = r
		}
		sum += r
		n++
	}
	if n == 0 {
		return 0, 0, 0
	}
	return sum / float64(n), low, n
}

// DipLookahead is how long after a fault a dip below 90% of steady is
// attributed to it.
const DipLookahead = time.Second

// recovery computes how long after the fault throughput was back to at
// least 90% of steady: the start of the first bucket at or above that
// level after the first bucket below it within DipLookahead of the fault.
// With no dip the recovery is 0.
func (f *FaultRecord) recovery(bs []Bucket, steady float64) {
	switch {
	case !f.Fired:
		f.Recovery = "n/a (not fired)"
		return
	case !f.Injected:
		f.Recovery = "n/a (not injected)"
		return
	case steady <= 0:
		f.Recovery = "n/a (no steady baseline)"
		return
	}
	level := 0.9 * steady
	at := f.firedAfter
	i0 := int(at / BucketWidth)
	dip := -1
	for i := i0; i < len(bs) && bs[i].Start < at+DipLookahead; i++ {
		if bs[i].OKRate(BucketWidth) < level {
			dip = i
			break
		}
	}
	if dip < 0 {
		zero := 0.0
		f.Recovery, f.RecoveryS = "no dip", &zero
		return
	}
	for j := dip + 1; j < len(bs); j++ {
		if bs[j].OKRate(BucketWidth) >= level {
			d := max(bs[j].Start-at, 0).Seconds()
			f.Recovery, f.RecoveryS = fmt.Sprintf("%.2fs", d), &d
			return
		}
	}
	f.Recovery = "not recovered by the end of the run"
}

// writeLosses prints the failures by where they failed.
func (s *Summary) writeLosses(w io.Writer) {
	l := s.Losses
	fmt.Fprintf(w, "failed by stage: lost on accepted connections %d (new %d, kept-alive %d), refused dials %d, timeouts dial %d response %d, other %d\n",
		l.Accepted, l.AcceptedNew, l.AcceptedKeptAlive, l.Refused, l.DialTimeout, l.ResponseTimeout, l.Other)
	if len(s.KilledWorkers) > 0 && s.Client == string(Strict) {
		fmt.Fprintf(w, "  kept-alive losses on connections of the %d killed workers: %d; on connections of other workers: %d\n",
			len(s.KilledWorkers), l.OnKilledWorker, l.AcceptedKeptAlive-l.OnKilledWorker)
	}
	if len(l.ByError) == 0 {
		return
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l.ByError)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, l.ByError[k]))
	}
	fmt.Fprintf(w, "  by error: %s\n", strings.Join(parts, " "))
	for _, k := range slices.Sorted(maps.Keys(l.Samples)) {
		fmt.Fprintf(w, "  e.g. %s: %s\n", k, l.Samples[k])
	}
}

// WriteText prints the summary for people.
func (s *Summary) WriteText(w io.Writer) {
	if s.Skipped != "" {
		fmt.Fprintf(w, "== target=%s ==\n%s\n", s.Target, s.Skipped)
		return
	}
	fmt.Fprintf(w, "== target=%s%s client=%s conns=%d workers=%d duration=%.1fs ==\n",
		s.Target, s.runName(), s.Client, s.Conns, s.Workers, s.DurationS)
	if s.Interrupted {
		fmt.Fprintf(w, "INTERRUPTED after %.1fs: partial results\n", s.DurationS)
	}
	var causes []string
	for _, c := range Causes {
		causes = append(causes, fmt.Sprintf("%s=%d", c, s.FailedBy[c.String()]))
	}
	fmt.Fprintf(w, "requests:   %d ok, %d failed (%s)\n", s.OK, s.Failed, strings.Join(causes, " "))
	s.writeLosses(w)
	if s.LongestUnfinishedS >= 0.5 {
		fmt.Fprintf(w, "  %d request(s) unanswered at the end of the run, the oldest waiting %.2fs (not counted as failed)\n",
			s.Unfinished, s.LongestUnfinishedS)
	}
	if s.SteadyRPS > 0 {
		fmt.Fprintf(w, "throughput: steady %.0f req/s (%.2fs-%.2fs)\n", s.SteadyRPS, s.SteadyWindow[0], s.SteadyWindow[1])
	} else {
		fmt.Fprintf(w, "throughput: steady n/a (no complete 250ms bucket in %.2fs-%.2fs)\n", s.SteadyWindow[0], s.SteadyWindow[1])
	}
	if s.FaultWindow != [2]float64{} {
		fmt.Fprintf(w, "            during faults (%.2fs-%.2fs): min %.0f req/s per 250ms, avg %.0f req/s\n",
			s.FaultWindow[0], s.FaultWindow[1], s.FaultMinRPS, s.FaultAvgRPS)
	}
	fmt.Fprintf(w, "latency:    p50 %.2fms  p99 %.2fms  max %.2fms (ok requests)\n", s.LatencyP50MS, s.LatencyP99MS, s.LatencyMaxMS)
	if len(s.Faults) > 0 {
		fmt.Fprintf(w, "faults:\n")
	}
	for _, f := range s.Faults {
		if f.Fired {
			fmt.Fprintf(w, "  at=%.2fs action=%s target=%s: %s", f.At, f.Action, s.Target, f.Detail)
		} else {
			fmt.Fprintf(w, "  (scheduled at=%.2fs) action=%s target=%s: %s", f.Scheduled, f.Action, s.Target, f.Detail)
		}
		if f.Injected {
			fmt.Fprintf(w, " | back to 90%% of steady: %s", f.Recovery)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "responses per pid:")
	for _, p := range s.PIDShares {
		fmt.Fprintf(w, " %d=%.1f%%", p.PID, 100*p.Share)
	}
	fmt.Fprintf(w, " (%d pids)\n", len(s.PIDShares))
	if len(s.SlotShares) > 1 || s.SlotShares[-1] == 0 {
		fmt.Fprintf(w, "responses per worker slot:")
		for _, slot := range slices.Sorted(maps.Keys(s.SlotShares)) {
			fmt.Fprintf(w, " %d=%.1f%%", slot, 100*float64(s.SlotShares[slot])/float64(max(s.OK, 1)))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "master:     %s\n", s.MasterExit)
	if st := s.Stop; st != nil {
		fmt.Fprintf(w, "after TERM: %d ok, the last %.2fs after it; %d failed before it\n", st.OKAfter, st.LastOKAfterS, st.FailedBefore)
		if st.ReadyzFailedAfterMS != nil {
			fmt.Fprintf(w, "readiness:  /readyz failed %.1fms after TERM\n", *st.ReadyzFailedAfterMS)
		}
	}
	if len(s.Leftovers) == 0 {
		fmt.Fprintf(w, "left behind after master exit: none\n")
	} else {
		fmt.Fprintf(w, "left behind after master exit: %d process(es) (killed by the harness)\n", len(s.Leftovers))
		for _, l := range s.Leftovers {
			fmt.Fprintf(w, "  pid=%d %s\n", l.PID, l.Cmdline)
		}
	}
	if st := s.Recycle; st != nil {
		logged := "n/a"
		if st.LogReplacements >= 0 {
			logged = strconv.Itoa(st.LogReplacements)
		}
		fmt.Fprintf(w, "recycle:    %d pids answered (%d replacements; in the log: %s); longest time without a response %.0fms, longest run of empty 250ms buckets %.0fms\n",
			st.WorkerPIDs, st.Replacements, logged, st.LongestGapMS, st.ZeroBucketsMS)
	}
	if s.LogPath != "" {
		fmt.Fprintf(w, "target log: %s\n", s.LogPath)
	}
}

// runName tells a run apart from the target's other runs: " recycle
// (max-requests 20000, jitter 2000) round=2"; "" for the only run.
func (s *Summary) runName() string {
	var n string
	if st := s.Recycle; st != nil && st.On() {
		n = fmt.Sprintf(" recycle (max-requests %d, jitter %d)", st.MaxRequests, st.Jitter)
	} else if st != nil {
		n = " baseline (no recycling)"
	}
	if s.Round > 0 {
		n += fmt.Sprintf(" round=%d", s.Round)
	}
	return n
}

// FileName is the base name of the run's CSV and log files:
// "gracefork", or "gracefork-recycle-r2" among several runs.
func (s *Summary) FileName() string {
	return runFileName(s.Target, s.Recycle, s.Round)
}

// runFileName names a run's files after its target, variant and round.
func runFileName(target string, st *RecycleStats, round int) string {
	n := target
	if st != nil {
		n += "-" + st.Variant()
	}
	if round > 0 {
		n += "-r" + strconv.Itoa(round)
	}
	return n
}

// ConnSamples is how many instants connShares samples.
const ConnSamples = 8

// connShares counts, at ConnSamples instants evenly spread over
// (from, to], each connection under the slot of its latest successful
// answer, if it had one since the previous instant (a connection that
// went quiet or failed is not counted). results must hold each
// connection's results in order of End (as Run returns them).
func connShares(results []Result, from, to time.Duration) map[int]int {
	out := make(map[int]int)
	if to <= from {
		return out
	}
	at := func(k int) time.Duration { return from + (to-from)*time.Duration(k)/ConnSamples }
	for i := 0; i < len(results); {
		j := i
		for j < len(results) && results[j].Conn == results[i].Conn {
			j++
		}
		k, slot, fresh := 1, -2, false
		for _, r := range results[i:j] {
			for k <= ConnSamples && r.End > at(k) {
				if fresh {
					out[slot]++
				}
				k, fresh = k+1, false
			}
			if r.Cause == OK && r.End > at(k-1) {
				slot, fresh = int(r.Slot), true
			}
		}
		for ; k <= ConnSamples; k++ {
			if fresh && at(k) <= to {
				out[slot]++
			}
			fresh = false
		}
		i = j
	}
	return out
}
