package main

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestParseFlagsMetrics(t *testing.T) {
	if o := mustParse(t, "-metrics-bind :9100 -worker-metrics").opts; o.MetricsAddr != ":9100" || !o.WorkerMetrics {
		t.Errorf("options: MetricsAddr %q WorkerMetrics %v", o.MetricsAddr, o.WorkerMetrics)
	}
	if o := mustParse(t, "").opts; o.MetricsAddr != "" || o.WorkerMetrics {
		t.Errorf("default options: MetricsAddr %q WorkerMetrics %v, want both off", o.MetricsAddr, o.WorkerMetrics)
	}
}

// Every answer of / counts in hello_requests_total, on the default
// registry, which a worker reports to its master by default.
func TestHelloCountsItsAnswers(t *testing.T) {
	before := testutil.ToFloat64(helloRequests)
	get(t, context.Background(), "/")
	get(t, context.Background(), "/")
	get(t, context.Background(), "/slow?d=1ms") // not an answer of /
	if n := testutil.ToFloat64(helloRequests) - before; n != 2 {
		t.Errorf("hello_requests_total grew by %v, want 2", n)
	}
	fams, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range fams {
		found = found || f.GetName() == "hello_requests_total"
	}
	if !found {
		t.Error("hello_requests_total is not on the default registry")
	}
}
