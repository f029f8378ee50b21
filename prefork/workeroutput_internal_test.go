package prefork

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// records decodes the JSON records in b, each as msg + output (or the
// raw line for one that passed through).
func records(t *testing.T, b *bytes.Buffer) []string {
	t.Helper()
	var out []string
	for line := range strings.Lines(b.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			out = append(out, "raw "+strings.TrimSuffix(line, "\n"))
			continue
		}
		if o, ok := rec["output"]; ok {
			out = append(out, rec["level"].(string)+" "+rec["msg"].(string)+": "+o.(string))
		} else {
			out = append(out, "raw "+rec["msg"].(string))
		}
	}
	return out
}

func TestOutputRecords(t *testing.T) {
	var logs bytes.Buffer
	o := &outputRecords{raw: &logs, log: slog.New(slog.NewJSONHandler(&logs, nil))}
	// Writes cut lines anywhere, as a pipe does.
	for _, chunk := range []string{
		"stray one\nstray ", "two\r\n",
		`{"level":"INFO","msg":"own record"}` + "\n",
		"time=2026-01-01T00:00:00Z level=INFO msg=\"text record\"\n",
		"{not json}\n",
		"panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n\t/x.go:3 +0x1\n",
		`{"level":"INFO","msg":"after the dump"}` + "\n",
		"fatal error: all goroutines are asleep\n\tmore\nunended",
	} {
		o.Write([]byte(chunk))
	}
	o.end()
	got := strings.Join(records(t, &logs), "\n")
	want := strings.Join([]string{
		"INFO worker output: stray one",
		"INFO worker output: stray two",
		"raw own record",
		"raw time=2026-01-01T00:00:00Z level=INFO msg=\"text record\"",
		"INFO worker output: {not json}",
		"ERROR worker crash output: panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n\t/x.go:3 +0x1",
		"raw after the dump",
		"ERROR worker crash output: fatal error: all goroutines are asleep\n\tmore\nunended",
	}, "\n")
	if got != want {
		t.Errorf("records:\n%s\nwant:\n%s", got, want)
	}
}

// A line is slog's text format only with a level= and a msg= after a
// time= or level= start.
func TestIsRecord(t *testing.T) {
	for line, want := range map[string]bool{
		`{"msg":"x"}`:                          true,
		`{"msg":`:                              false,
		`time=2026 level=INFO msg=x`:           true,
		`level=WARN msg="a b" k=v`:             true,
		`time=2026 msg=x`:                      false,
		`2026/01/01 00:00:00 level=INFO msg=x`: false,
		``:                                     false,
	} {
		if got := isRecord(line); got != want {
			t.Errorf("isRecord(%q) = %v, want %v", line, got, want)
		}
	}
}

// A dump larger than maxDump comes in several records, none larger.
func TestOutputRecordsLongDump(t *testing.T) {
	var logs bytes.Buffer
	o := &outputRecords{raw: &logs, log: slog.New(slog.NewJSONHandler(&logs, nil))}
	o.Write([]byte("SIGABRT: abort\n"))
	line := strings.Repeat("x", 1023) + "\n"
	for range 300 { // 300 KiB
		o.Write([]byte(line))
	}
	o.end()
	recs := records(t, &logs)
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	if !strings.HasPrefix(recs[0], "ERROR worker crash output: SIGABRT: abort\n") {
		t.Errorf("the first record does not begin with the dump: %.60q", recs[0])
	}
	for _, r := range recs {
		if !strings.HasPrefix(r, "ERROR worker crash output: ") || len(r) > maxDump+64 {
			t.Errorf("record of %d bytes: %.60q", len(r), r)
		}
	}
}

func TestServerErrorLog(t *testing.T) {
	var logs bytes.Buffer
	l := serverErrorLog(slog.New(slog.NewJSONHandler(&logs, nil)))
	l.Printf("http: panic serving [::1]:5555: boom: deep\n%s", "goroutine 7 [running]:\nmain.h()\n")
	l.Printf("http: TLS handshake error from 127.0.0.1:9: EOF")
	var recs []map[string]any
	for line := range strings.Lines(logs.String()) {
		var rec map[string]any
		json.Unmarshal([]byte(line), &rec)
		recs = append(recs, rec)
	}
	if len(recs) != 2 {
		t.Fatalf("records: %s", logs.String())
	}
	if r := recs[0]; r["msg"] != "handler panicked" || r["level"] != "ERROR" || r["remote"] != "[::1]:5555" ||
		r["panic"] != "boom: deep" || r["stack"] != "goroutine 7 [running]:\nmain.h()" {
		t.Errorf("panic record %v", r)
	}
	if r := recs[1]; r["msg"] != "http: TLS handshake error from 127.0.0.1:9: EOF" || r["level"] != "WARN" {
		t.Errorf("other record %v", r)
	}
}
