package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// summary is the median, p90 and max of a sample.
type summary struct {
	N                int
	Median, P90, Max float64
}

// summarize returns the median (mean of the two middle values for an even
// count), the nearest-rank p90 and the max of xs; the zero summary for no
// values.
func summarize(xs []float64) summary {
	if len(xs) == 0 {
		return summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	rank := (9*n + 9) / 10 // ceil(0.9 n), nearest rank, 1-based
	return summary{N: n, Median: med, P90: s[rank-1], Max: s[n-1]}
}

// median is the median of the positive values of xs (a failed run is
// recorded as 0).
func median(xs []float64) float64 {
	var pos []float64
	for _, x := range xs {
		if x > 0 {
			pos = append(pos, x)
		}
	}
	return summarize(pos).Median
}

// ms converts a duration to milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// parseVmRSS returns VmRSS in KiB from the text of /proc/<pid>/status.
func parseVmRSS(status []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("malformed VmRSS line %q", sc.Text())
		}
		return strconv.Atoi(f[0])
	}
	return 0, fmt.Errorf("no VmRSS line")
}

// rssKiB reads VmRSS of pid.
func rssKiB(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	return parseVmRSS(b)
}

// wrkResult is what the harness takes from wrk's output.
type wrkResult struct {
	RPS float64
	// Errors is the sum of socket errors (connect, read, write, timeout)
	// and non-2xx/3xx responses.
	Errors int
	// StopErr is set when the target did not stop cleanly afterwards.
	StopErr error
}

// parseWrk reads "Requests/sec:", "Socket errors:" and "Non-2xx or 3xx
// responses:" from wrk's text output.
func parseWrk(out []byte) (wrkResult, error) {
	var r wrkResult
	found := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "Requests/sec:"):
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, "Requests/sec:")), 64)
			if err != nil {
				return r, fmt.Errorf("malformed %q: %w", line, err)
			}
			r.RPS, found = v, true
		case strings.HasPrefix(line, "Socket errors:"):
			// Socket errors: connect 0, read 12, write 0, timeout 3
			for _, part := range strings.Split(strings.TrimPrefix(line, "Socket errors:"), ",") {
				f := strings.Fields(part)
				if len(f) != 2 {
					return r, fmt.Errorf("malformed %q", line)
				}
				n, err := strconv.Atoi(f[1])
				if err != nil {
					return r, fmt.Errorf("malformed %q: %w", line, err)
				}
				r.Errors += n
			}
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "Non-2xx or 3xx responses:")))
			if err != nil {
				return r, fmt.Errorf("malformed %q: %w", line, err)
			}
			r.Errors += n
		}
	}
	if !found {
		return r, fmt.Errorf("no Requests/sec line in wrk output")
	}
	return r, nil
}

// envWithout returns environ without the variables named in names, plus
// extra.
func envWithout(environ []string, names []string, extra ...string) []string {
	out := make([]string, 0, len(environ)+len(extra))
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(names, k) {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// loadavg returns the 1-minute load average from /proc/loadavg, to show
// how busy the (shared) machine was around a measurement.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}
