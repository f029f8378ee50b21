//go:build unix

package main

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A bad flag stops the program with exit status 2 and a message naming
// the flag and the value, before the master logs anything or starts a
// worker — including a value that only the library judges.
func TestBadFlagExitsTwoBeforeAnyProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the demo")
	}
	bin := filepath.Join(t.TempDir(), "hello")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for args, want := range map[string]string{
		"-max-memory 1.5XiB":                  `invalid value "1.5XiB" for flag -max-memory`,
		"-max-requests-jitter 2000":           "-max-requests-jitter 2000: needs -max-requests",
		"-max-age -1s":                        "-max-age -1s: must not be negative",
		"-heartbeat-timeout 1s":               "hello: -heartbeat-timeout 1s: must be at least 2s",
		"-pidfile /nonexistent/dir/hello.pid": `hello: -pidfile /nonexistent/dir/hello.pid: its directory does not exist`,
	} {
		cmd := exec.Command(bin, append(strings.Fields(args), "-addr", "127.0.0.1:0")...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("hello %s: %v, want exit status 2\n%s", args, err, out)
			continue
		}
		if !strings.Contains(string(out), want) {
			t.Errorf("hello %s said %q, want %q", args, out, want)
		}
		if strings.Contains(string(out), "level=") {
			t.Errorf("hello %s: the master logged before refusing the flag:\n%s", args, out)
		}
	}
}
