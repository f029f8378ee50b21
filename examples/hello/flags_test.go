package main

import (
	"context"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork"
	"github.com/gracefork/gracefork/recycle"
)

func TestParseFlagsRecycle(t *testing.T) {
	c, err := parseFlagsTo(strings.Fields(`-max-requests 20000 -max-requests-jitter 2000 -max-age 1h -max-age-jitter 5m
		-max-memory 512MiB -min-recycle-interval 10s -heartbeat-timeout 2s -request-timeout 1s`), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o := c.opts
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
	if o := c.opts; o.Recycle.Enabled() || o.RequestTimeout != 0 || o.HeartbeatTimeout != 0 {
		t.Errorf("default options: Recycle %+v RequestTimeout %s HeartbeatTimeout %s", o.Recycle, o.RequestTimeout, o.HeartbeatTimeout)
	}
}

// hello's defaults, Gunicorn's names and the older ones, and the
// environment under the flags.
func TestParseFlagsNamesAndEnvironment(t *testing.T) {
	for _, k := range []string{"PORT", "WEB_CONCURRENCY", "GRACEFORK_WORKERS", "GRACEFORK_BIND"} {
		t.Setenv(k, "") // empty is unset
	}
	c := mustParse(t, "")
	if o := c.opts; o.Addr != "127.0.0.1:8080" || o.Workers != 2 || o.Server == nil || o.Server.ReadHeaderTimeout != 10*time.Second {
		t.Errorf("defaults: %+v", o)
	}
	c = mustParse(t, "-w 3 -b 127.0.0.1:1 --bind unix:/tmp/hello.sock -p /tmp/h.pid -t 5 --keep-alive 4 -metrics-bind :9101")
	if o := c.opts; o.Workers != 3 || o.Addr != "127.0.0.1:1" || !reflect.DeepEqual(o.Addrs, []string{"unix:/tmp/hello.sock"}) ||
		o.PIDFile != "/tmp/h.pid" || o.HeartbeatTimeout != 5*time.Second || o.MetricsAddr != ":9101" ||
		o.Server.IdleTimeout != 4*time.Second || o.Server.ReadHeaderTimeout != 10*time.Second {
		t.Errorf("Gunicorn's names: %+v", o)
	}
	c = mustParse(t, "-addr 127.0.0.1:2 -pidfile /tmp/o.pid -heartbeat-timeout 6s -metrics-addr :9102")
	if o := c.opts; o.Addr != "127.0.0.1:2" || o.PIDFile != "/tmp/o.pid" || o.HeartbeatTimeout != 6*time.Second || o.MetricsAddr != ":9102" {
		t.Errorf("older names: %+v", o)
	}
	t.Setenv("PORT", "5000")
	t.Setenv("WEB_CONCURRENCY", "4")
	if o := mustParse(t, "").opts; o.Addr != ":5000" || o.Workers != 4 {
		t.Errorf("PORT and WEB_CONCURRENCY: Addr %q Workers %d", o.Addr, o.Workers)
	}
	t.Setenv("GRACEFORK_WORKERS", "5")
	if o := mustParse(t, "-addr 127.0.0.1:3").opts; o.Addr != "127.0.0.1:3" || o.Workers != 5 {
		t.Errorf("a flag over PORT, GRACEFORK_WORKERS over WEB_CONCURRENCY: Addr %q Workers %d", o.Addr, o.Workers)
	}
}

// A bad value is refused with the flag and the value as typed.
func TestParseFlagsBadValues(t *testing.T) {
	for args, want := range map[string]string{
		"-max-memory 12XB":          `invalid value "12XB" for flag -max-memory: unknown unit "XB"`,
		"-max-memory -5":            `invalid value "-5" for flag -max-memory`,
		"-max-requests -1":          `invalid value "-1" for flag -max-requests: must not be negative`,
		"-max-requests many":        `invalid value "many" for flag -max-requests`,
		"-max-age -1s":              `invalid value "-1s" for flag -max-age: must not be negative`,
		"-max-age-jitter -1m":       `invalid value "-1m" for flag -max-age-jitter: must not be negative`,
		"-min-recycle-interval -2s": `-min-recycle-interval -2s: must not be negative`,
		"-heartbeat-timeout -2s":    `invalid value "-2s" for flag -heartbeat-timeout: must not be negative`,
		"-request-timeout 1":        `invalid value "1" for flag -request-timeout`,
		"-request-timeout -1s":      `-request-timeout -1s: must not be negative`,
		"-max-requests 10 stray":    `unexpected arguments ["stray"]`,
		"-access-log-format json":   `hello: -access-log-format json: needs -access-logfile`,
	} {
		var out strings.Builder
		_, err := parseFlagsTo(strings.Fields(args), &out)
		if err == nil || !strings.Contains(out.String(), want) {
			t.Errorf("%s: error %v, printed %q; want %q", args, err, out.String(), want)
		}
	}
}

// A value only the library can judge is still reported by its flag, as
// typed.
func TestUsageErrorNamesTheFlag(t *testing.T) {
	for args, want := range map[string]string{
		"-heartbeat-timeout 1s":     "-heartbeat-timeout 1s: must be at least 2s",
		"-timeout 1":                "-timeout 1: must be at least 2s",
		"-max-requests-jitter 2000": "-max-requests-jitter 2000: needs -max-requests: it spreads that limit",
		"-max-age-jitter 5m":        "-max-age-jitter 5m: needs -max-age",
		"-metrics-addr localhost":   `-metrics-addr localhost: missing port in address`,
		"-pidfile /no/such/dir/x":   "-pidfile /no/such/dir/x: its directory does not exist",
	} {
		c := mustParse(t, args)
		if err := c.fl.UsageError(c.opts.Validate()); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: UsageError = %v, want %q", args, err, want)
		}
	}
	c := mustParse(t, "-workers 3")
	if err := c.fl.UsageError(&prefork.OptionError{Field: "Addr", Value: "x", Reason: "in use", Err: io.EOF}); err != nil {
		t.Errorf("a bind failure is not a usage error: %v", err)
	}
	if err := c.fl.UsageError(io.EOF); err != nil {
		t.Errorf("UsageError(io.EOF) = %v", err)
	}
	if err := c.fl.UsageError(flag.ErrHelp); err != nil {
		t.Errorf("UsageError(flag.ErrHelp) = %v", err)
	}
}

func mustParse(t *testing.T, args string) *config {
	t.Helper()
	var out strings.Builder
	c, err := parseFlagsTo(strings.Fields(args), &out)
	if err != nil {
		t.Fatalf("%s: %v\n%s", args, err, out.String())
	}
	return c
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
