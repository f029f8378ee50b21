package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protodelim"
)

// MaxSnapshot is the largest encoded snapshot [Encode] writes and [Decode]
// reads: a control frame carries at most 4 MiB, and this leaves room in it
// for a few fields besides the snapshot (a scrape's sequence number).
const MaxSnapshot = 4<<20 - 64

// snapshotFormat is the first byte of an encoded snapshot; another value
// is a format this build does not read (a worker of a newer build).
const snapshotFormat = 1

// Errors [Decode], [Merger.Update] and [Merger.Import] return, wrapped
// with detail; test with errors.Is.
var (
	// ErrTooLarge: an encoded snapshot or export is over its cap.
	ErrTooLarge = errors.New("metrics: snapshot too large")
	// ErrFormat: the bytes are not a snapshot or export of a known format.
	ErrFormat = errors.New("metrics: unknown snapshot format")
	// ErrMalformed: a metric family breaks a rule the merge relies on.
	ErrMalformed = errors.New("metrics: malformed snapshot")
	// ErrFinished: an update for a worker already retired or dropped
	// (a late answer), which would otherwise be counted twice.
	ErrFinished = errors.New("metrics: worker already retired or dropped")
)

// Encode writes families, as a worker's [prometheus.Gatherer] returns
// them, in the snapshot format [Decode] reads. It fails with
// [ErrTooLarge] past [MaxSnapshot] bytes.
func Encode(families []*dto.MetricFamily) ([]byte, error) {
	return encodeFamilies(families, MaxSnapshot)
}

func encodeFamilies(families []*dto.MetricFamily, max int) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(snapshotFormat)
	for _, mf := range families {
		if _, err := protodelim.MarshalTo(&buf, mf); err != nil {
			return nil, fmt.Errorf("metrics: encoding family %q: %w", mf.GetName(), err)
		}
		if buf.Len() > max {
			return nil, fmt.Errorf("%w: more than %d bytes at family %q", ErrTooLarge, max, mf.GetName())
		}
	}
	return buf.Bytes(), nil
}

// Decode reads a snapshot [Encode] wrote and checks it: every family named
// once, with a known type whose value each metric carries; label names
// valid and distinct; no two series of a family with the same labels;
// classic buckets in increasing order; native histograms whose spans
// match their buckets.
func Decode(b []byte) ([]*dto.MetricFamily, error) {
	return decodeFamilies(b, MaxSnapshot, false)
}

func decodeFamilies(b []byte, max int, reserved bool) ([]*dto.MetricFamily, error) {
	if len(b) > max {
		return nil, fmt.Errorf("%w: %d bytes (max %d)", ErrTooLarge, len(b), max)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrFormat)
	}
	if b[0] != snapshotFormat {
		return nil, fmt.Errorf("%w: format byte %d (this build reads %d)", ErrFormat, b[0], snapshotFormat)
	}
	r := bytes.NewReader(b[1:])
	opts := protodelim.UnmarshalOptions{MaxSize: int64(max)}
	var fams []*dto.MetricFamily
	for r.Len() > 0 {
		mf := new(dto.MetricFamily)
		if err := opts.UnmarshalFrom(r, mf); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("%w: family %d: %w", ErrMalformed, len(fams)+1, err)
		}
		fams = append(fams, mf)
	}
	if err := validate(fams, reserved); err != nil {
		return nil, err
	}
	return fams, nil
}

// Native histogram schemas client_golang writes (exponential buckets).
const (
	minSchema = -4
	maxSchema = 8
	// maxIndex bounds a native bucket's index: far beyond any float64
	// (schema 8 reaches 2^1024 at index 262144), and small enough that
	// index arithmetic never overflows.
	maxIndex = 1 << 24
)

// validate checks what the merge relies on; see [Decode].
func validate(fams []*dto.MetricFamily, reserved bool) error {
	names := make(map[string]struct{}, len(fams))
	for _, mf := range fams {
		if mf == nil {
			return fmt.Errorf("%w: nil family", ErrMalformed)
		}
		name := mf.GetName()
		if name == "" || !utf8.ValidString(name) {
			return fmt.Errorf("%w: family name %q", ErrMalformed, name)
		}
		if _, dup := names[name]; dup {
			return fmt.Errorf("%w: family %q twice", ErrMalformed, name)
		}
		names[name] = struct{}{}
		if !utf8.ValidString(mf.GetHelp()) || !utf8.ValidString(mf.GetUnit()) {
			return fmt.Errorf("%w: family %q: help or unit not UTF-8", ErrMalformed, name)
		}
		if mf.Type == nil {
			return fmt.Errorf("%w: family %q: no type", ErrMalformed, name)
		}
		if _, ok := dto.MetricType_name[int32(mf.GetType())]; !ok {
			return fmt.Errorf("%w: family %q: type %d", ErrMalformed, name, mf.GetType())
		}
		seen := make(map[string]struct{}, len(mf.Metric))
		for _, m := range mf.Metric {
			if err := validateMetric(mf.GetType(), m, reserved); err != nil {
				return fmt.Errorf("%w: family %q: %w", ErrMalformed, name, err)
			}
			k := labelKey(m.Label)
			if _, dup := seen[k]; dup {
				return fmt.Errorf("%w: family %q: series %s twice", ErrMalformed, name, labelString(m.Label))
			}
			seen[k] = struct{}{}
		}
	}
	return nil
}

func validateMetric(typ dto.MetricType, m *dto.Metric, reserved bool) error {
	if m == nil {
		return errors.New("nil metric")
	}
	for i, lp := range m.Label {
		n := lp.GetName()
		if n == "" || !utf8.ValidString(n) || !utf8.ValidString(lp.GetValue()) {
			return fmt.Errorf("label %q=%q not valid", n, lp.GetValue())
		}
		if !reserved && len(n) >= 2 && n[:2] == "__" {
			return fmt.Errorf("label %q: names starting with __ are reserved", n)
		}
		for _, o := range m.Label[:i] {
			if o.GetName() == n {
				return fmt.Errorf("label %q twice", n)
			}
		}
	}
	var ok bool
	switch typ {
	case dto.MetricType_COUNTER:
		ok = m.Counter != nil
	case dto.MetricType_GAUGE:
		ok = m.Gauge != nil
	case dto.MetricType_UNTYPED:
		ok = m.Untyped != nil
	case dto.MetricType_SUMMARY:
		ok = m.Summary != nil
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		ok = m.Histogram != nil
		if ok {
			if err := validateHistogram(m.Histogram); err != nil {
				return fmt.Errorf("series %s: %w", labelString(m.Label), err)
			}
		}
	}
	if !ok {
		return fmt.Errorf("series %s: no %s value", labelString(m.Label), typ)
	}
	return nil
}

func validateHistogram(h *dto.Histogram) error {
	prev := math.Inf(-1)
	for _, b := range h.Bucket {
		if b == nil {
			return errors.New("nil bucket")
		}
		ub := b.GetUpperBound()
		if math.IsNaN(ub) || ub <= prev {
			return fmt.Errorf("bucket le=%g after le=%g: bounds must increase", ub, prev)
		}
		prev = ub
	}
	if !isNative(h) {
		return nil
	}
	if s := h.GetSchema(); s < minSchema || s > maxSchema {
		return fmt.Errorf("native schema %d (want %d to %d)", s, minSchema, maxSchema)
	}
	if zt := h.GetZeroThreshold(); math.IsNaN(zt) || zt < 0 || math.IsInf(zt, 0) {
		return fmt.Errorf("native zero threshold %g", zt)
	}
	if err := validateSpans(h.PositiveSpan, len(h.PositiveDelta), len(h.PositiveCount)); err != nil {
		return fmt.Errorf("positive buckets: %w", err)
	}
	if err := validateSpans(h.NegativeSpan, len(h.NegativeDelta), len(h.NegativeCount)); err != nil {
		return fmt.Errorf("negative buckets: %w", err)
	}
	return nil
}

func validateSpans(spans []*dto.BucketSpan, deltas, counts int) error {
	if deltas > 0 && counts > 0 {
		return errors.New("both integer and float counts")
	}
	var n, idx int64
	for i, s := range spans {
		if s == nil {
			return errors.New("nil span")
		}
		if i > 0 && s.GetOffset() < 0 {
			return fmt.Errorf("span %d: negative offset %d", i, s.GetOffset())
		}
		idx += int64(s.GetOffset()) + int64(s.GetLength())
		if idx > maxIndex || idx < -maxIndex {
			return fmt.Errorf("span %d: bucket index %d out of range", i, idx)
		}
		n += int64(s.GetLength())
	}
	if n != int64(deltas+counts) {
		return fmt.Errorf("spans cover %d buckets, %d given", n, deltas+counts)
	}
	return nil
}

// isNative reports whether h carries a native (sparse) histogram:
// client_golang sets a schema, or at least a no-op span when empty.
func isNative(h *dto.Histogram) bool {
	return h.Schema != nil || h.ZeroThreshold != nil || len(h.PositiveSpan) > 0 || len(h.NegativeSpan) > 0
}
