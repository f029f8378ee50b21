// Command scrapebench measures gracefork's merged /metrics (the master's
// MetricsAddr) against Gunicorn + uvicorn with prometheus_client's
// multiprocess mode. Loopback only, bounded by its flags.
//
//	go run ./cmd/scrapebench -part latency   # 8 workers x 1,000 series: scrape p50/p99/max, idle and loaded
//	go run ./cmd/scrapebench -part recycle   # both servers recycling under load, scraped every 500 ms
//
// The gracefork target is bench/cmd/series-target (its own module, built
// with the repository's library); the gunicorn target is a small ASGI app
// written to a temporary directory.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"
)

type config struct {
	repo        string
	part        string
	workers     int
	series      int
	scrapes     int
	conns       int
	rounds      int
	duration    time.Duration
	interval    time.Duration
	maxRequests int
	recWorkers  int
	out         string
}

func main() {
	var c config
	flag.StringVar(&c.repo, "repo", "..", "repository root (holds bench/cmd/series-target)")
	flag.StringVar(&c.part, "part", "all", "latency, recycle or all")
	flag.IntVar(&c.workers, "workers", 8, "latency: workers")
	flag.IntVar(&c.series, "series", 1000, "latency: extra series per worker")
	flag.IntVar(&c.scrapes, "scrapes", 200, "latency: scrapes idle and again under load")
	flag.IntVar(&c.conns, "conns", 16, "keep-alive connections of the load")
	flag.IntVar(&c.rounds, "rounds", 3, "rounds (targets interleaved); medians are reported")
	flag.DurationVar(&c.duration, "duration", 25*time.Second, "recycle: loaded run per target and round")
	flag.DurationVar(&c.interval, "interval", 500*time.Millisecond, "recycle: scrape cadence")
	flag.IntVar(&c.maxRequests, "max-requests", 1000, "recycle: requests per worker before it is recycled (both servers)")
	flag.IntVar(&c.recWorkers, "recycle-workers", 2, "recycle: workers of both servers")
	flag.StringVar(&c.out, "out", "", "directory for CSV files and report.txt")
	flag.Parse()
	if c.part != "all" && c.part != "latency" && c.part != "recycle" {
		fmt.Fprintf(os.Stderr, "scrapebench: -part %q: want latency, recycle or all\n", c.part)
		os.Exit(2)
	}
	if c.workers < 1 || c.recWorkers < 1 || c.scrapes < 1 || c.rounds < 1 || c.conns < 1 || c.maxRequests < 1 {
		fmt.Fprintln(os.Stderr, "scrapebench: -workers, -recycle-workers, -scrapes, -rounds, -conns and -max-requests must be at least 1")
		os.Exit(2)
	}
	if err := run(context.Background(), c); err != nil {
		log.Fatalf("scrapebench: %v", err)
	}
}

func run(ctx context.Context, c config) error {
	tmp, err := os.MkdirTemp("", "scrapebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin, err := buildTarget(c.repo, tmp)
	if err != nil {
		return err
	}
	var report strings.Builder
	w := io.MultiWriter(os.Stdout, &report)
	if c.out != "" {
		if err := os.MkdirAll(c.out, 0o755); err != nil {
			return err
		}
	}
	if c.part == "all" || c.part == "latency" {
		var rounds []latencyResult
		for r := 1; r <= c.rounds; r++ {
			res, err := latencyRound(ctx, c, bin, tmp)
			if err != nil {
				return fmt.Errorf("latency round %d: %w", r, err)
			}
			fmt.Fprintf(os.Stderr, "latency round %d: %+v\n", r, res)
			rounds = append(rounds, res)
		}
		writeLatencyReport(w, c, rounds)
	}
	if c.part == "all" || c.part == "recycle" {
		var results []recycleResult
		for r := 1; r <= c.rounds; r++ {
			for _, t := range []string{"gracefork", "gunicorn"} {
				res, err := recycleRound(ctx, c, t, bin, tmp)
				if err != nil {
					fmt.Fprintf(w, "%s round %d: skipped: %v\n", t, r, err)
					continue
				}
				res.round = r
				fmt.Fprintf(os.Stderr, "recycle %s round %d: %s\n", t, r, res.summary())
				results = append(results, res)
				if c.out != "" {
					if err := os.WriteFile(filepath.Join(c.out, fmt.Sprintf("%s-r%d.csv", t, r)), []byte(res.csv()), 0o644); err != nil {
						return err
					}
				}
			}
		}
		writeRecycleReport(w, c, results)
	}
	if c.out != "" {
		return os.WriteFile(filepath.Join(c.out, "report.txt"), []byte(report.String()), 0o644)
	}
	return nil
}
