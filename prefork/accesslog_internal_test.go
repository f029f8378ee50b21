package prefork

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	core "github.com/gracefork/gracefork/internal/worker"
)

// A combined-format line is Apache's, with "-" for what is missing and the
// quoted fields escaped so that a client cannot forge a line.
func TestCombinedLine(t *testing.T) {
	start := time.Date(2026, 11, 24, 1, 2, 3, 0, time.FixedZone("", -5*3600))
	for name, tc := range map[string]struct {
		target string
		setup  func(*http.Request)
		code   int
		n      int64
		want   string
	}{
		"plain": {"/hello?x=1", nil, 200, 13,
			`192.0.2.1 - - [24/Nov/2026:01:02:03 -0500] "GET /hello?x=1 HTTP/1.1" 200 13 "-" "-"` + "\n"},
		"headers": {"/", func(r *http.Request) {
			r.Header.Set("Referer", "https://example.com/")
			r.Header.Set("User-Agent", "curl/8.5")
			r.SetBasicAuth("ann", "secret")
		}, 404, 0, `192.0.2.1 - ann [24/Nov/2026:01:02:03 -0500] "GET / HTTP/1.1" 404 - "https://example.com/" "curl/8.5"` + "\n"},
		"forged": {"/", func(r *http.Request) {
			r.Header.Set("User-Agent", "x\" 200 1 \"\n127.0.0.1 - - [forged")
		}, 200, 1, `192.0.2.1 - - [24/Nov/2026:01:02:03 -0500] "GET / HTTP/1.1" 200 1 "-" "x\" 200 1 \"\x0a127.0.0.1 - - [forged"` + "\n"},
		"hijacked": {"/ws", nil, core.Hijacked, 0,
			`192.0.2.1 - - [24/Nov/2026:01:02:03 -0500] "GET /ws HTTP/1.1" - - "-" "-"` + "\n"},
	} {
		r := httptest.NewRequest("GET", tc.target, nil)
		if tc.setup != nil {
			tc.setup(r)
		}
		var b bytes.Buffer
		appendCombined(&b, r, tc.code, tc.n, start)
		if b.String() != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", name, b.String(), tc.want)
		}
	}
}

// The access log's cost per request, on top of the serving core's (see
// internal/worker's BenchmarkHandlerWrapped*): one record through slog's
// JSON handler, or one combined-format line, to io.Discard.
func BenchmarkAccessLogJSON(b *testing.B) {
	obs := accessRecord(slog.New(slog.NewJSONHandler(io.Discard, nil)), 1, 4242)
	benchAccess(b, obs)
}

func BenchmarkAccessLogText(b *testing.B) {
	obs := accessRecord(slog.New(slog.NewTextHandler(io.Discard, nil)), 1, 4242)
	benchAccess(b, obs)
}

func BenchmarkAccessLogCombined(b *testing.B) {
	benchAccess(b, (&combinedLog{out: io.Discard}).write)
}

func benchAccess(b *testing.B, obs func(*http.Request, int, int64, time.Duration)) {
	r := httptest.NewRequest("GET", "/hello?x=1", nil)
	r.Header.Set("User-Agent", "bench/1.0")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			obs(r, 200, 13, 1500*time.Microsecond)
		}
	})
}
