package prefork

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	core "github.com/gracefork/gracefork/internal/worker"
)

// observer is what the serving core calls after each request: the worker
// metrics (WorkerMetrics) and the access log (AccessLog,
// AccessLogCombined), or nil when none is on, which costs nothing.
func (w *workerRole) observer() func(*http.Request, int, int64, time.Duration) {
	var obs []func(*http.Request, int, int64, time.Duration)
	if w.gath.private != nil {
		obs = append(obs, w.gath.private.Observe)
	}
	if l := w.cfg.AccessLog; l != nil {
		obs = append(obs, accessRecord(l, WorkerID(), os.Getpid()))
	}
	if out := w.cfg.AccessLogCombined; out != nil {
		obs = append(obs, (&combinedLog{out: out}).write)
	}
	switch len(obs) {
	case 0:
		return nil
	case 1:
		return obs[0]
	}
	return func(r *http.Request, code int, n int64, d time.Duration) {
		for _, o := range obs {
			o(r, code, n, d)
		}
	}
}

// accessRecord logs one record per request: the slot (-1 in
// single-process mode) and pid of the process that served it, the method,
// the path with its query, the status (0 for a hijacked connection, which
// hijacked=true marks), the body bytes, the duration as people write it,
// the client's address and the protocol.
func accessRecord(l *slog.Logger, slot, pid int) func(*http.Request, int, int64, time.Duration) {
	return func(r *http.Request, code int, n int64, d time.Duration) {
		attrs := []slog.Attr{
			slog.Int("slot", slot), slog.Int("pid", pid),
			slog.String("method", r.Method), slog.String("path", r.URL.RequestURI()),
			slog.Int("status", code), slog.Int64("bytes", n), slog.String("duration", d.String()),
			slog.String("remote", r.RemoteAddr), slog.String("proto", r.Proto),
		}
		if code == core.Hijacked {
			attrs = append(attrs, slog.Bool("hijacked", true))
		}
		l.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
	}
}

// combinedLog writes Apache's combined log format,
//
//	%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"
//
// one line per request, in one Write: lines from the goroutines of one
// process never interleave, and lines of several workers appending to one
// file or pipe do not either (a pipe writes up to 4 KiB at once, a file
// opened with O_APPEND each write whole).
type combinedLog struct {
	mu  sync.Mutex
	out io.Writer
}

var lineBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (c *combinedLog) write(r *http.Request, code int, n int64, d time.Duration) {
	b := lineBufs.Get().(*bytes.Buffer)
	b.Reset()
	appendCombined(b, r, code, n, time.Now().Add(-d))
	c.mu.Lock()
	c.out.Write(b.Bytes())
	c.mu.Unlock()
	if b.Cap() <= 64<<10 {
		lineBufs.Put(b)
	}
}

// appendCombined writes one combined-format line for r, begun at start.
// Quoted fields escape quotes, backslashes and control bytes as Apache
// does (\", \\, \xhh), so that a client cannot forge a line.
func appendCombined(b *bytes.Buffer, r *http.Request, code int, n int64, start time.Time) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	b.WriteString(orDash(host))
	b.WriteString(" - ")
	user, _, _ := r.BasicAuth()
	escaped(b, orDash(user))
	b.WriteString(start.Format(" [02/Jan/2006:15:04:05 -0700] \""))
	escaped(b, r.Method+" "+r.RequestURI+" "+r.Proto)
	b.WriteString("\" ")
	if code == core.Hijacked {
		b.WriteByte('-')
	} else {
		b.WriteString(strconv.Itoa(code))
	}
	b.WriteByte(' ')
	if n == 0 {
		b.WriteByte('-')
	} else {
		b.WriteString(strconv.FormatInt(n, 10))
	}
	b.WriteString(" \"")
	escaped(b, orDash(r.Referer()))
	b.WriteString("\" \"")
	escaped(b, orDash(r.UserAgent()))
	b.WriteString("\"\n")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func escaped(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			b.WriteString(`\x`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
}
