//go:build unix

package prefork_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Item 9b: the master's binary is deleted (a deploy, `go run`'s temporary
// build). A killed worker's slot is refilled from the running executable,
// with a warning; a HUP, meant to load new code, fails and the old workers
// serve on.
func TestE2EBinaryGoneStillRefillsSlots(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "app")
	copyFile(t, os.Args[0], bin)
	p := startMasterCmd(t, func(c *exec.Cmd) { c.Path, c.Args[0] = bin, bin }, "TEST_WORKERS=2")
	var at int
	url := "http://" + p.addr(&at) + "/"
	old := p.ready(&at, 2)
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(old[0], syscall.SIGKILL)
	p.waitLog(&at, "exited", map[string]any{"pid": old[0]})
	if w := p.waitLog(&at, "the binary is gone; the worker starts from the executable this master runs", nil); w["binary"] != bin {
		t.Fatalf("warning %v, want binary %s", w, bin)
	}
	fresh := pidOf(p.waitLog(&at, "ready", map[string]any{"slot": 0}))

	p.signal(syscall.SIGHUP)
	rec := p.waitLog(&at, "reload failed", nil)
	if err := rec["err"].(string); !strings.Contains(err, bin) || !strings.Contains(err, "gone") {
		t.Fatalf("reload failure %q does not say %s is gone", err, bin)
	}
	c := newClient()
	seen := map[string]bool{}
	for range 20 {
		seen[strings.Fields(get(t, c, url))[1]] = true
		c.CloseIdleConnections() // a new connection each time: either worker may answer
	}
	for pid := range seen {
		if pid != fmt.Sprintf("pid=%d", fresh) && pid != fmt.Sprintf("pid=%d", old[1]) {
			t.Fatalf("answer from %s, want only the workers %d and %d", pid, fresh, old[1])
		}
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
	if n := strings.Count(p.output(), `"msg":"giving up"`); n != 0 {
		t.Fatal("the master gave up")
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
