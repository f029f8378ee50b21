//go:build unix

package prefork_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"syscall"
	"testing"
)

// With a JSON Logger, the master's output is JSON records and nothing
// else: a worker's stray stderr line is one record with its slot and pid,
// a handler's panic (recovered by net/http) is one record with its stack,
// and a worker's crash dump is one record, besides the "exited" record.
func TestE2EWorkerOutputAsRecords(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=1")
	var at int
	addr := p.addr(&at)
	pid := p.ready(&at, 1)[0]
	c := newClient()
	get(t, c, "http://"+addr+"/stderr?line="+url.QueryEscape("a stray line, not JSON"))
	rec := p.waitLog(&at, "worker output", map[string]any{"output": "a stray line, not JSON"})
	if rec["slot"] != 0.0 || pidOf(rec) != pid {
		t.Errorf("stray line record %v, want slot 0 pid %d", rec, pid)
	}

	resp, err := c.Get("http://" + addr + "/panic")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("a panicking handler answered %d", resp.StatusCode)
	}
	rec = p.waitLog(&at, "handler panicked", map[string]any{"panic": "handler boom", "level": "ERROR"})
	if !strings.HasPrefix(rec["remote"].(string), "127.0.0.1:") || !strings.Contains(rec["stack"].(string), "goroutine ") || pidOf(rec) != pid {
		t.Errorf("handler panic record %v", rec)
	}

	c.Get("http://" + addr + "/crash") // the worker dies: no answer
	rec = p.waitLog(&at, "worker crash output", nil)
	out := rec["output"].(string)
	if !strings.HasPrefix(out, "panic: goroutine boom") || !strings.Contains(out, "goroutine ") || pidOf(rec) != pid || rec["level"] != "ERROR" {
		t.Errorf("crash record %v", rec)
	}
	p.waitLog(&at, "exited", map[string]any{"pid": float64(pid)})
	p.ready(&at, 1)
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
	for i, line := range strings.Split(p.output(), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("output line %d is not a JSON record: %q", i, line)
		}
	}
}
