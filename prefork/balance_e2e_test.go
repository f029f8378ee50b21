//go:build unix

package prefork_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork/preforktest"
)

// Under keep-alive load every worker gets a share of the connections, even
// when one accepted them all at first: the master tells each worker the
// pool's totals, and a worker over its share holds back from Accept and
// tells the clients beyond it to reconnect — with whole answers, so the
// strict client loses nothing.
func TestE2EKeepAliveLoadSpreadsOverWorkers(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=2")
	var at int
	addr := p.addr(&at)
	p.serving(&at, 2)
	load := startLoad(addr, 16)
	deadline := time.Now().Add(preforktest.Patience)
	for {
		load.waitMore(t, 200)
		load.mu.Lock()
		n := len(load.pids)
		load.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("one worker served everything for %v: %v", preforktest.Patience, load.pids)
		}
	}
	load.finish(t)
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
