package main

import (
	"bufio"
	"cmp"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork"
)

// The unit file shipped in examples/systemd must start this program as
// it is: flags it knows, a PID file where systemd looks, notify and
// upgrade settings that fit, a stop timeout past the graceful one.
func TestSystemdUnitFitsTheProgram(t *testing.T) {
	f, err := os.Open("../systemd/hello.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	unit := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			unit[k] = v
		}
	}
	want := map[string]string{"Type": "notify", "NotifyAccess": "all", "ExecReload": "/bin/kill -USR2 $MAINPID", "KillMode": "mixed"}
	for k, v := range want {
		if unit[k] != v {
			t.Errorf("%s=%q, want %q", k, unit[k], v)
		}
	}
	args := strings.Fields(unit["ExecStart"])
	c, err := parseFlags(args[1:])
	if err != nil {
		t.Fatalf("ExecStart flags: %v", err)
	}
	if c.opts.PIDFile == "" || c.opts.PIDFile != unit["PIDFile"] {
		t.Errorf("-pid %q but PIDFile=%q", c.opts.PIDFile, unit["PIDFile"])
	}
	if !strings.HasPrefix(c.opts.PIDFile, "/run/"+unit["RuntimeDirectory"]+"/") {
		t.Errorf("PID file %q outside RuntimeDirectory %q", c.opts.PIDFile, unit["RuntimeDirectory"])
	}
	stop, err := time.ParseDuration(unit["TimeoutStopSec"] + "s")
	graceful := cmp.Or(c.opts.GracefulTimeout, prefork.DefaultGracefulTimeout)
	if err != nil || stop <= graceful+2*time.Second {
		t.Errorf("TimeoutStopSec=%s leaves no margin past -graceful-timeout %v", unit["TimeoutStopSec"], graceful)
	}
}
