package workermetrics

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestObserve(t *testing.T) {
	inFlight, conns := 3, 5
	m := New(func() int { return inFlight }, func() int { return conns })
	get := httptest.NewRequest("GET", "/", nil)
	m.Observe(get, 200, 0, 2*time.Millisecond)
	m.Observe(get, 200, 0, 3*time.Millisecond)
	m.Observe(get, 404, 0, time.Millisecond)
	m.Observe(httptest.NewRequest("BREW", "/", nil), 418, 0, time.Millisecond) // a method a client made up
	m.Observe(get, 0, 0, time.Hour)                                            // hijacked
	want := `
# HELP gracefork_worker_requests_total Requests this worker answered, by status code and method.
# TYPE gracefork_worker_requests_total counter
gracefork_worker_requests_total{code="200",method="GET"} 2
gracefork_worker_requests_total{code="404",method="GET"} 1
gracefork_worker_requests_total{code="418",method="other"} 1
gracefork_worker_requests_total{code="hijacked",method="GET"} 1
# HELP gracefork_worker_requests_in_flight Requests this worker is serving now, hijacked connections included.
# TYPE gracefork_worker_requests_in_flight gauge
gracefork_worker_requests_in_flight 3
# HELP gracefork_worker_open_connections Connections open to this worker, hijacked ones included.
# TYPE gracefork_worker_open_connections gauge
gracefork_worker_open_connections 5
`
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want), RequestsName, InFlightName, ConnsName); err != nil {
		t.Error(err)
	}
	// The hijacked request's hour is not a duration.
	if n := testutil.CollectAndCount(m.duration); n != 3 {
		t.Errorf("%d duration series, want 3 (200 GET, 404 GET, 418 other)", n)
	}
	if problems, err := testutil.GatherAndLint(m.Gatherer(), RequestsName, DurationName, InFlightName, ConnsName); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if n, err := testutil.GatherAndCount(m.Gatherer(), name); err != nil || n != 1 {
			t.Errorf("%s: %d series, %v", name, n, err)
		}
	}
}

// Observe, once a pair's series exist, allocates nothing.
func TestObserveAllocatesNothing(t *testing.T) {
	m := New(func() int { return 0 }, func() int { return 0 })
	r := httptest.NewRequest("POST", "/", nil)
	m.Observe(r, 201, 0, time.Millisecond)
	if n := testing.AllocsPerRun(100, func() { m.Observe(r, 201, 0, time.Millisecond) }); n != 0 {
		t.Errorf("%v allocations per request", n)
	}
}
