package prefork_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork/preforktest"
)

// strictLoad is keep-alive HTTP/1.1 load that, like wrk, never retries: a
// request that fails for any reason is counted as failed. It reconnects
// only when a response says Connection: close, or after a failure.
type strictLoad struct {
	addr string
	stop chan struct{}
	wg   sync.WaitGroup
	// churn: every request asks for Connection: close, so that each one
	// comes on a new connection — the load that queues the most in a
	// listening socket.
	churn bool

	tally
	mu     sync.Mutex
	failed []string
	pids   map[string]int
}

func startLoad(addr string, conns int) *strictLoad {
	return startLoadOf(&strictLoad{addr: addr}, conns)
}

// startLoadOf starts l, set up but for its channels, with conns clients.
func startLoadOf(l *strictLoad, conns int) *strictLoad {
	l.stop, l.pids = make(chan struct{}), map[string]int{}
	for range conns {
		l.wg.Go(l.conn)
	}
	return l
}

func (l *strictLoad) conn() {
	var c net.Conn
	var br *bufio.Reader
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		if c == nil {
			var err error
			if c, err = net.Dial("tcp", l.addr); err != nil {
				l.fail("dial: " + err.Error())
				continue
			}
			br = bufio.NewReader(c)
		}
		pid, closeAfter, err := l.request(c, br)
		if err != nil {
			l.fail(err.Error())
			c.Close()
			c = nil
			continue
		}
		l.mu.Lock()
		l.pids[pid]++
		l.mu.Unlock()
		l.answered()
		if closeAfter {
			c.Close()
			c = nil
		}
	}
}

func (l *strictLoad) request(c net.Conn, br *bufio.Reader) (pid string, closeAfter bool, err error) {
	c.SetDeadline(time.Now().Add(preforktest.Patience))
	req := "GET / HTTP/1.1\r\nHost: gracefork\r\n\r\n"
	if l.churn {
		req = "GET / HTTP/1.1\r\nHost: gracefork\r\nConnection: close\r\n\r\n"
	}
	if _, err := io.WriteString(c, req); err != nil {
		return "", false, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return "", false, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return "", false, err
	}
	if resp.StatusCode != 200 {
		return "", false, fmt.Errorf("status %d", resp.StatusCode)
	}
	f := strings.Fields(string(body))
	return f[len(f)-1], resp.Close, nil
}

// end stops the load and returns the failures.
func (l *strictLoad) end() []string {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

func (l *strictLoad) fail(why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failed = append(l.failed, why)
}

func (l *strictLoad) finish(t *testing.T) {
	t.Helper()
	l.end()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failed) > 0 {
		t.Errorf("%d of %d requests failed; first: %v", len(l.failed), l.count()+len(l.failed), l.failed[:min(5, len(l.failed))])
	}
	if l.count() == 0 {
		t.Error("no request answered")
	}
	t.Logf("%d requests answered, %d failed, by pid: %v", l.count(), len(l.failed), l.pids)
}

// tally counts a load's answers and lets a test wait until more have come:
// proof that the load flows, taken between faults.
type tally struct {
	mu      sync.Mutex
	n       int
	changed chan struct{} // closed at the next answer, when someone waits
}

func (c *tally) answered() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}

func (c *tally) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// waitMore waits until n more requests have been answered.
func (c *tally) waitMore(t *testing.T, n int) {
	t.Helper()
	c.mu.Lock()
	want := c.n + n
	c.mu.Unlock()
	deadline := time.After(preforktest.Patience)
	for {
		c.mu.Lock()
		got := c.n
		if got >= want {
			c.mu.Unlock()
			return
		}
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("load stalled: %d answered, waiting for %d", got, want)
		}
	}
}
