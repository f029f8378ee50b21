//go:build unix

package prefork_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// sumOf adds up every series of a family in a text exposition.
func sumOf(t *testing.T, body, name string) float64 {
	t.Helper()
	sum := 0.0
	for line := range strings.Lines(body) {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("series %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// A scrape while a worker is stopped returns by the scrape's deadline,
// with that worker's previous snapshot marked stale; /status lists both
// workers.
func TestE2EMetricsScrapeWithStoppedWorker(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=2", "TEST_METRICS_ADDR=localhost:0", "TEST_METRICS_TIMEOUT_MS=500")
	var at int
	addr := p.addr(&at)
	metricsURL := "http://" + p.addr(&at) // bound after the serving sockets
	pids := p.ready(&at, 2)
	p.waitLog(&at, "serving", nil)
	c := newClient()
	get(t, c, "http://"+addr+"/")
	body := get(t, c, metricsURL+"/metrics")
	wantLines(t, body, `gracefork_master_workers{state="serving"} 2`)
	wantLines(t, body, `gracefork_worker_metrics_stale{worker="0"} 0`, `gracefork_worker_metrics_stale{worker="1"} 0`)
	if sumOf(t, body, "test_requests_total") != 1 {
		t.Errorf("test_requests_total: want 1 in all; got:\n%s", body)
	}

	syscall.Kill(pids[1], syscall.SIGSTOP)
	defer syscall.Kill(pids[1], syscall.SIGCONT)
	body = get(t, c, metricsURL+"/metrics") // returns: the stopped worker does not hold it
	wantLines(t, body, `gracefork_worker_metrics_stale{worker="0"} 0`, `gracefork_worker_metrics_stale{worker="1"} 1`)
	var st struct {
		Workers []struct {
			Slot  int    `json:"slot"`
			Pid   int    `json:"pid"`
			State string `json:"state"`
		} `json:"workers"`
	}
	if err := json.Unmarshal([]byte(get(t, c, metricsURL+"/status")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Workers) != 2 || st.Workers[0].Pid != pids[0] || st.Workers[1].Pid != pids[1] || st.Workers[1].State != "serving" {
		t.Errorf("/status: %+v, want the workers %v serving", st, pids)
	}
	syscall.Kill(pids[1], syscall.SIGCONT)
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
}

// Under a strict load, through reloads, the pool's count of answers never
// goes down, and ends equal to what the client got.
func TestE2EMetricsNeverDecreaseAcrossReloads(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=2", "TEST_METRICS_ADDR=localhost:0")
	var at int
	addr := p.addr(&at)
	metricsURL := "http://" + p.addr(&at) + "/metrics"
	p.ready(&at, 2)
	c := newClient()
	load := startLoad(addr, 8)
	load.waitMore(t, 100)
	prev := 0.0
	check := func() {
		t.Helper()
		sum := sumOf(t, get(t, c, metricsURL), "test_requests_total")
		if sum < prev {
			t.Fatalf("test_requests_total went down: %v after %v", sum, prev)
		}
		prev = sum
	}
	for range 5 {
		check()
		p.signal(syscall.SIGHUP)
		check()
		p.waitLog(&at, "reload done", nil)
		check()
		load.waitMore(t, 100)
	}
	load.finish(t)
	settled(p, 0, 2) // the last drained workers' final counts are folded
	check()
	if got := float64(load.count()); prev < got || prev > got+8 {
		t.Errorf("test_requests_total = %v; the client got %v answers (8 may have been in flight)", prev, got)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
}

// The metrics socket is handed to a new master with the others: no
// "address already in use", and once the old master has gone the new one
// answers on it.
func TestE2EMetricsSocketSurvivesUpgrade(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=1", "TEST_METRICS_ADDR=localhost:0")
	var at int
	p.addr(&at)
	maddr := p.addr(&at)
	master := pidOf(p.waitLog(&at, "serving", nil))
	old := childrenOf(t, master)
	old[-1] = master
	fds := pidfds(t, old)
	syscall.Kill(master, syscall.SIGUSR2)
	next := p.upgraded(&at, master)
	from := 0
	p.waitFor(&from, "listening", func(rec map[string]any) bool {
		return pidOf(rec) == next && rec["addr"] == maddr && rec["from"] == "inherited"
	})
	waitGone(t, fds)
	var st struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(get(t, newClient(), "http://"+maddr+"/status")), &st); err != nil || st.Pid != next {
		t.Fatalf("/status from pid %d (%v), want the new master %d", st.Pid, err, next)
	}
	fds = pidfds(t, map[int]int{0: next})
	syscall.Kill(next, syscall.SIGTERM)
	waitGone(t, fds)
}
