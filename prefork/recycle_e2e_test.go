//go:build unix

package prefork_test

import (
	"strings"
	"syscall"
	"testing"
)

// Workers that reach MaxRequests under keep-alive load from a client that
// never retries are recycled one at a time, replacement first: every
// slot is replaced several times and no request fails.
func TestE2ERecycleUnderLoadLosesNothing(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=2", "TEST_MAX_REQUESTS=1500", "TEST_MAX_REQUESTS_JITTER=300")
	var at int
	addr := p.addr(&at)
	p.ready(&at, 2)
	load := startLoad(addr, 32)
	for range 6 {
		p.waitLog(&at, "recycled", nil)
	}
	load.waitMore(t, 200)
	load.finish(t)
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
	out := p.output()
	for _, bad := range []string{`"msg":"recycle failed"`, `"expected":false`} {
		if strings.Contains(out, bad) {
			t.Fatalf("the log has %s", bad)
		}
	}
	if n := strings.Count(out, `"msg":"recycle due"`); n < 6 {
		t.Fatalf("%d recycle-due records for 6 recycles", n)
	}
}
