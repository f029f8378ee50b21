package main

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefork/gracefork/bench/internal/chaos"
)

func TestParseFlagsScenarios(t *testing.T) {
	tests := []struct {
		args     []string
		targets  string
		duration time.Duration
		faults   int
	}{
		{nil, chaos.AllTargets, 15 * time.Second, 0},
		{[]string{"-scenario", "smoke"}, "gracefork", 4 * time.Second, 2},
		{[]string{"-scenario", "crash", "-duration", "3s", "-target", "nethttp"}, "nethttp", 3 * time.Second, 10},
		{[]string{"-faults", "at=1s action=hup", "-target", "fasthttp"}, "fasthttp", 15 * time.Second, 1},
	}
	for _, tt := range tests {
		o, cfg, err := parseFlags(tt.args, io.Discard)
		if err != nil {
			t.Errorf("parseFlags(%q): %v", tt.args, err)
			continue
		}
		if o.targets != tt.targets || cfg.Duration != tt.duration || len(cfg.Faults) != tt.faults {
			t.Errorf("parseFlags(%q): targets=%s duration=%s faults=%d", tt.args, o.targets, cfg.Duration, len(cfg.Faults))
		}
	}
}

func TestParseFlagsStopScenarioTimeouts(t *testing.T) {
	tests := []struct {
		args          []string
		timeout, dial time.Duration
	}{
		{[]string{"-scenario", "stop"}, 2 * time.Second, 750 * time.Millisecond},
		{[]string{"-scenario", "stop", "-timeout", "3s", "-dial-timeout", "1s"}, 3 * time.Second, time.Second},
		{[]string{"-scenario", "reload"}, 5 * time.Second, 0},
		{[]string{"-dial-timeout", "300ms"}, 5 * time.Second, 300 * time.Millisecond},
	}
	for _, tt := range tests {
		o, cfg, err := parseFlags(tt.args, io.Discard)
		if err != nil {
			t.Errorf("parseFlags(%q): %v", tt.args, err)
			continue
		}
		if cfg.Timeout != tt.timeout || cfg.DialTimeout != tt.dial {
			t.Errorf("parseFlags(%q): timeout=%s dial-timeout=%s, want %s %s", tt.args, cfg.Timeout, cfg.DialTimeout, tt.timeout, tt.dial)
		}
		if tt.args[0] == "-scenario" && tt.args[1] == "stop" && (o.targets != chaos.AllTargets || cfg.Duration != 6*time.Second || len(cfg.Faults) != 1) {
			t.Errorf("parseFlags(%q): targets=%s duration=%s faults=%d", tt.args, o.targets, cfg.Duration, len(cfg.Faults))
		}
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-scenario", "crash", "-faults", "at=1s action=hup"},
		{"-scenario", "nope"},
		{"-target", "apache"},
		{"-client", "lazy"},
		{"-conns", "0"},
		{"-dial-timeout", "-1s"},
		{"-faults", "at=1s action=reboot"},
		{"-gunicorn-old-master-signal", "kill"},
		{"extra"},
	} {
		if _, _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded", args)
		}
	}
}

// TestInterruptLeavesNothing runs the chaos command against fasthttp,
// interrupts it once the first fault fired, and checks that it exits 130
// with no target process left.
func TestInterruptLeavesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run")
	}
	// Orphans of the chaos command would be reparented to the test.
	if err := chaos.SetChildSubreaper(); err != nil {
		t.Skip("no subreaper:", err)
	}
	bin := filepath.Join(t.TempDir(), "chaos")
	if b, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	cmd := exec.Command(bin, "-target", "fasthttp", "-repo", "../../..", "-duration", "60s",
		"-conns", "4", "-faults", "at=300ms action=stop")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	sc := bufio.NewScanner(out)
	fired := false
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "at=") {
			fired = true
			break
		}
	}
	if !fired {
		t.Fatal("the fault never fired")
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("chaos did not exit within 30s of SIGINT")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("exit = %v, want status 130", err)
	}
	tab, err := chaos.ScanProcs()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range tab.Descendants(os.Getpid()) {
		t.Errorf("left behind: pid=%d %s", p, chaos.Cmdline(p))
	}
}

func TestParseFlagsRecycleScenario(t *testing.T) {
	o, cfg, err := parseFlags([]string{"-scenario", "recycle"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.targets != "gracefork,gunicorn" || cfg.Duration != 10*time.Second || len(cfg.Faults) != 0 || o.rounds != 1 ||
		cfg.Recycle == nil || *cfg.Recycle != (chaos.Recycle{MaxRequests: 20000, Jitter: 2000}) {
		t.Errorf("recycle scenario: targets=%s duration=%s faults=%d rounds=%d recycle=%+v", o.targets, cfg.Duration, len(cfg.Faults), o.rounds, cfg.Recycle)
	}
	_, cfg, err = parseFlags([]string{"-scenario", "recycle", "-max-requests", "500", "-max-requests-jitter", "0", "-rounds", "3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if *cfg.Recycle != (chaos.Recycle{MaxRequests: 500}) {
		t.Errorf("overridden recycle = %+v", cfg.Recycle)
	}
	if _, cfg, _ := parseFlags([]string{"-scenario", "crash"}, io.Discard); cfg.Recycle != nil {
		t.Errorf("crash scenario recycles: %+v", cfg.Recycle)
	}
	for _, args := range [][]string{
		{"-scenario", "crash", "-max-requests", "100"},
		{"-max-requests-jitter", "100"},
		{"-scenario", "recycle", "-max-requests", "0"},
		{"-scenario", "recycle", "-rounds", "0"},
		{"-rounds", "101"},
	} {
		if _, _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded", args)
		}
	}
}

// The recycle scenario runs every target twice a round, the baseline and
// the recycling run swapping places each round; other scenarios once.
func TestPlanRounds(t *testing.T) {
	describe := func(args ...string) []string {
		o, cfg, err := parseFlags(args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range plan(o, cfg) {
			v := "-"
			if r := p.cfg.Recycle; r != nil {
				v = r.Variant()
			}
			got = append(got, p.target+" "+v+" "+string(rune('0'+p.cfg.Round)))
		}
		return got
	}
	got := describe("-scenario", "recycle", "-rounds", "2")
	want := []string{
		"gracefork baseline 1", "gracefork recycle 1", "gunicorn baseline 1", "gunicorn recycle 1",
		"gracefork recycle 2", "gracefork baseline 2", "gunicorn recycle 2", "gunicorn baseline 2",
	}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("recycle plan:\n%q\nwant\n%q", got, want)
	}
	if got := describe("-scenario", "recycle", "-target", "gunicorn"); strings.Join(got, ", ") != "gunicorn baseline 0, gunicorn recycle 0" {
		t.Errorf("one round: %q", got)
	}
	if got := describe("-scenario", "crash", "-target", "nethttp, fasthttp", "-rounds", "2"); strings.Join(got, ", ") != "nethttp - 1, fasthttp - 1, nethttp - 2, fasthttp - 2" {
		t.Errorf("crash plan: %q", got)
	}
}
