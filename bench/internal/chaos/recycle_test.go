package chaos

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLongestGapAndZeroStretch(t *testing.T) {
	rs := []Result{
		{End: 10 * ms, Cause: OK},
		{End: 300 * ms, Cause: OK},
		{End: 400 * ms, Cause: CauseReset}, // a failure does not end a gap
		{End: 1100 * ms, Cause: OK},
		{End: 1200 * ms, Cause: OK},
		{End: 5 * time.Second, Cause: OK}, // after total: left out
	}
	if g := LongestGap(rs, 1500*ms); g != 800*ms {
		t.Errorf("LongestGap = %s, want 800ms (300ms to 1100ms)", g)
	}
	if g := LongestGap(nil, 2*time.Second); g != 2*time.Second {
		t.Errorf("LongestGap of nothing = %s, want the whole run", g)
	}
	if g := LongestGap(rs[:1], time.Second); g != 990*ms {
		t.Errorf("LongestGap = %s, want 990ms (the tail counts)", g)
	}
	bs := Bucketize(rs, BucketWidth, 1500*ms) // ok: 1 1 0 0 1 0
	if z := ZeroStretch(bs); z != 500*ms {
		t.Errorf("ZeroStretch = %s, want 500ms", z)
	}
	if z := ZeroStretch([]Bucket{{OK: 3}}); z != 0 {
		t.Errorf("ZeroStretch = %s, want 0", z)
	}
}

func TestReplacementsFromLogs(t *testing.T) {
	gracefork := []byte(`time=... level=INFO msg="recycle due" slot=0 reason=requests value="20034 requests, limit 20000"
time=... level=INFO msg=recycling slot=0 generation=3 pid=11 reason=requests
time=... level=INFO msg=recycled slot=0 generation=3 pid=11 reason=requests
time=... level=INFO msg="recycle failed" slot=1
time=... level=INFO msg=recycled slot=1 generation=4 pid=12 reason=requests
`)
	if n := graceforkReplacements(gracefork, 2); n != 2 {
		t.Errorf("gracefork replacements = %d, want 2", n)
	}
	gunicorn := []byte(`[INFO] Booting worker with pid: 10
[INFO] Booting worker with pid: 11
[INFO] Booting worker with pid: 12
`)
	if n := gunicornReplacements(gunicorn, 2); n != 1 {
		t.Errorf("gunicorn replacements = %d, want 1", n)
	}
	if n := gunicornReplacements(gunicorn[:30], 2); n != 0 {
		t.Errorf("gunicorn replacements of a partial log = %d, want 0", n)
	}
}

func TestRecycleArgs(t *testing.T) {
	r := Recycle{MaxRequests: 20000, Jitter: 2000}
	if got := graceforkRecycleArgs(r); !reflect.DeepEqual(got, []string{"-max-requests", "20000", "-max-requests-jitter", "2000"}) {
		t.Errorf("gracefork args %q", got)
	}
	if got := gunicornRecycleArgs(r); !reflect.DeepEqual(got, []string{"--max-requests", "20000", "--max-requests-jitter", "2000"}) {
		t.Errorf("gunicorn args %q", got)
	}
	for _, name := range TargetNames {
		tg, _ := LookupTarget(name)
		if can := tg.recycleArgs != nil; can != (name == TGracefork || name == TGraceforkReusePort || name == TGunicorn) {
			t.Errorf("%s: recycles = %v", name, can)
		}
	}
}

// recycleRun is a summary of the recycle scenario with the numbers the
// comparison reads.
func recycleRun(target string, round int, on bool, failed int, rps float64, pids, logged int, gapMS float64) *Summary {
	r := Recycle{}
	if on {
		r = Recycle{MaxRequests: 20000, Jitter: 2000}
	}
	return &Summary{Target: target, Round: round, Workers: 2, Failed: failed, SteadyRPS: rps,
		Recycle: &RecycleStats{Recycle: r, WorkerPIDs: pids, Replacements: pids - 2, LogReplacements: logged, LongestGapMS: gapMS}}
}

func TestCompareRecycle(t *testing.T) {
	sums := []*Summary{
		recycleRun("gracefork", 1, false, 0, 1000, 2, 0, 2),
		recycleRun("gracefork", 1, true, 0, 950, 8, 6, 3),
		recycleRun("gunicorn", 1, false, 0, 400, 2, 0, 5),
		recycleRun("gunicorn", 1, true, 549, 276, 5, 3, 250),
		recycleRun("gunicorn", 2, true, 300, 300, 5, 3, 200), // its baseline was interrupted
		recycleRun("gracefork", 2, true, 2, 900, 10, -1, 4),
		recycleRun("gracefork", 2, false, 0, 1000, 2, 0, 1),
		{Target: "nethttp", Skipped: "nethttp: skipped", Recycle: &RecycleStats{Recycle: Recycle{MaxRequests: 1}}},
	}
	rows := CompareRecycle(sums)
	var got []string
	for _, r := range rows {
		pct := -1.0
		if p := r.Recycle.Recycle.BaselinePct; p != nil {
			pct = *p
		}
		got = append(got, fmt.Sprintf("%s %d %.0f %v", r.Target, r.Round, pct, r.Baseline != nil))
	}
	want := []string{"gracefork 1 95 true", "gracefork 2 90 true", "gunicorn 1 69 true", "gunicorn 2 -1 false"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rows %q, want %q", got, want)
	}

	var out strings.Builder
	WriteRecycleTable(&out, rows)
	text := out.String()
	for _, line := range []string{
		// round 1: 0 failed, 950 req/s = 95 % of 1000, 6 replacement pids, 6 in the log
		`gracefork  1            0            950 (95.0%)              6          6         3ms | 0, 1000, 2ms`,
		`gracefork  2            2            900 (90.0%)              8        n/a         4ms | 0, 1000, 1ms`,
		`gracefork  median       1                  92.5%              7          6         4ms | 0, 1000, 2ms`,
		`gunicorn   2          300              300 (n/a)              3          3       200ms | not run`,
		`gunicorn   median     424                  69.0%              3          3       225ms | 0, 400, 5ms`,
	} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("table lacks\n%s\n%s", line, text)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		xs   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := Median(tt.xs); got != tt.want {
			t.Errorf("Median(%v) = %v, want %v", tt.xs, got, tt.want)
		}
	}
}

func TestRunFileNames(t *testing.T) {
	for _, tt := range []struct {
		st    *RecycleStats
		round int
		want  string
	}{
		{nil, 0, "gracefork"},
		{nil, 2, "gracefork-r2"},
		{&RecycleStats{}, 0, "gracefork-baseline"},
		{&RecycleStats{Recycle: Recycle{MaxRequests: 5}}, 3, "gracefork-recycle-r3"},
	} {
		s := &Summary{Target: "gracefork", Recycle: tt.st, Round: tt.round}
		if got := s.FileName(); got != tt.want {
			t.Errorf("FileName = %q, want %q", got, tt.want)
		}
	}
}
