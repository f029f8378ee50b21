//go:build unix

package prefork_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// With Options.AccessLog each request is one record from the process that
// served it: slot, pid, method, path, status, bytes, a duration as people
// write it, the client's address. In both modes.
func TestE2EAccessLogRecords(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			p := startMaster(t, append(m.env, "TEST_ACCESS_LOG=1")...)
			var at int
			addr := p.addr(&at)
			p.serving(&at, m.n)
			if code, _, err := probe(addr, "/?who=me"); err != nil || code != 200 {
				t.Fatalf("GET: %d %v", code, err)
			}
			rec := p.waitLog(&at, "request", map[string]any{"path": "/?who=me"})
			if rec["method"] != "GET" || rec["status"] != float64(200) || rec["proto"] != "HTTP/1.1" {
				t.Errorf("record %v", rec)
			}
			if n, _ := rec["bytes"].(float64); n <= 0 {
				t.Errorf("bytes %v, want the body's length", rec["bytes"])
			}
			if d, err := time.ParseDuration(rec["duration"].(string)); err != nil || d <= 0 {
				t.Errorf("duration %v: %v", rec["duration"], err)
			}
			if !strings.HasPrefix(rec["remote"].(string), "127.0.0.1:") {
				t.Errorf("remote %v", rec["remote"])
			}
			slot, _ := rec["slot"].(float64)
			if (m.n == 0 && slot != -1) || (m.n > 0 && (slot < 0 || slot >= float64(m.n))) {
				t.Errorf("slot %v", rec["slot"])
			}
			p.signal(syscall.SIGTERM)
			if code := p.wait(); code != 0 {
				t.Fatalf("exit %d", code)
			}
		})
	}
}

// With Options.AccessLogCombined every worker appends whole lines in
// Apache's combined format to one file.
func TestE2EAccessLogCombined(t *testing.T) {
	file := filepath.Join(t.TempDir(), "access.log")
	p := startMaster(t, "TEST_WORKERS=2", "TEST_ACCESS_LOG_COMBINED="+file)
	var at int
	addr := p.addr(&at)
	p.serving(&at, 2)
	load := startLoad(addr, 8)
	load.waitMore(t, 400)
	load.finish(t)
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET / HTTP/1\.1" 200 \d+ "-" "-"$`)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for i, l := range lines {
		if !line.MatchString(l) {
			t.Fatalf("line %d is not a combined-format line: %q", i+1, l)
		}
	}
	if len(lines) != load.count() {
		t.Errorf("%d lines for %d requests answered", len(lines), load.count())
	}
}
