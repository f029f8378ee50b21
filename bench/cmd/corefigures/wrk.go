package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/gracefork/gracefork/bench/internal/chaos"
)

// variant is one server configuration measured with wrk.
type variant struct {
	Name    string
	Built   *chaos.Built
	Workers int
	Environ []string // nil: inherit
}

// wrkRun starts v on a free port, runs a short wrk warm-up, then
// `wrk -t1 -c<conns> -d<d>`, and stops v.
func wrkRun(ctx context.Context, v variant, conns int, d time.Duration, logDir string) (wrkResult, error) {
	addr, err := chaos.FreePort()
	if err != nil {
		return wrkResult{}, err
	}
	in, err := v.Built.Start(ctx, addr, v.Workers, v.Environ, filepath.Join(logDir, v.Name+".log"))
	if err != nil {
		return wrkResult{}, err
	}
	defer in.Kill()
	url := "http://" + addr + "/"
	if _, err := wrk(ctx, url, conns, time.Second); err != nil {
		return wrkResult{}, fmt.Errorf("warm-up: %w", err)
	}
	r, err := wrk(ctx, url, conns, d)
	// A slow stop (gunicorn under load) does not void the measurement.
	if _, serr := in.Stop(15 * time.Second); serr != nil && err == nil {
		r.StopErr = serr
	}
	return r, err
}

// wrk runs wrk once against url (always a loopback address chosen by
// FreePort) and parses its output.
func wrk(ctx context.Context, url string, conns int, d time.Duration) (wrkResult, error) {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	secs := max(1, int(d.Round(time.Second)/time.Second))
	cmd := exec.CommandContext(ctx, "wrk", "-t1", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", secs), url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	return parseWrk(out)
}

// interleave runs the variants round by round (A B C A B C ...) and
// returns each variant's req/s per round (0 where a run failed).
func interleave(ctx context.Context, vs []variant, rounds, conns int, d time.Duration, logDir string, log func(string, ...any)) (map[string][]float64, error) {
	rps := make(map[string][]float64)
	for r := range rounds {
		for _, v := range vs {
			load := loadavg()
			res, err := wrkRun(ctx, v, conns, d, logDir)
			if errors.Is(ctx.Err(), context.Canceled) {
				return rps, ctx.Err()
			}
			if err != nil {
				log("  round %d %-22s error: %v", r+1, v.Name, err)
				rps[v.Name] = append(rps[v.Name], 0)
				continue
			}
			note := ""
			if res.Errors > 0 {
				note = fmt.Sprintf(" (%d wrk errors)", res.Errors)
			}
			if res.StopErr != nil {
				note += fmt.Sprintf(" (stop: %v)", res.StopErr)
			}
			log("  round %d %-22s %9.0f req/s%s (loadavg before: %s)", r+1, v.Name, res.RPS, note, load)
			rps[v.Name] = append(rps[v.Name], res.RPS)
		}
	}
	return rps, nil
}

// ratios returns a[i]/b[i] for every round where both ran.
func ratios(a, b []float64) []float64 {
	var out []float64
	for i := range min(len(a), len(b)) {
		if a[i] > 0 && b[i] > 0 {
			out = append(out, a[i]/b[i])
		}
	}
	return out
}
