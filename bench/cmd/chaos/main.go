// Command chaos is the load and fault-injection harness for gracefork and
// its peers (a plain net/http server, fasthttp prefork, gunicorn). It
// builds and starts each target on a free loopback port, drives
// keep-alive HTTP/1.1 load against it while injecting faults (signals to
// the master, SIGKILL/SIGSTOP to workers), and reports failed requests by
// cause, throughput, latency, recovery time, the share of responses per
// worker and any process left behind.
//
// Run it from bench/:
//
//	go run ./cmd/chaos -target nethttp,fasthttp -scenario crash -out out/
//
// See bench/README.md for every flag.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gracefork/gracefork/bench/internal/chaos"
)

// options are the command's flags.
type options struct {
	targets      string
	scenario     string
	faults       string
	duration     time.Duration
	requests     int64
	conns        int
	workers      int
	client       string
	timeout      time.Duration
	dialTimeout  time.Duration
	warmup       time.Duration
	repo         string
	out          string
	jsonPath     string
	failOnError  bool
	keep         bool
	oldMasterSig string
	stopGrace    time.Duration
	rounds       int
	maxRequests  uint64
	maxReqJitter uint64
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main with its inputs and outputs passed in; it returns the exit
// code: 0 fine, 1 failed requests with -fail-on-error or a run error, 2
// bad usage, 130 interrupted.
func run(args []string, stdout, stderr io.Writer) int {
	o, cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	trapSignals(cancel, stderr)

	if err := chaos.SetChildSubreaper(); err != nil {
		fmt.Fprintln(stderr, "chaos: warning: cannot become child subreaper:", err)
	}
	tmp, err := os.MkdirTemp("", "chaos-")
	if err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 1
	}
	if !o.keep {
		defer os.RemoveAll(tmp)
	}
	cfg.Env.Tmp = tmp
	if o.out != "" {
		if err := os.MkdirAll(o.out, 0o755); err != nil {
			fmt.Fprintln(stderr, "chaos:", err)
			return 1
		}
		cfg.Env.LogDir = o.out
	}

	if sc, err := chaos.LookupScenario(o.scenario); err == nil {
		fmt.Fprintf(stdout, "chaos: scenario %s: %s\n", sc.Name, sc.Doc)
	}
	fmt.Fprintf(stdout, "chaos: targets=%s client=%s conns=%d workers=%d duration=%s timeout=%s dial-timeout=%s faults=%q\n",
		o.targets, cfg.Mode, cfg.Conns, cfg.Workers, cfg.Duration, cfg.Timeout, cfg.DialTimeout, o.faults)
	var sums []*chaos.Summary
	code := 0
	skipped := make(map[string]bool) // say it once, not once per run
	for _, c := range plan(o, cfg) {
		if ctx.Err() != nil {
			break
		}
		s, err := chaos.Run(ctx, c.target, c.cfg)
		if err != nil {
			fmt.Fprintf(stderr, "chaos: %s: %v\n", c.target, err)
			code = 1
			continue
		}
		if o.out == "" && !o.keep {
			s.LogPath = "" // in the temporary directory, removed at exit
		}
		if s.Skipped != "" && skipped[s.Target] {
			continue
		}
		skipped[s.Target] = s.Skipped != ""
		s.WriteText(stdout)
		fmt.Fprintln(stdout)
		sums = append(sums, s)
		if o.failOnError && (s.Failed > 0 || s.Skipped != "") {
			code = 1 // a skipped target must not let a CI smoke pass
		}
	}
	if r := cfg.Recycle; r != nil {
		fmt.Fprintf(stdout, "== recycle: max-requests %d, jitter %d; %d workers, %d %s conns, %s each run; %d round(s), recycling vs baseline of the same round ==\n",
			r.MaxRequests, r.Jitter, cfg.Workers, cfg.Conns, cfg.Mode, cfg.Duration, o.rounds)
		chaos.WriteRecycleTable(stdout, chaos.CompareRecycle(sums))
		fmt.Fprintln(stdout)
	}
	if err := writeOutputs(o, cfg, sums, stdout); err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		code = 1
	}
	if ctx.Err() != nil {
		return 130
	}
	return code
}

// parseFlags parses the command line into options and a run config.
func parseFlags(args []string, stderr io.Writer) (*options, chaos.RunConfig, error) {
	var o options
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.targets, "target", "", "comma-separated targets: "+chaos.AllTargets+" (default: the scenario's)")
	fs.StringVar(&o.scenario, "scenario", "", "predefined fault schedule: "+scenarioNames()+" (default steady)")
	fs.StringVar(&o.faults, "faults", "", `fault schedule, e.g. "at=3s action=hup; every=1.5s from=2s count=10 action=kill9"`)
	fs.DurationVar(&o.duration, "duration", 15*time.Second, "load duration (default: the scenario's)")
	fs.Int64Var(&o.requests, "requests", 0, "stop after this many requests in total (0: duration only)")
	fs.IntVar(&o.conns, "conns", 64, "concurrent keep-alive connections")
	fs.IntVar(&o.workers, "workers", 2, "worker processes for prefork targets")
	fs.StringVar(&o.client, "client", "strict", "strict (own HTTP/1.1 client, no retries) or retrying (net/http Client)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "per-request deadline (default: the scenario's, else 5s)")
	fs.DurationVar(&o.dialTimeout, "dial-timeout", 0, "connect bound within the request deadline (default: the scenario's, else none)")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "start of the load left out of the steady throughput")
	fs.StringVar(&o.repo, "repo", "..", "repository root (holds examples/hello and bench/)")
	fs.StringVar(&o.out, "out", "", "directory for <target>.csv timelines, timeline.svg and target logs")
	fs.StringVar(&o.jsonPath, "json", "", "write the reports as JSON to this file")
	fs.BoolVar(&o.failOnError, "fail-on-error", false, "exit 1 when any request failed or a target was skipped")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary build directory")
	fs.StringVar(&o.oldMasterSig, "gunicorn-old-master-signal", "quit", "signal ending gunicorn's old master after USR2: quit (documented) or term (graceful)")
	fs.DurationVar(&o.stopGrace, "stop-grace", 15*time.Second, "wait for the master after the final SIGTERM before SIGKILL")
	fs.IntVar(&o.rounds, "rounds", 1, "run every target this many times, interleaved (the recycle scenario reports medians)")
	fs.Uint64Var(&o.maxRequests, "max-requests", 0, "recycle scenario: requests per worker before it is recycled (default: the scenario's, 20000)")
	fs.Uint64Var(&o.maxReqJitter, "max-requests-jitter", 0, "recycle scenario: random extra requests per worker, 0..N (default: the scenario's, 2000)")
	if err := fs.Parse(args); err != nil {
		return nil, chaos.RunConfig{}, err
	}
	if fs.NArg() > 0 {
		return nil, chaos.RunConfig{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := applyScenario(&o, set); err != nil {
		return nil, chaos.RunConfig{}, err
	}
	cfg, err := buildConfig(&o)
	if err != nil {
		return nil, chaos.RunConfig{}, err
	}
	cfg.Recycle, err = recycleSetting(&o, set)
	return &o, cfg, err
}

// recycleSetting returns the recycle scenario's limits, with the flags'
// overrides; nil for other scenarios, which the flags do not fit.
func recycleSetting(o *options, set map[string]bool) (*chaos.Recycle, error) {
	sc, err := chaos.LookupScenario(o.scenario)
	if err != nil || sc.Recycle == nil {
		if set["max-requests"] || set["max-requests-jitter"] {
			return nil, errors.New("-max-requests and -max-requests-jitter go with -scenario recycle")
		}
		return nil, nil
	}
	r := *sc.Recycle
	if set["max-requests"] {
		r.MaxRequests = o.maxRequests
	}
	if set["max-requests-jitter"] {
		r.Jitter = o.maxReqJitter
	}
	if r.MaxRequests == 0 {
		return nil, errors.New("-max-requests 0: the recycle scenario needs a limit (its baseline runs without one anyway)")
	}
	return &r, nil
}

// planned is one run of the plan: a target with its config.
type planned struct {
	target string
	cfg    chaos.RunConfig
}

// plan lists the runs: -rounds rounds of every target, one after another.
// In the recycle scenario each target runs twice per round, recycling and
// without (the baseline), the order swapped every round so that a machine
// that slows down or speeds up during the rounds favours neither.
func plan(o *options, cfg chaos.RunConfig) []planned {
	var runs []planned
	for round := 1; round <= o.rounds; round++ {
		for _, name := range strings.Split(o.targets, ",") {
			c := cfg
			if o.rounds > 1 {
				c.Round = round
			}
			if cfg.Recycle == nil {
				runs = append(runs, planned{strings.TrimSpace(name), c})
				continue
			}
			variants := []*chaos.Recycle{{}, cfg.Recycle}
			if round%2 == 0 {
				variants[0], variants[1] = variants[1], variants[0]
			}
			for _, r := range variants {
				c.Recycle = r
				runs = append(runs, planned{strings.TrimSpace(name), c})
			}
		}
	}
	return runs
}

// applyScenario fills the faults, duration and targets the scenario
// implies, unless the flags set them.
func applyScenario(o *options, set map[string]bool) error {
	if o.scenario != "" && o.faults != "" {
		return errors.New("use -scenario or -faults, not both")
	}
	name := o.scenario
	if name == "" {
		name = "steady"
	}
	sc, err := chaos.LookupScenario(name)
	if err != nil {
		return err
	}
	if o.scenario != "" {
		o.faults = sc.Faults
		if !set["duration"] {
			o.duration = sc.Duration
		}
		if !set["timeout"] && sc.Timeout > 0 {
			o.timeout = sc.Timeout
		}
		if !set["dial-timeout"] && sc.DialTimeout > 0 {
			o.dialTimeout = sc.DialTimeout
		}
	}
	if o.targets == "" {
		o.targets = sc.Targets
	}
	return nil
}

// buildConfig validates the options and turns them into a run config.
func buildConfig(o *options) (chaos.RunConfig, error) {
	faults, err := chaos.ParseFaults(o.faults)
	if err != nil {
		return chaos.RunConfig{}, err
	}
	for _, t := range strings.Split(o.targets, ",") {
		if _, err := chaos.LookupTarget(strings.TrimSpace(t)); err != nil {
			return chaos.RunConfig{}, err
		}
	}
	mode := chaos.ClientMode(o.client)
	if mode != chaos.Strict && mode != chaos.Retrying {
		return chaos.RunConfig{}, fmt.Errorf("-client must be strict or retrying, not %q", o.client)
	}
	if o.conns < 1 || o.workers < 1 || o.duration <= 0 || o.timeout <= 0 || o.requests < 0 {
		return chaos.RunConfig{}, errors.New("-conns, -workers, -duration and -timeout must be positive, -requests not negative")
	}
	if o.rounds < 1 || o.rounds > 100 {
		return chaos.RunConfig{}, fmt.Errorf("-rounds %d: want 1 to 100", o.rounds)
	}
	if o.dialTimeout < 0 {
		return chaos.RunConfig{}, fmt.Errorf("-dial-timeout must not be negative, not %s", o.dialTimeout)
	}
	if o.duration > time.Hour {
		return chaos.RunConfig{}, errors.New("-duration is capped at 1h")
	}
	sig := syscall.SIGQUIT
	switch o.oldMasterSig {
	case "quit":
	case "term":
		sig = syscall.SIGTERM
	default:
		return chaos.RunConfig{}, fmt.Errorf("-gunicorn-old-master-signal must be quit or term")
	}
	repo, err := filepath.Abs(o.repo)
	if err != nil {
		return chaos.RunConfig{}, err
	}
	return chaos.RunConfig{
		Env:     chaos.BuildEnv{Repo: repo},
		Workers: o.workers, Conns: o.conns, Duration: o.duration, Requests: o.requests,
		Timeout: o.timeout, DialTimeout: o.dialTimeout, Mode: mode, Faults: faults, Warmup: o.warmup,
		StopGrace: o.stopGrace, LeftoverGrace: time.Second, OldMasterSignal: sig,
		Progress: os.Stdout,
	}, nil
}

// scenarioNames lists the scenarios for the usage text.
func scenarioNames() string {
	var names []string
	for _, s := range chaos.Scenarios {
		names = append(names, s.Name)
	}
	return strings.Join(names, "|")
}

// trapSignals cancels the run on the first SIGINT/SIGTERM, so targets are
// stopped and reaped; a second one kills every target at once and exits.
func trapSignals(cancel context.CancelFunc, stderr io.Writer) {
	sigc := make(chan os.Signal, 2)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigc
		fmt.Fprintf(stderr, "chaos: got %v: stopping the load and the target (again to kill at once)\n", s)
		cancel()
		<-sigc
		chaos.KillAll()
		os.Exit(130)
	}()
}

// writeOutputs writes the CSV timelines, the SVG plot and the JSON report
// the flags ask for.
func writeOutputs(o *options, cfg chaos.RunConfig, sums []*chaos.Summary, stdout io.Writer) error {
	if o.jsonPath != "" {
		b, err := json.MarshalIndent(sums, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonPath, append(b, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", o.jsonPath)
	}
	if o.out == "" {
		return nil
	}
	var series []chaos.Series
	var names []string
	for _, s := range sums {
		if s.Skipped != "" {
			continue
		}
		if err := writeCSV(filepath.Join(o.out, s.FileName()+".csv"), s.Buckets); err != nil {
			return err
		}
		names = append(names, s.FileName())
		if s.Round <= 1 { // more rounds would crowd the plot: it shows the first
			series = append(series, chaos.Series{Name: s.FileName(), Buckets: s.Buckets})
		}
	}
	if len(series) == 0 {
		return nil
	}
	title := fmt.Sprintf("%s: %d conns, %s client, %d workers", scenarioTitle(o), cfg.Conns, cfg.Mode, cfg.Workers)
	if o.rounds > 1 {
		title += fmt.Sprintf(", round 1 of %d", o.rounds)
	}
	svg := filepath.Join(o.out, "timeline.svg")
	f, err := os.Create(svg)
	if err != nil {
		return err
	}
	if err := chaos.WriteSVG(f, title, series, cfg.Faults, cfg.Duration); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s/{%s}.csv and %s\n", o.out, strings.Join(names, ","), svg)
	return nil
}

// writeCSV writes one target's timeline.
func writeCSV(path string, bs []chaos.Bucket) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := chaos.WriteCSV(f, bs); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// scenarioTitle names the schedule for the plot title.
func scenarioTitle(o *options) string {
	if o.scenario != "" {
		return "scenario " + o.scenario
	}
	if o.faults == "" {
		return "steady load"
	}
	return "faults " + o.faults
}
