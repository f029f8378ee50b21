package prefork

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// A Go crash dump is kept whole in Exit.Stderr, however many lines it has
// beyond the tail's 20, with the lines that led to it.
func TestTailKeepsCrashDumpWhole(t *testing.T) {
	var sink bytes.Buffer
	tw := &tailWriter{w: &sink, max: 3}
	for i := range 10 {
		fmt.Fprintf(tw, "log %d\n", i)
	}
	var dump []string
	dump = append(dump, "SIGABRT: abort", "PC=0x481f01 m=0 sigcode=0", "")
	for i := range 200 {
		dump = append(dump, fmt.Sprintf("goroutine %d gp=0x1 m=nil [chan receive]:", i), "main.handler(...)", "\t/src/app/main.go:10 +0x19", "")
	}
	tw.Write([]byte(strings.Join(dump, "\n") + "\n"))
	got := tw.lines()
	want := append([]string{"log 7", "log 8", "log 9"}, dump...)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("kept %d lines, want the last 3 log lines and the %d of the dump; first: %q", len(got), len(dump), got[:min(5, len(got))])
	}
	if !strings.HasSuffix(sink.String(), strings.Join(dump, "\n")+"\n") {
		t.Fatal("the dump was not passed through")
	}
}

func TestTailDumpStarts(t *testing.T) {
	for line, want := range map[string]bool{
		"panic: boom":                           true,
		"fatal error: concurrent map writes":    true,
		"SIGABRT: abort":                        true,
		"SIGQUIT: quit":                         true,
		"SIGSEGV: segmentation violation":       true,
		"goroutine 1 [running]:":                false,
		"\tpanic: nested":                       false,
		"time=… msg=\"panic: in a log record\"": false,
		"SIG: x":                            false,
		"SIGnal: x":                         false,
		"http: panic serving 1.2.3.4: boom": false,
	} {
		if dumpStart(line) != want {
			t.Errorf("dumpStart(%q) = %v", line, !want)
		}
	}
}

// A dump past the cap is cut with a note; the end of the output is still
// kept, and a later crash begins a dump of its own.
func TestTailCapsCrashDump(t *testing.T) {
	tw := &tailWriter{w: &bytes.Buffer{}, max: 2, dumpMax: 100}
	fmt.Fprintf(tw, "before\npanic: looks like one\n")
	for i := range 50 {
		fmt.Fprintf(tw, "line %02d\n", i) // 8 bytes with the newline
	}
	got := tw.lines()
	// "before", the dump start (22 bytes) and 9 lines of 8 (94 in all),
	// a note for the 39 lines neither kept in the dump nor after it, the
	// last 2.
	if len(got) != 1+1+9+1+2 || got[0] != "before" || got[1] != "panic: looks like one" || got[10] != "line 08" ||
		!strings.Contains(got[11], "39 lines cut") || got[12] != "line 48" || got[13] != "line 49" {
		t.Fatalf("capped dump kept %q", got)
	}
	fmt.Fprintf(tw, "fatal error: the real one\ngoroutine 1 [running]:\n")
	got = tw.lines()
	if strings.Join(got, "|") != "line 48|line 49|fatal error: the real one|goroutine 1 [running]:" {
		t.Fatalf("after a cut dump, a new crash kept as %q", got)
	}
}
