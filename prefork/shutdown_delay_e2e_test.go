//go:build unix

package prefork_test

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork/preforktest"
)

// probe asks path on a connection of its own, as an orchestrator's probe
// does: the status, or the error (refused once the listeners are closed).
func probe(addr, path string) (int, string, error) {
	c := &http.Client{Timeout: preforktest.Patience, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// modes are the two ways to serve: a master with workers, and one process.
var modes = []struct {
	name string
	env  []string
	n    int // processes that report ready
}{
	{"multi", []string{"TEST_WORKERS=2"}, 2},
	{"single", []string{"GRACEFORK_SINGLE_PROCESS=1"}, 0},
}

// ready waits until the process serves, in either mode.
func (p *proc) serving(at *int, n int) {
	p.t.Helper()
	if n == 0 {
		p.waitLog(at, "serving in single-process mode", nil)
		return
	}
	p.ready(at, n)
	p.waitLog(at, "serving", nil)
}

// SIGTERM with a shutdown delay, under strict keep-alive load: readiness
// fails at once while every request — keep-alive and new connections —
// is answered for the delay; then the drain; nothing accepted is lost and
// the exit status is 0. Without a delay, readiness fails and the drain
// begins at once.
func TestE2EShutdownDelay(t *testing.T) {
	for _, m := range modes {
		for _, delay := range []int{2000, 0} {
			t.Run(m.name+"/"+time.Duration(delay*int(time.Millisecond)).String(), func(t *testing.T) {
				testShutdownDelay(t, delay, append(m.env, "TEST_SHUTDOWN_DELAY_MS="+strconv.Itoa(delay)), m.n)
			})
		}
	}
}

func testShutdownDelay(t *testing.T, delay int, env []string, n int) {
	p := startMaster(t, env...)
	var at int
	addr := p.addr(&at)
	p.serving(&at, n)
	waitReady(t, addr)
	load := startStopLoad(addr, 16)
	load.waitMore(t, 300)
	p.signal(syscall.SIGTERM)
	// Readiness fails from the first moment of the stop.
	for {
		code, body, err := probe(addr, "/readyz")
		if delay == 0 && (errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)) {
			// No delay: the listeners may be closed already, and a
			// probe caught in the socket's queue as it closes is reset
			// (see ShutdownDelay: the delay is what empties that queue
			// of traffic).
			break
		}
		if err != nil {
			t.Fatalf("/readyz during the stop: %v", err)
		}
		if code == http.StatusServiceUnavailable {
			if !strings.Contains(body, "stopping") {
				t.Errorf("/readyz = %q, want a reason naming the stop", body)
			}
			break
		}
		if code != 200 {
			t.Fatalf("/readyz during the stop: %d %q", code, body)
		}
	}
	if delay > 0 {
		// Within the delay everything else serves as before: the
		// keep-alive load goes on, and a new connection is answered.
		load.waitMore(t, 200)
		if code, body, err := probe(addr, "/"); err != nil || code != 200 {
			if !strings.Contains(p.output(), "draining") { // a 2 s stall of this test would explain it
				t.Fatalf("/ during the shutdown delay: %d %q %v, want 200", code, body, err)
			}
		}
	}
	if code := p.wait(); code != 0 {
		t.Fatalf("exit status %d, want 0", code)
	}
	load.wg.Wait()
	if len(load.lost) > 0 {
		t.Errorf("%d requests lost on accepted connections; first: %v", len(load.lost), load.lost[:min(5, len(load.lost))])
	}
	t.Logf("%d answered, %d clients refused at the end, %d lost", load.count(), load.refused, len(load.lost))
}

// waitReady waits until /readyz answers 200: the master tells the workers
// the pool is ready right after it logs "serving", and they take the
// message a moment later.
func waitReady(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(preforktest.Patience)
	for {
		code, body, err := probe(addr, "/readyz")
		if err == nil && code == 200 {
			return
		}
		if err != nil || code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("/readyz after the start: %d %q %v, want 200", code, body, err)
		}
	}
}
