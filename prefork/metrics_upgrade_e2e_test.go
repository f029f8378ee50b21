//go:build unix

package prefork_test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// scraper scrapes a metrics URL every 100 ms — load, like a Prometheus
// server's, not synchronization — and records the sum of a counter family
// at each answer, in order.
type scraper struct {
	url, name string
	stop      chan struct{}
	done      chan struct{}

	mu   sync.Mutex
	sums []float64
	errs []string
}

func startScraper(url, name string) *scraper {
	s := &scraper{url: url, name: name, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *scraper) run() {
	defer close(s.done)
	c := newClient()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		sum, err := scrapeSum(c, s.url, s.name)
		s.mu.Lock()
		if err != nil {
			s.errs = append(s.errs, err.Error())
		} else {
			s.sums = append(s.sums, sum)
		}
		s.mu.Unlock()
	}
}

// finish stops the scrapes and checks that the sums never went down.
func (s *scraper) finish(t *testing.T) []float64 {
	t.Helper()
	close(s.stop)
	<-s.done
	if len(s.errs) > 0 {
		t.Errorf("%d scrapes failed; first: %v", len(s.errs), s.errs[:min(3, len(s.errs))])
	}
	for i := 1; i < len(s.sums); i++ {
		if s.sums[i] < s.sums[i-1] {
			t.Errorf("%s went down at scrape %d: %v after %v", s.name, i, s.sums[i], s.sums[i-1])
		}
	}
	t.Logf("%d scrapes", len(s.sums))
	return s.sums
}

// scrapeSum scrapes url and adds up every series of the family name.
func scrapeSum(c *http.Client, url, name string) (float64, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		return 0, fmt.Errorf("GET %s: %d %q %v", url, resp.StatusCode, b, err)
	}
	sum := 0.0
	for line := range strings.Lines(string(b)) {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("series %q: %v", line, err)
		}
		sum += v
	}
	return sum, nil
}

// upgradeDone waits, reading p's log from at, until the old master has
// ended and the new one has imported its totals.
func upgradeDone(t *testing.T, p *proc, at int, master, next int) {
	t.Helper()
	from := at
	p.waitFor(&from, "stopped", func(rec map[string]any) bool { return pidOf(rec) == master })
	from = at
	rec := p.waitFor(&from, "metrics continue the old master's totals", func(rec map[string]any) bool { return pidOf(rec) == next })
	if rec["err"] != nil {
		t.Errorf("the new master did not import the old one's totals: %v", rec["err"])
	}
}

// settled waits, once the load has stopped, until every worker but the
// serving ones (n) has exited — and so had its final counts folded — by
// p's log from at.
func settled(p *proc, at, n int) {
	p.t.Helper()
	count := func(msg string) int {
		p.mu.Lock()
		defer p.mu.Unlock()
		c := 0
		for _, rec := range p.logs[at:] {
			if rec["msg"] == msg {
				c++
			}
		}
		return c
	}
	from := at
	for count("exited") < count("spawned")-n {
		p.waitLog(&from, "exited", nil) // the next one, seen or new: from catches up, then waits
	}
}

// Across a binary upgrade under a strict load, the pool's count of
// answers never goes down — the new master continues the old one's
// totals, the old pool's last drained requests included — and ends equal
// to what the client got.
func TestE2EMetricsContinueAcrossUpgrade(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=2", "TEST_METRICS_ADDR=localhost:0")
	var at int
	addr := p.addr(&at)
	metricsURL := "http://" + p.addr(&at) + "/metrics"
	p.ready(&at, 2)
	master := pidOf(p.waitLog(&at, "serving", nil))
	const conns = 8
	load := startLoad(addr, conns)
	load.waitMore(t, 200)
	sc := startScraper(metricsURL, "test_requests_total")
	c := newClient()
	prev := 0.0
	check := func(when string) {
		t.Helper()
		sum, err := scrapeSum(c, metricsURL, "test_requests_total")
		if err != nil {
			t.Fatal(err)
		}
		if sum < prev {
			t.Errorf("test_requests_total went down %s: %v after %v", when, sum, prev)
		}
		prev = sum
	}
	check("before the upgrade")
	from := at
	p.signal(syscall.SIGUSR2)
	next := p.upgraded(&from, master)
	// The old pool drains now: a scrape the new master answers waits for
	// the old master's totals instead of showing its own pool's alone.
	check("just after the handover")
	upgradeDone(t, p, at, master, next)
	check("after the old master's end")
	load.waitMore(t, 200)
	finishCounted(t, p, load, sc, metricsURL, conns, next)
}

// The end-to-end check, with the test binary standing in for
// examples/hello (the same Options path): 2 workers under a strict load,
// scraped every 100 ms through 10 reloads, recycles and a binary upgrade.
// The pool's count of answers never goes down, and ends equal to the
// number of answers the client got, within the requests in flight.
func TestE2EMetricsNeverDecreaseThroughEverything(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=2", "TEST_METRICS_ADDR=localhost:0", "TEST_MAX_REQUESTS=400")
	var at int
	addr := p.addr(&at)
	metricsURL := "http://" + p.addr(&at) + "/metrics"
	p.ready(&at, 2)
	master := pidOf(p.waitLog(&at, "serving", nil))
	const conns = 8
	load := startLoad(addr, conns)
	load.waitMore(t, 100)
	sc := startScraper(metricsURL, "test_requests_total")
	for range 10 {
		p.signal(syscall.SIGHUP)
		p.waitLog(&at, "reload done", nil)
		load.waitMore(t, 100)
	}
	from := at
	p.signal(syscall.SIGUSR2)
	next := p.upgraded(&from, master)
	upgradeDone(t, p, at, master, next)
	recycled := 0
	for range 5 { // those during the reloads count; the load goes on until there are 5
		p.waitLog(&recycled, "recycled", nil)
	}
	load.waitMore(t, 100)
	finishCounted(t, p, load, sc, metricsURL, conns, next)
}

// finishCounted stops the load and, once every retired worker has exited,
// checks that the last scrape did not go down and counts the client's
// answers, within the conns requests that may have been in flight; then
// stops the master next.
func finishCounted(t *testing.T, p *proc, load *strictLoad, sc *scraper, metricsURL string, conns, next int) {
	t.Helper()
	load.finish(t)
	settled(p, 0, 2)
	sums := sc.finish(t)
	last, err := scrapeSum(newClient(), metricsURL, "test_requests_total")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(sums); n > 0 && last < sums[n-1] {
		t.Errorf("test_requests_total went down at the last scrape: %v after %v", last, sums[n-1])
	}
	if got := float64(load.count()); last < got || last > got+float64(conns) {
		t.Errorf("test_requests_total = %v; the client got %v answers (%d may have been in flight)", last, got, conns)
	}
	fds := pidfds(t, map[int]int{0: next})
	syscall.Kill(next, syscall.SIGTERM)
	waitGone(t, fds)
}
