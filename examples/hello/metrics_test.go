package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/gracefork/gracefork/prefork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestParseFlagsMetrics(t *testing.T) {
	c, err := parseFlagsTo(strings.Fields("-metrics-addr :9100 -worker-metrics"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o := c.options(); o.MetricsAddr != ":9100" || !o.WorkerMetrics {
		t.Errorf("options: MetricsAddr %q WorkerMetrics %v", o.MetricsAddr, o.WorkerMetrics)
	}
	c, err = parseFlagsTo(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o := c.options(); o.MetricsAddr != "" || o.WorkerMetrics {
		t.Errorf("default options: MetricsAddr %q WorkerMetrics %v, want both off", o.MetricsAddr, o.WorkerMetrics)
	}
	err = usageError(&prefork.OptionError{Field: "MetricsAddr", Value: "localhost", Reason: "missing port"},
		mustParse(t, "-metrics-addr localhost").fs)
	if err == nil || err.Error() != "-metrics-addr localhost: missing port" {
		t.Errorf("usageError = %v", err)
	}
}

func mustParse(t *testing.T, args string) config {
	t.Helper()
	c, err := parseFlagsTo(strings.Fields(args), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return c
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
