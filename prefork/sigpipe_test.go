//go:build unix

package prefork_test

import (
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// When the reader of the master's stderr goes away (a log collector that
// restarts), the master lives on: it still reloads, still copies its
// workers' stderr (a failed boot still quotes it), still serves, and exits
// 0 on TERM — not of SIGPIPE, with its workers after it. The test hears
// from the master through a second log channel at fd 3.
func TestE2EMasterSurvivesClosedStderr(t *testing.T) {
	flag := t.TempDir() + "/broken"
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := startMasterCmd(t, func(c *exec.Cmd) {
		// fd 3 takes the harness's stderr pipe; stderr becomes ours.
		c.Args = append([]string{"/bin/sh", "-c", `exec "$0" "$@" 4>&2 2>&3 3>&4 4>&-`}, c.Args...)
		c.Path = "/bin/sh"
		c.ExtraFiles = []*os.File{w}
	}, "TEST_WORKERS=1", "TEST_LOG_FD=3", "TEST_BOOT_PANIC_IF="+flag)
	w.Close()
	drained := make(chan struct{})
	go func() { io.Copy(io.Discard, r); close(drained) }()
	var at int
	url := "http://" + p.addr(&at) + "/"
	p.waitLog(&at, "serving", nil)
	r.Close() // every write to the master's stderr fails from now on
	<-drained

	p.signal(syscall.SIGHUP)
	p.waitLog(&at, "reload done", nil)
	if body := get(t, newClient(), url); !strings.Contains(body, "worker=0") {
		t.Fatalf("answer %q", body)
	}
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	rec := p.waitLog(&at, "reload failed", nil)
	if err := rec["err"].(string); !strings.Contains(err, "panic: boom at boot") {
		t.Fatalf("reload failure %q lacks the worker's stderr", err)
	}
	if body := get(t, newClient(), url); !strings.Contains(body, "worker=0") {
		t.Fatalf("answer %q", body)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d, want 0", code)
	}
}
