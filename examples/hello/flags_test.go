package main

import (
	"context"
	"flag"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork"
	"github.com/gracefork/gracefork/recycle"
)

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]uint64{
		"0": 0, "1048576": 1 << 20, "512MiB": 512 << 20, "512mib": 512 << 20, "512Mi": 512 << 20,
		"1GiB": 1 << 30, "800M": 800e6, "800MB": 800e6, "1.5GiB": 3 << 29, "2k": 2000, "2KiB": 2048,
		" 64 MiB ": 64 << 20, "10B": 10, "1TiB": 1 << 40, "18446744073709551615": math.MaxUint64,
		"0.5B": 0,
	} {
		got, err := parseBytes(in)
		if err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, wantErr := range map[string]string{
		"":                                "want a number",
		"MiB":                             "want a number",
		"-1":                              "want a number",
		"12XB":                            `unknown unit "XB"`,
		"1e9":                             `unknown unit "e9"`,
		"1.2.3M":                          `"1.2.3" is not a number`,
		"18446744073709551616":            "too large",
		"20000000TiB":                     "too large",
		"1e300":                           `unknown unit`,
		"99999999999999999999999999.5TiB": "too large",
	} {
		if _, err := parseBytes(in); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("parseBytes(%q) error %v, want one containing %q", in, err, wantErr)
		}
	}
}

// FuzzParseBytes: no input panics, a plain number is that many bytes, and
// a size that parses prints back (byteSize.String) to the same size.
func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"512MiB", "1GiB", "800M", "1048576", "1.5G", "0", "", "-1", "12XB", "18446744073709551615", "16EiB", "0.0000001TiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseBytes(s)
		if err != nil {
			return
		}
		if u, perr := strconv.ParseUint(s, 10, 64); perr == nil && u != n {
			t.Fatalf("parseBytes(%q) = %d, want %d", s, n, u)
		}
		b := byteSize(n)
		back, err := parseBytes(b.String())
		if err != nil || back != n {
			t.Fatalf("parseBytes(%q) = %d, printed %q, read back %d, %v", s, n, b.String(), back, err)
		}
	})
}

func TestParseFlagsRecycle(t *testing.T) {
	c, err := parseFlagsTo(strings.Fields(`-max-requests 20000 -max-requests-jitter 2000 -max-age 1h -max-age-jitter 5m
		-max-memory 512MiB -min-recycle-interval 10s -heartbeat-timeout 2s -request-timeout 1s`), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o := c.options()
	want := recycle.Policy{MaxRequests: 20000, MaxRequestsJitter: 2000, MaxAge: time.Hour, MaxAgeJitter: 5 * time.Minute,
		MaxMemory: 512 << 20, MinInterval: 10 * time.Second}
	if !reflect.DeepEqual(o.Recycle, want) || o.HeartbeatTimeout != 2*time.Second || o.RequestTimeout != time.Second {
		t.Errorf("options: Recycle %+v HeartbeatTimeout %s RequestTimeout %s", o.Recycle, o.HeartbeatTimeout, o.RequestTimeout)
	}
	// Without the flags: no recycling, no request timeout, the library's
	// heartbeat timeout.
	c, err = parseFlagsTo(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o := c.options(); o.Recycle.Enabled() || o.RequestTimeout != 0 || o.HeartbeatTimeout != prefork.DefaultHeartbeatTimeout {
		t.Errorf("default options: Recycle %+v RequestTimeout %s HeartbeatTimeout %s", o.Recycle, o.RequestTimeout, o.HeartbeatTimeout)
	}
}

// A bad value is refused with the flag and the value as typed.
func TestParseFlagsBadValues(t *testing.T) {
	for args, want := range map[string]string{
		"-max-memory 12XB":                `invalid value "12XB" for flag -max-memory: unknown unit "XB"`,
		"-max-memory -5":                  `invalid value "-5" for flag -max-memory`,
		"-max-requests -1":                `invalid value "-1" for flag -max-requests`,
		"-max-requests many":              `invalid value "many" for flag -max-requests`,
		"-max-requests-jitter 2000":       `-max-requests-jitter 2000: needs -max-requests: it spreads that limit`,
		"-max-age-jitter 5m":              `-max-age-jitter 5m0s: needs -max-age`,
		"-max-age -1s":                    `-max-age -1s: must not be negative`,
		"-max-age 1h -max-age-jitter -1m": `-max-age-jitter -1m0s: must not be negative`,
		"-min-recycle-interval -2s":       `-min-recycle-interval -2s: must not be negative`,
		"-heartbeat-timeout -2s":          `-heartbeat-timeout -2s: must not be negative`,
		"-request-timeout 1":              `invalid value "1" for flag -request-timeout`,
		"-request-timeout -1s":            `-request-timeout -1s: must not be negative`,
		"-max-requests 10 stray":          `unexpected arguments ["stray"]`,
	} {
		var out strings.Builder
		_, err := parseFlagsTo(strings.Fields(args), &out)
		if err == nil || !strings.Contains(out.String(), want) {
			t.Errorf("%s: error %v, printed %q; want %q", args, err, out.String(), want)
		}
	}
}

// A value only the library can judge is still reported by its flag.
func TestUsageErrorNamesTheFlag(t *testing.T) {
	c, err := parseFlagsTo([]string{"-heartbeat-timeout", "1s", "-workers", "-3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	err = usageError(&prefork.OptionError{Field: "HeartbeatTimeout", Value: time.Second, Reason: "must be at least 2s"}, c.fs)
	if err == nil || err.Error() != "-heartbeat-timeout 1s: must be at least 2s" {
		t.Errorf("usageError = %v", err)
	}
	if err := usageError(&prefork.OptionError{Field: "Addr", Value: "x", Reason: "in use", Err: io.EOF}, c.fs); err != nil {
		t.Errorf("a bind failure is not a usage error: %v", err)
	}
	if err := usageError(io.EOF, c.fs); err != nil {
		t.Errorf("usageError(io.EOF) = %v", err)
	}
	if err := usageError(flag.ErrHelp, c.fs); err != nil {
		t.Errorf("usageError(flag.ErrHelp) = %v", err)
	}
}

// get serves one request to the demo's handlers with ctx, in a goroutine,
// and fails the test if the handler never returns.
func get(t *testing.T, ctx context.Context, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		newMux(42).ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, target, nil))
	}()
	select {
	case <-done:
	case <-time.After(time.Minute): // a hang guard, not a timing assertion
		t.Fatalf("GET %s: the handler did not return", target)
	}
	return rec
}

func TestSlowHonoursItsContext(t *testing.T) {
	if rec := get(t, context.Background(), "/slow?d=1ms"); rec.Code != http.StatusOK || !strings.HasPrefix(rec.Body.String(), "slept 1ms, worker=") {
		t.Errorf("/slow?d=1ms = %d %q", rec.Code, rec.Body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// An hour's sleep ends with its request: the test would hang otherwise.
	if rec := get(t, ctx, "/slow?d=1h"); strings.Contains(rec.Body.String(), "slept") {
		t.Errorf("/slow?d=1h with a cancelled context answered %q", rec.Body)
	}
}

func TestStuckIgnoresItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// It sleeps on although its request is over, and says so.
	if rec := get(t, ctx, "/stuck?d=5ms"); !strings.HasPrefix(rec.Body.String(), "slept 5ms, worker=") {
		t.Errorf("/stuck?d=5ms with a cancelled context = %d %q", rec.Code, rec.Body)
	}
}

func TestSleepParamRefusesBadDurations(t *testing.T) {
	for _, target := range []string{"/slow", "/slow?d=", "/slow?d=ten", "/stuck?d=-1s", "/stuck?d=2h"} {
		if rec := get(t, context.Background(), target); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "want ?d=<duration>") {
			t.Errorf("%s = %d %q, want 400", target, rec.Code, rec.Body)
		}
	}
}
