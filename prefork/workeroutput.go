package prefork

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"strings"
)

// outputRecords turns what a worker writes to its standard error into log
// records of the master's Logger, with the worker's slot and pid: each
// line one record ("worker output"), and a Go crash dump — from its first
// line (see dumpStart) to the end of the output — one record ("worker
// crash output", level ERROR), so that a JSON log stays one record a line.
// Lines that are log records already — the worker's own Logger writing to
// stderr as JSON, or as slog's text with level= and msg= — pass through to
// raw as they are.
//
// A dump record is written at the end of the output (the process exited),
// when a line that is a record follows it, or when it reaches maxDump
// (then the rest follows in further records). One goroutine writes; the
// master's Logger is safe for that.
type outputRecords struct {
	raw  io.Writer
	log  *slog.Logger
	part []byte   // a line not yet ended
	dump []string // the crash dump being gathered
	size int
}

func (o *outputRecords) Write(p []byte) (int, error) {
	o.part = append(o.part, p...)
	for {
		i := bytes.IndexByte(o.part, '\n')
		if i < 0 {
			break
		}
		o.line(o.part[:i+1])
		o.part = o.part[i+1:]
	}
	if len(o.part) > 64<<10 { // a runaway line without a newline
		o.line(o.part)
		o.part = nil
	}
	o.part = append(o.part[:0:0], o.part...) // let the consumed bytes go
	return len(p), nil
}

func (o *outputRecords) line(b []byte) {
	text := strings.TrimRight(string(b), "\r\n")
	switch {
	case isRecord(text):
		o.flush()
		o.raw.Write(b)
	case o.dump != nil || dumpStart(text):
		o.dump = append(o.dump, text)
		if o.size += len(text) + 1; o.size >= maxDump {
			o.flush()
			o.dump = []string{} // the dump goes on in the next record
		}
	case text != "": // a blank line says nothing
		o.log.Info("worker output", "output", text)
	}
}

// flush writes the dump gathered so far, if any.
func (o *outputRecords) flush() {
	if len(o.dump) > 0 {
		o.log.Error("worker crash output", "output", strings.Join(o.dump, "\n"))
	}
	o.dump, o.size = nil, 0
}

// end is the end of the output: the last line, even unended, and the
// dump are written.
func (o *outputRecords) end() {
	if len(o.part) > 0 {
		o.line(o.part)
		o.part = nil
	}
	o.flush()
}

// isRecord reports whether a line is a log record already: a JSON object,
// or slog's text format (logfmt with level= and msg=).
func isRecord(line string) bool {
	if strings.HasPrefix(line, "{") {
		return json.Valid([]byte(line))
	}
	return (strings.HasPrefix(line, "time=") || strings.HasPrefix(line, "level=")) &&
		strings.Contains(line, "level=") && strings.Contains(line, " msg=")
}

// serverErrorLog is an http.Server's ErrorLog that writes each message as
// one record of l: net/http's "http: panic serving <remote>: <value>" and
// the handler's stack as "handler panicked" (level ERROR, with remote,
// panic and stack), its other complaints — a TLS handshake that failed,
// an accept error — as they are, at WARN.
func serverErrorLog(l *slog.Logger) *log.Logger {
	return log.New(errorLogWriter{l}, "", 0)
}

type errorLogWriter struct{ log *slog.Logger }

func (e errorLogWriter) Write(p []byte) (int, error) {
	msg, stack, _ := strings.Cut(strings.TrimRight(string(p), "\n"), "\n")
	if rest, ok := strings.CutPrefix(msg, "http: panic serving "); ok {
		remote, value, _ := strings.Cut(rest, ": ")
		e.log.Error("handler panicked", "remote", remote, "panic", value, "stack", stack)
		return len(p), nil
	}
	if stack != "" {
		e.log.Warn(msg, "more", stack)
	} else {
		e.log.Warn(msg)
	}
	return len(p), nil
}
