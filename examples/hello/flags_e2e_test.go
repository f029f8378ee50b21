//go:build unix

package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A bad flag or variable stops the program with exit status 2 and a
// message naming it and the value, before the master logs anything or
// starts a worker — including a value that only the library judges.
// -check-config says OK and exits 0, or says what is wrong and exits 2.
func TestBadFlagExitsTwoBeforeAnyProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the demo")
	}
	bin := filepath.Join(t.TempDir(), "hello")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, c := range []struct {
		env, args string
		status    int
		want      string
	}{
		{"", "-max-memory 1.5XiB", 2, `invalid value "1.5XiB" for flag -max-memory`},
		{"", "-max-requests-jitter 2000", 2, "hello: -max-requests-jitter 2000: needs -max-requests"},
		{"", "-max-age -1s", 2, `invalid value "-1s" for flag -max-age: must not be negative`},
		{"GRACEFORK_MAX_AGE=-1h", "", 2, `hello: GRACEFORK_MAX_AGE="-1h": must not be negative`},
		{"WEB_CONCURRENCY=four", "", 2, `hello: WEB_CONCURRENCY="four": want a whole number`},
		{"", "-heartbeat-timeout 1s", 2, "hello: -heartbeat-timeout 1s: must be at least 2s"},
		{"GRACEFORK_TIMEOUT=1", "", 2, `hello: GRACEFORK_TIMEOUT="1": must be at least 2s`},
		{"", "-pidfile /nonexistent/dir/hello.pid", 2, `hello: -pidfile /nonexistent/dir/hello.pid: its directory does not exist`},
		{"", "-check-config -w 3", 0, "OK\n"},
		{"GRACEFORK_WORKERS=3", "--check-config -t 1", 2, "hello: -t 1: must be at least 2s"},
	} {
		cmd := exec.Command(bin, append(strings.Fields(c.args), "-addr", "127.0.0.1:0")...)
		cmd.Env = append(os.Environ(), "PORT=", "WEB_CONCURRENCY=")
		if c.env != "" {
			cmd.Env = append(cmd.Env, c.env)
		}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if c.status == 0 && err != nil || c.status != 0 && (!errors.As(err, &ee) || ee.ExitCode() != c.status) {
			t.Errorf("%s hello %s: %v, want exit status %d\n%s", c.env, c.args, err, c.status, out)
			continue
		}
		if !strings.Contains(string(out), c.want) {
			t.Errorf("%s hello %s said %q, want %q", c.env, c.args, out, c.want)
		}
		if strings.Contains(string(out), "level=") {
			t.Errorf("%s hello %s: the master logged before refusing the flag:\n%s", c.env, c.args, out)
		}
	}
}
