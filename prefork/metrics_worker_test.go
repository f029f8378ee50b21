//go:build unix

package prefork

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gracefork/gracefork/internal/control"
	"github.com/gracefork/gracefork/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// nextMetrics reads the master's end until a Metrics message.
func nextMetrics(t *testing.T, c net.Conn) control.Message {
	t.Helper()
	for {
		msg, err := control.Read(c)
		if err != nil {
			t.Fatalf("waiting for metrics: %v", err)
		}
		if msg.Type == control.TypeMetrics {
			return msg
		}
	}
}

func write(t *testing.T, c net.Conn, msg control.Message) {
	t.Helper()
	if err := control.Write(c, msg); err != nil {
		t.Fatal(err)
	}
}

func decode(t *testing.T, msg control.Message) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := metrics.Decode([]byte(msg.Payload))
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	return byName
}

func counterValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no family %s", name)
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
			}
			if !found {
				continue next
			}
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("no series %s%v in %v", name, labels, f)
	return 0
}

func runRole(t *testing.T, w *workerRole, master net.Conn) <-chan error {
	done := make(chan error, 1)
	go func() { done <- w.run(context.Background()) }()
	expect(t, master, control.TypeReady)
	return done
}

func getOK(t *testing.T, w *workerRole, path string) {
	t.Helper()
	getBody(t, w, path)
}

// getBody GETs path from w's first address on a connection of its own
// and returns the answer's body.
func getBody(t *testing.T, w *workerRole, path string) string {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + w.addrs()[0].String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A Gather is answered with the user's registry, tagged with its Seq.
func TestWorkerAnswersGather(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "app_requests_total", Help: "Answers."})
	reg.MustRegister(c)
	h := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { c.Inc() })
	w, master := inProcessRoleWith(t, h, Options{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler), MetricsGatherer: reg})
	done := runRole(t, w, master)
	getOK(t, w, "/")
	getOK(t, w, "/")
	write(t, master, control.Message{Type: control.TypeGather, Seq: 41})
	msg := nextMetrics(t, master)
	if msg.Seq != 41 || msg.Final {
		t.Fatalf("answer seq %d final %v, want 41, false", msg.Seq, msg.Final)
	}
	fams := decode(t, msg)
	if v := counterValue(t, fams, "app_requests_total"); v != 2 {
		t.Errorf("app_requests_total %v, want 2", v)
	}
	if len(fams) != 1 {
		t.Errorf("families %d, want only the user's: WorkerMetrics is off", len(fams))
	}
	write(t, master, control.Message{Type: control.TypeQuit})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// With WorkerMetrics, the library's metrics come with the user's; on the
// default gatherer, which has its own Go and process collectors, without
// a duplicate that would fail the gather.
func TestWorkerMetricsWithDefaultGatherer(t *testing.T) {
	h := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(rw, r)
		}
	})
	w, master := inProcessRoleWith(t, h, Options{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler), WorkerMetrics: true})
	done := runRole(t, w, master)
	getOK(t, w, "/")
	getOK(t, w, "/missing")
	getOK(t, w, "/missing")
	write(t, master, control.Message{Type: control.TypeGather, Seq: 1})
	msg := nextMetrics(t, master)
	if msg.Payload == "" {
		t.Fatal("empty snapshot")
	}
	fams := decode(t, msg)
	if v := counterValue(t, fams, "gracefork_worker_requests_total", "code", "200", "method", "GET"); v != 1 {
		t.Errorf("200 GET: %v, want 1", v)
	}
	if v := counterValue(t, fams, "gracefork_worker_requests_total", "code", "404", "method", "GET"); v != 2 {
		t.Errorf("404 GET: %v, want 2", v)
	}
	for _, name := range []string{"gracefork_worker_request_duration_seconds", "gracefork_worker_requests_in_flight",
		"gracefork_worker_open_connections", "go_goroutines", "process_cpu_seconds_total"} {
		if fams[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	if n := len(fams["go_goroutines"].Metric); n != 1 {
		t.Errorf("go_goroutines has %d series, want 1", n)
	}
	write(t, master, control.Message{Type: control.TypeQuit})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A drain ends with a Final snapshot sent after the last request has
// finished, before the last heartbeat and the channel's end.
func TestWorkerSendsFinalMetricsAfterDrain(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "app_requests_total", Help: "Answers."})
	reg.MustRegister(c)
	started, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		c.Inc()
	})
	w, master := inProcessRoleWith(t, h, Options{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler), MetricsGatherer: reg})
	done := runRole(t, w, master)
	getOK(t, w, "/")
	slow := make(chan struct{})
	go func() { defer close(slow); getOK(t, w, "/slow") }()
	<-started
	write(t, master, control.Message{Type: control.TypeDrain, Deadline: time.Minute})
	<-w.core.Draining()
	close(release) // the last request ends during the drain
	msg := nextMetrics(t, master)
	if !msg.Final || msg.Seq != 0 {
		t.Fatalf("after a drain: seq %d final %v, want a final snapshot", msg.Seq, msg.Final)
	}
	if v := counterValue(t, decode(t, msg), "app_requests_total"); v != 2 {
		t.Errorf("final app_requests_total %v, want 2: the slow request counts", v)
	}
	var after []control.Type
	for {
		m, err := control.Read(master)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
		after = append(after, m.Type)
	}
	if len(after) == 0 || after[len(after)-1] != control.TypeHeartbeat || slices.Contains(after, control.TypeMetrics) {
		t.Errorf("after the final snapshot: %v, want heartbeats only, the last one, then EOF", after)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	<-slow
}

// A quit sends no final snapshot.
func TestWorkerQuitSendsNoFinalMetrics(t *testing.T) {
	w, master := inProcessRole(t)
	done := runRole(t, w, master)
	write(t, master, control.Message{Type: control.TypeQuit})
	for {
		m, err := control.Read(master)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Type == control.TypeMetrics {
			t.Fatalf("a quit sent %+v", m)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// blockingGatherer's Gather waits for the test, one call at a time.
type blockingGatherer struct {
	entered chan struct{}
	release chan struct{}
}

func newBlockingGatherer() *blockingGatherer {
	return &blockingGatherer{entered: make(chan struct{}, 8), release: make(chan struct{})}
}

func (g *blockingGatherer) Gather() ([]*dto.MetricFamily, error) {
	g.entered <- struct{}{}
	<-g.release
	return nil, nil
}

// A slow gather holds neither the control channel nor a stop: the
// master's other messages are handled meanwhile, and Gathers that come
// during it are coalesced into one, for the newest Seq.
func TestWorkerGatherIsOffTheControlChannel(t *testing.T) {
	g := newBlockingGatherer()
	w, master := inProcessRoleWith(t, http.NotFoundHandler(), Options{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler), MetricsGatherer: g})
	done := runRole(t, w, master)
	write(t, master, control.Message{Type: control.TypeGather, Seq: 1})
	<-g.entered
	write(t, master, control.Message{Type: control.TypeGather, Seq: 2})
	write(t, master, control.Message{Type: control.TypeGather, Seq: 3})
	write(t, master, control.Message{Type: control.TypeCloseListeners})
	expect(t, master, control.TypeListenersClosed) // answered while the gather waits
	g.release <- struct{}{}
	if m := nextMetrics(t, master); m.Seq != 1 {
		t.Fatalf("first answer seq %d, want 1", m.Seq)
	}
	<-g.entered
	g.release <- struct{}{}
	if m := nextMetrics(t, master); m.Seq != 3 {
		t.Fatalf("second answer seq %d, want 3: Gather 2 is coalesced into 3", m.Seq)
	}
	// A quit while a gather waits stops the worker at once.
	write(t, master, control.Message{Type: control.TypeGather, Seq: 4})
	<-g.entered
	write(t, master, control.Message{Type: control.TypeQuit})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(g.release)
}

// A drain whose final gather is stuck still ends, without the final
// snapshot, after MetricsTimeout.
func TestWorkerDrainEndsWhenFinalGatherIsStuck(t *testing.T) {
	g := newBlockingGatherer()
	w, master := inProcessRoleWith(t, http.NotFoundHandler(), Options{Addr: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler), MetricsGatherer: g, MetricsTimeout: time.Millisecond})
	done := runRole(t, w, master)
	write(t, master, control.Message{Type: control.TypeDrain, Deadline: time.Minute})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(g.release)
}

// failingGatherer fails every gather.
type failingGatherer struct{}

func (failingGatherer) Gather() ([]*dto.MetricFamily, error) {
	return nil, errors.New("collector broke")
}

// lockedBuffer is a log sink for a handler used from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A failing gatherer is answered with an empty snapshot, and logged once
// as a warning.
func TestWorkerGatherFailureSendsEmptySnapshot(t *testing.T) {
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	w, master := inProcessRoleWith(t, http.NotFoundHandler(), Options{Addr: "127.0.0.1:0", Logger: log, MetricsGatherer: failingGatherer{}})
	done := runRole(t, w, master)
	for seq := uint64(1); seq <= 3; seq++ {
		write(t, master, control.Message{Type: control.TypeGather, Seq: seq})
		if m := nextMetrics(t, master); m.Seq != seq || m.Payload != "" {
			t.Fatalf("answer seq %d with %d bytes, want seq %d, empty", m.Seq, len(m.Payload), seq)
		}
	}
	write(t, master, control.Message{Type: control.TypeQuit})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "worker sends no metrics"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, logs.String())
	}
}
