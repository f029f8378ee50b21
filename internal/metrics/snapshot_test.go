package metrics

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/encoding/protodelim"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	a := newApp(t)
	a.serve("/", 3, 0.05)
	want, _ := a.reg.Gather()
	got := a.snapshot(t)
	if len(got) != len(want) {
		t.Fatalf("%d families, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].String() != want[i].String() {
			t.Fatalf("family %d:\n got %v\nwant %v", i, got[i], want[i])
		}
	}
}

func TestEncodeTooLarge(t *testing.T) {
	name, help := "big", strings.Repeat("h", MaxSnapshot)
	_, err := Encode([]*dto.MetricFamily{{Name: &name, Help: &help, Type: dto.MetricType_GAUGE.Enum()}})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Encode: %v, want ErrTooLarge", err)
	}
}

// raw encodes families without Encode's checks, as a buggy worker might.
func raw(fams ...*dto.MetricFamily) []byte {
	var b bytes.Buffer
	b.WriteByte(snapshotFormat)
	for _, mf := range fams {
		protodelim.MarshalTo(&b, mf)
	}
	return b.Bytes()
}

func fam(name string, typ dto.MetricType, ms ...*dto.Metric) *dto.MetricFamily {
	return &dto.MetricFamily{Name: &name, Type: typ.Enum(), Metric: ms}
}

func lp(n, v string) *dto.LabelPair { return &dto.LabelPair{Name: &n, Value: &v} }

func badSnapshots() map[string][]byte {
	c := func(labels ...*dto.LabelPair) *dto.Metric {
		return &dto.Metric{Label: labels, Counter: &dto.Counter{Value: f64(1)}}
	}
	one := uint32(1)
	return map[string][]byte{
		"empty":            nil,
		"format":           {2},
		"truncated":        raw(fam("a", dto.MetricType_COUNTER, c()))[:5],
		"length only":      {snapshotFormat, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"no name":          raw(fam("", dto.MetricType_COUNTER)),
		"no type":          raw(&dto.MetricFamily{Name: new(string)}),
		"unknown type":     raw(fam("a", dto.MetricType(9))),
		"family twice":     raw(fam("a", dto.MetricType_COUNTER), fam("a", dto.MetricType_COUNTER)),
		"value missing":    raw(fam("a", dto.MetricType_GAUGE, c())),
		"label twice":      raw(fam("a", dto.MetricType_COUNTER, c(lp("x", "1"), lp("x", "2")))),
		"reserved label":   raw(fam("a", dto.MetricType_COUNTER, c(lp("__x", "1")))),
		"empty label name": raw(fam("a", dto.MetricType_COUNTER, c(lp("", "1")))),
		"series twice":     raw(fam("a", dto.MetricType_COUNTER, c(lp("x", "1"), lp("y", "2")), c(lp("y", "2"), lp("x", "1")))),
		"buckets unordered": raw(fam("a", dto.MetricType_HISTOGRAM, &dto.Metric{Histogram: &dto.Histogram{
			Bucket: []*dto.Bucket{{UpperBound: f64(1)}, {UpperBound: f64(0.5)}}}})),
		"spans mismatch": raw(fam("a", dto.MetricType_HISTOGRAM, &dto.Metric{Histogram: &dto.Histogram{
			Schema: new(int32), PositiveSpan: []*dto.BucketSpan{{Offset: new(int32), Length: &one}}}})),
		"schema": raw(fam("a", dto.MetricType_HISTOGRAM, &dto.Metric{Histogram: &dto.Histogram{
			Schema: func() *int32 { s := int32(9); return &s }()}})),
	}
}

func TestDecodeRejects(t *testing.T) {
	for name, b := range badSnapshots() {
		_, err := Decode(b)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v: neither ErrMalformed nor ErrFormat", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
	if _, err := Decode(make([]byte, MaxSnapshot+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the cap: %v, want ErrTooLarge", err)
	}
}

// FuzzDecode: the decoder never panics; what it accepts merges, folds,
// exports and is served in text without a panic or an encoding error.
func FuzzDecode(f *testing.F) {
	a := newApp(f)
	a.serve("/", 3, 0.05)
	a.serve("/x", 1, 3)
	a.native.Observe(-2)
	good := a.snapshot(f)
	b, err := Encode(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	for _, bad := range badSnapshots() {
		f.Add(bad)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		fams, err := Decode(in)
		if err != nil {
			return
		}
		m := NewMerger()
		if err := m.Update(0, 1, fams, t0); err != nil {
			t.Fatalf("Update of a decoded snapshot: %v", err)
		}
		if err := m.Update(0, 2, good, t0); err != nil {
			t.Fatal(err)
		}
		if err := m.Retire(0, 1, fams); err != nil {
			t.Fatal(err)
		}
		if err := m.Update(0, 3, fams, t0); err != nil {
			t.Fatal(err)
		}
		exp, err := m.Export(true)
		if err != nil {
			t.Fatal(err)
		}
		if err := NewMerger().Import(exp); err != nil {
			t.Fatalf("Import of an export: %v", err)
		}
		out, _ := m.Gather()
		enc := expfmt.NewEncoder(io.Discard, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, mf := range out {
			if err := enc.Encode(mf); err != nil {
				t.Fatalf("encoding %s: %v", mf.GetName(), err)
			}
		}
	})
}

func TestHandlerNegotiatesAndKeepsNativeHistograms(t *testing.T) {
	m := NewMerger()
	a := newApp(t)
	a.serve("/", 3, 0.05)
	a.native.Observe(-2)
	update(t, m, 0, 1, a, t0)
	var refreshed atomic.Int32
	srv := httptest.NewServer(Handler(prometheus.Gatherers{m}, func(ctx context.Context) { refreshed.Add(1) }, nil))
	defer srv.Close()
	get := func(accept string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		return resp
	}
	for accept, want := range map[string]string{
		"text/plain": "text/plain; version=0.0.4",
		"application/openmetrics-text; version=1.0.0": "application/openmetrics-text; version=1.0.0",
	} {
		resp := get(accept)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, want) {
			t.Errorf("Accept %s: Content-Type %s", accept, ct)
		}
		if !strings.Contains(string(body), `app_requests_total{route="/",worker="0"} 3`) {
			t.Errorf("Accept %s: body:\n%s", accept, body)
		}
	}

	resp := get("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")
	defer resp.Body.Close()
	dec := expfmt.NewDecoder(resp.Body, expfmt.ResponseFormat(resp.Header))
	var got *dto.Histogram
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if mf.GetName() == "app_native_seconds" {
			got = mf.Metric[0].Histogram
		}
	}
	want := find(t, a.snapshot(t), "app_native_seconds").Metric[0].Histogram
	if got == nil || len(got.NegativeSpan) == 0 {
		t.Fatalf("native histogram lost: %v", got)
	}
	sameNative(t, got, want)
	if refreshed.Load() != 3 {
		t.Fatalf("refresh called %d times, want 3", refreshed.Load())
	}
}
