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
