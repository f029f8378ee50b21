package flags

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork"
	"github.com/gracefork/gracefork/recycle"
)

// run registers the flags on a fresh FlagSet over opts, parses args with
// env as the whole environment, and applies them. out is what was printed.
func run(t *testing.T, opts *prefork.Options, env map[string]string, args ...string) (s *Set, out string, err error) {
	t.Helper()
	var b strings.Builder
	fs := flag.NewFlagSet("app", flag.ContinueOnError)
	fs.SetOutput(&b)
	s = Register(fs, opts)
	s.lookup = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := fs.Parse(args); err != nil {
		return s, b.String(), err
	}
	err = s.Apply()
	return s, b.String(), err
}

// view is what the precedence table compares.
type view struct {
	Workers          int
	Addr             string
	Addrs            []string
	Recycle          recycle.Policy
	HeartbeatTimeout time.Duration
	GracefulTimeout  time.Duration
	ShutdownDelay    time.Duration
	PIDFile          string
	LogFile          string
	MetricsAddr      string
	ReloadOnChange   bool
	ReloadWatch      []string
	SingleProcess    bool
	ReusePort        bool
	NoBalance        bool
}

func viewOf(o prefork.Options) view {
	return view{o.Workers, o.Addr, o.Addrs, o.Recycle, o.HeartbeatTimeout, o.GracefulTimeout, o.ShutdownDelay,
		o.PIDFile, o.LogFile, o.MetricsAddr, o.ReloadOnChange, o.ReloadWatch, o.SingleProcess, o.ReusePort, o.NoBalance}
}

// The program's defaults, which every case starts from.
func defaults() prefork.Options {
	return prefork.Options{Addr: "127.0.0.1:8080", Addrs: []string{"unix:/tmp/default.sock"}, Workers: 2,
		GracefulTimeout: 10 * time.Second, PIDFile: "/run/app.pid", MetricsAddr: ":9100",
		Recycle: recycle.Policy{MaxRequests: 1000}}
}

// A flag wins over GRACEFORK_<NAME>, which wins over WEB_CONCURRENCY and
// PORT, which win over the program's default.
func TestPrecedence(t *testing.T) {
	def := viewOf(defaults())
	with := func(f func(*view)) view {
		v := viewOf(defaults())
		f(&v)
		return v
	}
	cases := []struct {
		name string
		env  map[string]string
		args string
		want view
	}{
		{"defaults", nil, "", def},
		{"WEB_CONCURRENCY", map[string]string{"WEB_CONCURRENCY": "3"}, "", with(func(v *view) { v.Workers = 3 })},
		{"GRACEFORK_WORKERS over WEB_CONCURRENCY", map[string]string{"GRACEFORK_WORKERS": "5", "WEB_CONCURRENCY": "3"}, "", with(func(v *view) { v.Workers = 5 })},
		{"-w over both", map[string]string{"GRACEFORK_WORKERS": "5", "WEB_CONCURRENCY": "3"}, "-w 7", with(func(v *view) { v.Workers = 7 })},
		{"--workers", nil, "--workers 8", with(func(v *view) { v.Workers = 8 })},
		{"-workers 0 over the environment", map[string]string{"WEB_CONCURRENCY": "3"}, "-workers 0", with(func(v *view) { v.Workers = 0 })},
		{"empty variable is unset", map[string]string{"GRACEFORK_WORKERS": " ", "WEB_CONCURRENCY": "3"}, "", with(func(v *view) { v.Workers = 3 })},
		{"PORT replaces every default address", map[string]string{"PORT": "5000"}, "", with(func(v *view) { v.Addr, v.Addrs = ":5000", nil })},
		{"GRACEFORK_BIND over PORT", map[string]string{"GRACEFORK_BIND": "127.0.0.1:1, unix:/tmp/a.sock fd://3", "PORT": "5000"}, "",
			with(func(v *view) { v.Addr, v.Addrs = "127.0.0.1:1", []string{"unix:/tmp/a.sock", "fd://3"} })},
		{"-b over both", map[string]string{"GRACEFORK_BIND": "127.0.0.1:1", "PORT": "5000"}, "-b :9000 --bind fd://4",
			with(func(v *view) { v.Addr, v.Addrs = ":9000", []string{"fd://4"} })},
		{"one -b", nil, "-bind unix:/tmp/b.sock", with(func(v *view) { v.Addr, v.Addrs = "unix:/tmp/b.sock", nil })},
		{"bare seconds and Go durations", map[string]string{"GRACEFORK_TIMEOUT": "1.5", "GRACEFORK_GRACEFUL_TIMEOUT": "5"},
			"-graceful-timeout 1m30s -shutdown-delay 2 -max-age 1h -max-age-jitter 300", with(func(v *view) {
				v.HeartbeatTimeout, v.GracefulTimeout, v.ShutdownDelay = 1500*time.Millisecond, 90*time.Second, 2*time.Second
				v.Recycle.MaxAge, v.Recycle.MaxAgeJitter = time.Hour, 5*time.Minute
			})},
		{"-t", nil, "-t 30", with(func(v *view) { v.HeartbeatTimeout = 30 * time.Second })},
		{"recycle", map[string]string{"GRACEFORK_MAX_REQUESTS": "5", "GRACEFORK_MAX_REQUESTS_JITTER": "50", "GRACEFORK_MAX_MEMORY": "512MiB"},
			"-max-requests 100", with(func(v *view) {
				v.Recycle.MaxRequests, v.Recycle.MaxRequestsJitter, v.Recycle.MaxMemory = 100, 50, 512<<20
			})},
		{"strings", map[string]string{"GRACEFORK_PID": "/tmp/env.pid", "GRACEFORK_METRICS_BIND": "127.0.0.1:9200", "GRACEFORK_LOG_FILE": "/tmp/env.log"},
			"-p /tmp/flag.pid", with(func(v *view) { v.PIDFile, v.MetricsAddr, v.LogFile = "/tmp/flag.pid", "127.0.0.1:9200", "/tmp/env.log" })},
		{"an empty flag turns a default off", nil, "-pid= -metrics-bind=", with(func(v *view) { v.PIDFile, v.MetricsAddr = "", "" })},
		{"reload from the environment", map[string]string{"GRACEFORK_RELOAD": "1", "GRACEFORK_RELOAD_EXTRA_FILE": "tmpl:static"}, "",
			with(func(v *view) { v.ReloadOnChange, v.ReloadWatch = true, []string{"tmpl", "static"} })},
		{"-reload-extra-file over its variable", map[string]string{"GRACEFORK_RELOAD_EXTRA_FILE": "tmpl"}, "-reload -reload-extra-file a -reload-extra-file b",
			with(func(v *view) { v.ReloadOnChange, v.ReloadWatch = true, []string{"a", "b"} })},
		{"-reload=false over GRACEFORK_RELOAD", map[string]string{"GRACEFORK_RELOAD": "true"}, "-reload=false", def},
		{"single process", map[string]string{"GRACEFORK_SINGLE_PROCESS": "true"}, "", with(func(v *view) { v.SingleProcess = true })},
		{"reuse port from the environment", map[string]string{"GRACEFORK_REUSE_PORT": "1"}, "", with(func(v *view) { v.ReusePort = true })},
		{"-reuse-port", nil, "-reuse-port", with(func(v *view) { v.ReusePort = true })},
		{"-reuse-port=false over GRACEFORK_REUSE_PORT", map[string]string{"GRACEFORK_REUSE_PORT": "true"}, "-reuse-port=false", def},
		{"no balance from the environment", map[string]string{"GRACEFORK_NO_BALANCE": "1"}, "", with(func(v *view) { v.NoBalance = true })},
		{"-no-balance", nil, "-no-balance", with(func(v *view) { v.NoBalance = true })},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := defaults()
			_, out, err := run(t, &opts, c.env, strings.Fields(c.args)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if got := viewOf(opts); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// Every bad value is refused naming the flag or the variable and the
// value as written, before anything is applied.
func TestBadValues(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		env  map[string]string
		args string
		want string
	}{
		{nil, "-w -1", `invalid value "-1" for flag -w: must not be negative`},
		{nil, "-workers many", `invalid value "many" for flag -workers: want a whole number`},
		{nil, "-workers 5000", `invalid value "5000" for flag -workers: must be at most 1024 (prefork.MaxWorkers)`},
		{map[string]string{"WEB_CONCURRENCY": "abc"}, "", `app: WEB_CONCURRENCY="abc": want a whole number`},
		{map[string]string{"GRACEFORK_WORKERS": "-2"}, "", `app: GRACEFORK_WORKERS="-2": must not be negative`},
		{map[string]string{"GRACEFORK_MAX_AGE": "-1h"}, "", `app: GRACEFORK_MAX_AGE="-1h": must not be negative`},
		{nil, "-max-age -1s", `invalid value "-1s" for flag -max-age: must not be negative`},
		{nil, "-timeout -30", `invalid value "-30" for flag -timeout: must not be negative`},
		{nil, "-timeout 10x", `invalid value "10x" for flag -timeout: want a duration such as 30s, 1m30s or 500ms, or a number of seconds`},
		{nil, "-timeout 1.2.3", `invalid value "1.2.3" for flag -timeout: "1.2.3" is not a number of seconds`},
		{map[string]string{"GRACEFORK_TIMEOUT": "99999999999"}, "", `app: GRACEFORK_TIMEOUT="99999999999": too long: more than 292 years`},
		{nil, "-keep-alive forever", `invalid value "forever" for flag -keep-alive: want a duration`},
		{nil, "-max-memory 12XB", `invalid value "12XB" for flag -max-memory: unknown unit "XB"`},
		{map[string]string{"GRACEFORK_MAX_MEMORY": "lots"}, "", `app: GRACEFORK_MAX_MEMORY="lots": want a number of bytes`},
		{map[string]string{"GRACEFORK_MAX_REQUESTS": "-5"}, "", `app: GRACEFORK_MAX_REQUESTS="-5": must not be negative`},
		{nil, "-max-requests 1.5", `invalid value "1.5" for flag -max-requests: want a whole number`},
		{nil, "-max-requests-jitter 99999999999999999999", `invalid value "99999999999999999999" for flag -max-requests-jitter: too large`},
		{map[string]string{"PORT": "http"}, "", `app: PORT="http": want a port number from 0 to 65535`},
		{map[string]string{"PORT": "70000"}, "", `app: PORT="70000": want a port number from 0 to 65535`},
		{nil, "-b=", `invalid value "" for flag -b: empty address`},
		{map[string]string{"GRACEFORK_RELOAD": "yes"}, "", `app: GRACEFORK_RELOAD="yes": want true or false (1 or 0)`},
		{nil, "-reload=maybe", `invalid boolean value "maybe" for -reload: want true or false (1 or 0)`},
		{map[string]string{"GRACEFORK_SINGLE_PROCESS": "2"}, "", `app: GRACEFORK_SINGLE_PROCESS="2": want true or false`},
		{map[string]string{"GRACEFORK_REUSE_PORT": "yes"}, "", `app: GRACEFORK_REUSE_PORT="yes": want true or false (1 or 0)`},
		{nil, "-log-level loud", `invalid value "loud" for flag -log-level: want debug, info, warning, error or critical`},
		{map[string]string{"GRACEFORK_LOG_LEVEL": "trace"}, "", `app: GRACEFORK_LOG_LEVEL="trace": want debug, info`},
		{nil, "-access-log-format xml", `invalid value "xml" for flag -access-log-format: want combined, json or text`},
		{nil, "-access-log-format json", `app: -access-log-format json: needs -access-logfile`},
		{map[string]string{"GRACEFORK_ACCESS_LOG_FORMAT": "json"}, "", `app: GRACEFORK_ACCESS_LOG_FORMAT="json": needs -access-logfile`},
		{nil, "-access-logfile=", `invalid value "" for flag -access-logfile: want a file, or - for stdout`},
		{nil, "-access-logfile " + dir + "/no/such/access.log", `app: -access-logfile ` + dir + `/no/such/access.log: no such file or directory`},
		{map[string]string{"GRACEFORK_BIND": " , "}, "", `app: GRACEFORK_BIND=" , ": no value in the list`},
		{nil, "-w 3 -access-logfile " + dir + "/no/such/access.log", `app: -access-logfile ` + dir + `/no/such/access.log: no such file or directory`},
		{nil, "-reload-extra-file templates", `app: -reload-extra-file templates: needs -reload`},
		{map[string]string{"GRACEFORK_RELOAD": "1"}, "-reload=false -reload-extra-file t", `app: -reload-extra-file t: needs -reload`},
	}
	for _, c := range cases {
		opts := defaults()
		before := viewOf(opts)
		_, out, err := run(t, &opts, c.env, strings.Fields(c.args)...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%v %s: error %v, printed %q; want %q", c.env, c.args, err, out, c.want)
		}
		if got := viewOf(opts); !reflect.DeepEqual(got, before) {
			t.Errorf("%v %s: a refused configuration changed the Options: %+v", c.env, c.args, got)
		}
	}
}

// What only the library judges is reported by the flag or the variable
// that set it, and nothing else is.
func TestUsageError(t *testing.T) {
	cases := []struct {
		env  map[string]string
		args string
		want string // "" for nil
	}{
		{nil, "-timeout 1s", "-timeout 1s: must be at least 2s: workers report once a second"},
		{nil, "-t 1", "-t 1: must be at least 2s: workers report once a second"},
		{map[string]string{"GRACEFORK_TIMEOUT": "1"}, "", `GRACEFORK_TIMEOUT="1": must be at least 2s`},
		{map[string]string{"GRACEFORK_PID": "/no/such/dir/app.pid"}, "", `GRACEFORK_PID="/no/such/dir/app.pid": its directory does not exist`},
		{nil, "-b 127.0.0.1:0 -b 127.0.0.1:1 -b 127.0.0.1:1", `-b 127.0.0.1:1: repeats -bind[0]`},
		{nil, "-b 127.0.0.1:99999", `-b 127.0.0.1:99999: port "99999" is not a number from 0 to 65535`},
		{map[string]string{"GRACEFORK_BIND": "127.0.0.1:0,localhost"}, "", `GRACEFORK_BIND="127.0.0.1:0,localhost": "localhost": missing port in address`},
		{map[string]string{"PORT": "8080"}, "-metrics-bind 127.0.0.1:8080", ""}, // different addresses: valid
		{map[string]string{"GRACEFORK_BIND": "localhost"}, "", `GRACEFORK_BIND="localhost": missing port in address`},
		{nil, "-b 127.0.0.1:8080 -metrics-bind :8080", `-metrics-bind :8080: repeats the first -bind (a bare port means 127.0.0.1)`},
		{nil, "-max-requests 0 -max-requests-jitter 5", "-max-requests-jitter 5: needs -max-requests: it spreads that limit"},
		{nil, "-max-age-jitter 5m", "-max-age-jitter 5m: needs -max-age"},
		{nil, "-reuse-port -b unix:/tmp/x.sock", "-reuse-port=true: "}, // no TCP address (Linux), or unsupported
		{nil, "", ""},
	}
	for _, c := range cases {
		opts := defaults()
		opts.PIDFile, opts.MetricsAddr = "", ""
		s, out, err := run(t, &opts, c.env, strings.Fields(c.args)...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.args, err, out)
		}
		got := s.UsageError(opts.Validate())
		if (got == nil) != (c.want == "") || got != nil && !strings.HasPrefix(got.Error(), c.want) {
			t.Errorf("%v %s: UsageError = %v, want %q", c.env, c.args, got, c.want)
		}
	}
	// Not a usage error: a field the program set, a failed bind, no error.
	opts := prefork.Options{Addr: ":0", BootTimeout: time.Millisecond}
	s, _, _ := run(t, &opts, nil, "-w", "2")
	if err := s.UsageError(opts.Validate()); err != nil {
		t.Errorf("the program's own BootTimeout: UsageError = %v", err)
	}
	if err := s.UsageError(&prefork.OptionError{Field: "Workers", Value: 2, Reason: "bind", Err: io.EOF}); err != nil {
		t.Errorf("a failed bind: UsageError = %v", err)
	}
	if err := s.UsageError(nil); err != nil {
		t.Errorf("UsageError(nil) = %v", err)
	}
}

func TestCheckConfig(t *testing.T) {
	opts := prefork.Options{Addr: "127.0.0.1:0"}
	_, out, err := run(t, &opts, nil, "-check-config", "-w", "3")
	if !errors.Is(err, ErrConfigOK) || out != "OK\n" {
		t.Errorf("valid: %v, printed %q", err, out)
	}
	opts = prefork.Options{Addr: "127.0.0.1:0"}
	_, out, err = run(t, &opts, map[string]string{"GRACEFORK_TIMEOUT": "1"}, "-check-config")
	if err == nil || errors.Is(err, ErrConfigOK) || out != "app: GRACEFORK_TIMEOUT=\"1\": must be at least 2s: workers report once a second\n" {
		t.Errorf("invalid: %v, printed %q", err, out)
	}
	// A value the program set is reported as the library words it.
	opts = prefork.Options{}
	_, out, err = run(t, &opts, nil, "-check-config")
	if err == nil || !strings.Contains(out, `prefork: Options.Addr = "": no address to listen on`) {
		t.Errorf("no address: %v, printed %q", err, out)
	}
	// There is no GRACEFORK_CHECK_CONFIG.
	opts = prefork.Options{Addr: "127.0.0.1:0"}
	if _, out, err = run(t, &opts, map[string]string{"GRACEFORK_CHECK_CONFIG": "1"}); err != nil || out != "" {
		t.Errorf("GRACEFORK_CHECK_CONFIG was read: %v, %q", err, out)
	}
}

func TestKeepAlive(t *testing.T) {
	// No Server: one is made.
	var opts prefork.Options
	if _, out, err := run(t, &opts, nil, "-keep-alive", "5"); err != nil {
		t.Fatal(err, out)
	}
	if opts.Server == nil || opts.Server.IdleTimeout != 5*time.Second {
		t.Fatalf("Server = %+v", opts.Server)
	}
	// The program's Server is kept, its IdleTimeout overridden.
	mine := &http.Server{ReadHeaderTimeout: 3 * time.Second, IdleTimeout: time.Minute}
	opts = prefork.Options{Server: mine}
	if _, out, err := run(t, &opts, map[string]string{"GRACEFORK_KEEP_ALIVE": "2s"}); err != nil {
		t.Fatal(err, out)
	}
	if opts.Server != mine || mine.IdleTimeout != 2*time.Second || mine.ReadHeaderTimeout != 3*time.Second {
		t.Fatalf("Server = %+v", opts.Server)
	}
	// Without the flag it is left alone.
	mine = &http.Server{IdleTimeout: time.Minute}
	opts = prefork.Options{Server: mine}
	if _, out, err := run(t, &opts, nil); err != nil || mine.IdleTimeout != time.Minute {
		t.Fatal(err, out, mine.IdleTimeout)
	}
	// 0 turns keep-alive off, as Gunicorn's --keep-alive 0: every answer
	// closes its connection.
	opts = prefork.Options{Server: &http.Server{}}
	if _, out, err := run(t, &opts, nil, "-keep-alive", "0"); err != nil {
		t.Fatal(err, out)
	}
	if !serveOne(t, opts.Server).Close {
		t.Error("-keep-alive 0: the answer kept its connection open")
	}
	if serveOne(t, &http.Server{}).Close {
		t.Error("the default closed the connection")
	}
}

// serveOne serves one request with srv and returns its answer.
func serveOne(t *testing.T, srv *http.Server) *http.Response {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Handler = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	defer func() { srv.Close(); <-done }()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestLogLevel(t *testing.T) {
	// The default logger: Options.LogLevel.
	var opts prefork.Options
	if _, out, err := run(t, &opts, map[string]string{"GRACEFORK_LOG_LEVEL": "WARNING"}); err != nil {
		t.Fatal(err, out)
	}
	if opts.Logger != nil || opts.LogLevel == nil || opts.LogLevel.Level() != slog.LevelWarn {
		t.Fatalf("Logger %v LogLevel %v", opts.Logger, opts.LogLevel)
	}
	// The program's logger is kept, filtered: -log-level raises its
	// threshold (debug → error) but cannot lower it (warn stays warn).
	for _, c := range []struct {
		handlerLevel slog.Level
		flag         string
		want         []string
	}{
		{slog.LevelDebug, "error", []string{"ERROR"}},
		{slog.LevelWarn, "debug", []string{"WARN", "ERROR"}},
		{slog.LevelDebug, "critical", nil},
	} {
		var buf bytes.Buffer
		opts := prefork.Options{Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: c.handlerLevel})).With("app", "x")}
		if _, out, err := run(t, &opts, nil, "-log-level", c.flag); err != nil {
			t.Fatal(err, out)
		}
		l := opts.Logger.WithGroup("g")
		l.Debug("d")
		l.Info("i")
		l.Warn("w")
		l.Error("e")
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if lvl, ok := strings.CutPrefix(strings.Fields(line + " x x")[1], "level="); ok {
				got = append(got, lvl)
			}
			if line != "" && !strings.Contains(line, "app=x") {
				t.Errorf("the program's handler lost its attributes: %s", line)
			}
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("handler at %v, -log-level %s: logged %v, want %v", c.handlerLevel, c.flag, got, c.want)
		}
	}
}

func TestAccessLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	if err := os.WriteFile(path, []byte("earlier\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// combined by default, appending; the program's own access log is replaced.
	opts := prefork.Options{AccessLog: slog.New(slog.DiscardHandler)}
	s, out, err := run(t, &opts, nil, "-access-logfile", path)
	if err != nil {
		t.Fatal(err, out)
	}
	defer s.accessLog.Close()
	if opts.AccessLog != nil || opts.AccessLogCombined == nil {
		t.Fatalf("AccessLog %v AccessLogCombined %v", opts.AccessLog, opts.AccessLogCombined)
	}
	io.WriteString(opts.AccessLogCombined, "a line\n")
	// json and text: a slog logger over the same file.
	for _, format := range []string{"json", "text"} {
		opts := prefork.Options{AccessLogCombined: io.Discard}
		s, out, err := run(t, &opts, map[string]string{"GRACEFORK_ACCESS_LOGFILE": path, "GRACEFORK_ACCESS_LOG_FORMAT": format})
		if err != nil {
			t.Fatal(err, out)
		}
		defer s.accessLog.Close()
		if opts.AccessLogCombined != nil || opts.AccessLog == nil {
			t.Fatalf("%s: AccessLog %v AccessLogCombined %v", format, opts.AccessLog, opts.AccessLogCombined)
		}
		opts.AccessLog.Info("request", "format", format)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 4 || lines[0] != "earlier" || lines[1] != "a line" ||
		!strings.HasPrefix(lines[2], `{"time":`) || !strings.Contains(lines[2], `"format":"json"`) ||
		!strings.HasPrefix(lines[3], "time=") || !strings.Contains(lines[3], "format=text") {
		t.Errorf("access log:\n%s", b)
	}
	// "-" is stdout.
	opts = prefork.Options{}
	if _, out, err := run(t, &opts, nil, "-access-logfile", "-"); err != nil || opts.AccessLogCombined != os.Stdout {
		t.Fatalf("-access-logfile -: %v %v %s", opts.AccessLogCombined, err, out)
	}
}

// -h shows each flag's variables and the program's defaults.
func TestUsage(t *testing.T) {
	opts := defaults()
	_, out, err := run(t, &opts, nil, "-h")
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatal(err)
	}
	for _, want := range []string{
		"-workers number\n", "(env GRACEFORK_WORKERS, WEB_CONCURRENCY) (default 2)",
		"(env GRACEFORK_BIND, PORT) (default 127.0.0.1:8080,unix:/tmp/default.sock)",
		"-max-requests number", "(env GRACEFORK_MAX_REQUESTS) (default 1000)",
		"-graceful-timeout duration", "(default 10s)", "-w number\n    \tshort for -workers number (default 2)",
		"-reload\n", "-check-config\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("usage lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "(default 0") || strings.Contains(out, "(default false") || strings.Contains(out, "GRACEFORK_CHECK_CONFIG") {
		t.Errorf("usage:\n%s", out)
	}
}

// An alias a program registers for one of the flags is quoted by the
// name the command line used.
func TestAliasIsQuotedAsTyped(t *testing.T) {
	var b strings.Builder
	fs := flag.NewFlagSet("app", flag.ContinueOnError)
	fs.SetOutput(&b)
	opts := prefork.Options{Addr: ":0"}
	s := Register(fs, &opts)
	s.lookup = func(string) (string, bool) { return "", false }
	fs.Var(fs.Lookup("timeout").Value, "heartbeat-timeout", "older name of -timeout")
	if err := fs.Parse([]string{"-heartbeat-timeout", "1s"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(); err != nil {
		t.Fatal(err)
	}
	if err := s.UsageError(opts.Validate()); err == nil || !strings.HasPrefix(err.Error(), "-heartbeat-timeout 1s: must be at least 2s") {
		t.Errorf("UsageError = %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"30": 30 * time.Second, "0.5": 500 * time.Millisecond, "0": 0, "+2": 2 * time.Second, " 1m30s ": 90 * time.Second,
		"500ms": 500 * time.Millisecond, "1h": time.Hour, "9223372036": 9223372036 * time.Second,
	} {
		if got, err := parseDuration(in); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "-1s", "1x", "1e3", ".", "inf", "NaN", "9223372037", "1.2.3"} {
		if got, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) = %v, want an error", in, got)
		}
	}
}

// FuzzParseDuration: no input panics, a result is never negative, and a
// whole number is that many seconds.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"30", "0.5", "1m30s", "-1", "", "1e9", "9223372036", "9223372037", "+.", "-0", "1.5h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDuration(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("parseDuration(%q) = %v", s, d)
		}
		if n, serr := strconv.ParseInt(s, 10, 64); serr == nil && n >= 0 && n < math.MaxInt64/int64(time.Second) && d != time.Duration(n)*time.Second {
			t.Fatalf("parseDuration(%q) = %v, want %ds", s, d, n)
		}
	})
}
