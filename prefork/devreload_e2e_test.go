//go:build unix

package prefork_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// End to end: a change to a watched file, under strict load, reloads every
// worker without a failed request.
func TestE2EChangeReloadsUnderLoad(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(file, []byte("{}"), 0o644)
	p := startMaster(t, "TEST_WORKERS=2", "TEST_RELOAD_WATCH="+file)
	var at int
	addr := p.addr(&at)
	p.serving(&at, 2)
	load := startLoad(addr, 16)
	load.waitMore(t, 300)
	os.WriteFile(file, []byte(`{"v": 2}`), 0o644)
	rec := p.waitLog(&at, "change detected: reloading", nil)
	if rec["paths"] != file {
		t.Errorf("paths %v, want %s", rec["paths"], file)
	}
	p.waitLog(&at, "reload done", nil)
	load.waitMore(t, 300)
	load.finish(t)
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
