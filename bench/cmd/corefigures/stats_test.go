package main

import (
	"slices"
	"testing"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		in   []float64
		want summary
	}{
		{nil, summary{}},
		{[]float64{5}, summary{1, 5, 5, 5}},
		{[]float64{4, 1, 3, 2}, summary{4, 2.5, 4, 4}},
		{[]float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, summary{10, 5.5, 9, 10}},
		{[]float64{20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, summary{20, 10.5, 18, 20}},
		{[]float64{3, 1, 2}, summary{3, 2, 3, 3}},
	}
	for _, tt := range tests {
		in := slices.Clone(tt.in)
		if got := summarize(tt.in); got != tt.want {
			t.Errorf("summarize(%v) = %+v, want %+v", tt.in, got, tt.want)
		}
		if !slices.Equal(in, tt.in) {
			t.Errorf("summarize reordered its input: %v", tt.in)
		}
	}
}

func TestParseVmRSS(t *testing.T) {
	status := "Name:\thello\nVmPeak:\t 1243 kB\nVmRSS:\t    7384 kB\nThreads:\t5\n"
	if got, err := parseVmRSS([]byte(status)); err != nil || got != 7384 {
		t.Errorf("parseVmRSS = %d, %v; want 7384", got, err)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t12\n", "VmRSS:\tx kB\n"} {
		if _, err := parseVmRSS([]byte(bad)); err == nil {
			t.Errorf("parseVmRSS(%q): no error", bad)
		}
	}
}

const wrkOut = `Running 10s test @ http://127.0.0.1:40001/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.03ms  412.11us  12.01ms   80.00%
    Req/Sec    61.93k     3.01k   66.20k    72.00%
  616283 requests in 10.00s, 84.04MB read
  Socket errors: connect 0, read 2, write 1, timeout 0
  Non-2xx or 3xx responses: 4
Requests/sec:  61620.44
Transfer/sec:      8.40MB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk([]byte(wrkOut))
	if err != nil || r.RPS != 61620.44 || r.Errors != 7 {
		t.Errorf("parseWrk = %+v, %v; want 61620.44 req/s, 7 errors", r, err)
	}
	clean := "  10 requests in 1.00s, 1KB read\nRequests/sec:     10.00\n"
	if r, err := parseWrk([]byte(clean)); err != nil || r.RPS != 10 || r.Errors != 0 {
		t.Errorf("parseWrk(clean) = %+v, %v", r, err)
	}
	for _, bad := range []string{"", "Requests/sec: fast\n", "Requests/sec: 1\n  Socket errors: connect x\n"} {
		if _, err := parseWrk([]byte(bad)); err == nil {
			t.Errorf("parseWrk(%q): no error", bad)
		}
	}
}

func TestEnvWithout(t *testing.T) {
	env := []string{"PATH=/bin", "GOMAXPROCS=3", "HOME=/root", "GOMAXPROCSX=1"}
	got := envWithout(env, []string{"GOMAXPROCS"}, "GOMAXPROCS=2")
	want := []string{"PATH=/bin", "HOME=/root", "GOMAXPROCSX=1", "GOMAXPROCS=2"}
	if !slices.Equal(got, want) {
		t.Errorf("envWithout = %q, want %q", got, want)
	}
}

func TestRatios(t *testing.T) {
	got := ratios([]float64{10, 0, 30, 40}, []float64{5, 5, 0})
	if !slices.Equal(got, []float64{2}) {
		t.Errorf("ratios = %v, want [2]", got)
	}
}

func TestMedianSkipsFailedRuns(t *testing.T) {
	if got := median([]float64{30, 0, 10}); got != 20 {
		t.Errorf("median = %v, want 20", got)
	}
}
