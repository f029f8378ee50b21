// Package workermetrics is a gracefork worker's own, opt-in, metrics
// (prefork.Options.WorkerMetrics): its requests by code and method, their
// duration, the requests in flight and the open connections, and the
// process's Go and process collectors — in a registry of its own, never
// the default one.
//
// The per-request cost is one counter increment and one histogram
// observation on series looked up in a table, not by label values: see
// BenchmarkHandlerWrappedMetrics in internal/worker.
package workermetrics

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Names of the metrics.
const (
	RequestsName = "gracefork_worker_requests_total"
	DurationName = "gracefork_worker_request_duration_seconds"
	InFlightName = "gracefork_worker_requests_in_flight"
	ConnsName    = "gracefork_worker_open_connections"
)

// HijackedCode is the code label of a request whose handler took its
// connection over (a WebSocket): its status is not the server's to know,
// and its duration — the connection's life — is left out of the histogram.
const HijackedCode = "hijacked"

// methods are the method label's values; any other method, which a client
// chooses freely, is "other", so that the series stay bounded.
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "other"}

const otherMethod = len(methods) - 1

func methodIndex(m string) int {
	switch m {
	case "GET":
		return 0
	case "HEAD":
		return 1
	case "POST":
		return 2
	case "PUT":
		return 3
	case "DELETE":
		return 4
	case "CONNECT":
		return 5
	case "OPTIONS":
		return 6
	case "TRACE":
		return 7
	case "PATCH":
		return 8
	}
	return otherMethod
}

// maxCode bounds the codes net/http lets a handler send (100-999); 0 is
// the hijacked code.
const maxCode = 999

// Metrics is one worker's instrumentation.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// series[method][code] caches each pair's children, made at its
	// first request: a request costs no label lookup, and only the pairs
	// seen are exported.
	series [len(methods)]atomic.Pointer[[maxCode + 1]atomic.Pointer[series]]
}

type series struct {
	requests prometheus.Counter
	duration prometheus.Observer // nil for hijacked requests
}

// New registers the worker's metrics in a new registry; inFlight and
// conns are read at each gather.
func New(inFlight, conns func() int) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: RequestsName,
		Help: "Requests this worker answered, by status code and method.",
	}, []string{"code", "method"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    DurationName,
		Help:    "How long this worker's handlers took to answer, by status code and method.",
		Buckets: prometheus.DefBuckets,
		// Native buckets too, for scrapers that take them. Never reset
		// (MinResetDuration 0): a reset would read as counts going down;
		// past the bucket limit the resolution drops instead.
		NativeHistogramBucketFactor:    1.1,
		NativeHistogramMaxBucketNumber: 100,
	}, []string{"code", "method"})
	m.reg.MustRegister(m.requests, m.duration,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: InFlightName,
			Help: "Requests this worker is serving now, hijacked connections included.",
		}, func() float64 { return float64(inFlight()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: ConnsName,
			Help: "Connections open to this worker, hijacked ones included.",
		}, func() float64 { return float64(conns()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Gatherer is the registry the metrics are in.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Observe counts one request: it is internal/worker's Config.Observe.
func (m *Metrics) Observe(r *http.Request, code int, _ int64, d time.Duration) {
	s := m.lookup(methodIndex(r.Method), code)
	s.requests.Inc()
	if s.duration != nil {
		s.duration.Observe(d.Seconds())
	}
}

func (m *Metrics) lookup(method, code int) *series {
	if code < 0 || code > maxCode {
		code = maxCode // net/http refuses such codes; never here
	}
	row := m.series[method].Load()
	if row == nil {
		m.series[method].CompareAndSwap(nil, new([maxCode + 1]atomic.Pointer[series]))
		row = m.series[method].Load()
	}
	if s := row[code].Load(); s != nil {
		return s
	}
	return m.newSeries(row, method, code)
}

// newSeries makes the children of a pair at its first request. Two
// requests racing here get the same children: WithLabelValues returns the
// existing one.
func (m *Metrics) newSeries(row *[maxCode + 1]atomic.Pointer[series], method, code int) *series {
	label := strconv.Itoa(code)
	if code == 0 {
		label = HijackedCode
	}
	s := &series{requests: m.requests.WithLabelValues(label, methods[method])}
	if code != 0 {
		s.duration = m.duration.WithLabelValues(label, methods[method])
	}
	row[code].CompareAndSwap(nil, s)
	return row[code].Load()
}
