package flags

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gracefork/gracefork/prefork"
)

// ErrConfigOK is what [Set.Apply] returns, on a FlagSet that continues on
// errors, when -check-config found the configuration valid: the program
// should exit 0, as after flag.ErrHelp.
var ErrConfigOK = errors.New("flags: -check-config: the configuration is valid")

// Set is the flags [Register] put on a FlagSet, with the Options they fill.
type Set struct {
	fs       *flag.FlagSet
	opts     *prefork.Options
	lookup   func(string) (string, bool)
	settings []*setting

	checkConfig bool
	applied     bool
	// accessLog is the access log Apply opened (or os.Stdout).
	accessLog *os.File
}

// setting is one flag: how to read it, where it goes, where it came from.
type setting struct {
	name, short string
	// env are the variables read, in order, when the flag is not given:
	// GRACEFORK_<NAME> first, then any conventional one (WEB_CONCURRENCY).
	env    []envVar
	usage  string
	isBool bool
	list   bool // repeatable: the first flag value replaces the defaults

	parse func(s string) error // reads one value into the pending one
	// prepare, if set, does what can fail before any setting is written
	// (opening a file), so that a refusal leaves the Options as they were.
	prepare func() error
	reset   func()        // empties a list before its first value
	show    func() string // the value, for -h and flag.Value.String
	commit  func(s *Set)  // writes the pending value into Options

	given  bool   // by a flag or a variable
	source string // "-workers" or "GRACEFORK_WORKERS"
	raw    string // the value as written: the flag's last, or the variable's
	// written holds each value of a list as written, for UsageError.
	written []string
	fields  []string // the Options fields it sets, for UsageError
}

// envVar is an environment variable a setting falls back on; conv, if
// set, turns its value into what the flag would be given (PORT's "8080"
// into ":8080").
type envVar struct {
	name string
	conv func(string) (string, error)
	// split, for a list: how a variable's value splits into values.
	split func(string) []string
}

// Register defines gracefork's Gunicorn-style flags on fs, to fill opts
// when [Set.Apply] runs after fs.Parse. What opts holds now is the
// program's default, shown by -h and kept unless a flag or the
// environment says otherwise. Set opts' other fields (Server, Logger,
// AccessLog...) before Apply: Apply adjusts them (-keep-alive,
// -log-level, -access-logfile) rather than replacing them.
func Register(fs *flag.FlagSet, opts *prefork.Options) *Set {
	s := &Set{fs: fs, opts: opts, lookup: os.LookupEnv}
	s.define()
	return s
}

// Apply reads the environment for the flags not given, checks every
// value and writes them into the Options. Call it once, after fs.Parse
// and before prefork.New or Serve. An error names the flag or the
// variable and the value as written ("GRACEFORK_MAX_AGE=\"-1h\": must
// not be negative"); with -check-config, Apply validates the whole
// Options as prefork.New would (without binding) and prints "OK" or the
// error.
//
// Errors follow fs's ErrorHandling, as fs.Parse's do: printed to
// fs.Output() and then returned (ContinueOnError), or the program exits
// with status 2 (ExitOnError) or panics (PanicOnError). With
// -check-config, a valid configuration exits 0 (ExitOnError) or returns
// ErrConfigOK.
func (s *Set) Apply() error {
	err := s.apply()
	if err == nil && s.checkConfig {
		if err = s.opts.Validate(); err != nil {
			err = cmp.Or(s.UsageError(err), err)
		} else {
			fmt.Fprintln(s.fs.Output(), "OK")
			if s.fs.ErrorHandling() == flag.ExitOnError {
				os.Exit(0)
			}
			return ErrConfigOK
		}
	}
	if err == nil {
		return nil
	}
	if name := s.fs.Name(); name != "" {
		fmt.Fprintf(s.fs.Output(), "%s: %v\n", filepath.Base(name), err)
	} else {
		fmt.Fprintln(s.fs.Output(), err)
	}
	switch s.fs.ErrorHandling() {
	case flag.ExitOnError:
		os.Exit(2)
	case flag.PanicOnError:
		panic(err)
	}
	return err
}

func (s *Set) apply() error {
	if s.applied {
		return errors.New("flags: Apply called twice")
	}
	s.applied = true
	// The names the command line used (an alias a program added
	// included), so that an error quotes what was typed.
	s.fs.Visit(func(f *flag.Flag) {
		if v, ok := f.Value.(interface{ setting() *setting }); ok {
			v.setting().source = "-" + f.Name
		}
	})
	for _, st := range s.settings {
		if st.given {
			continue
		}
		if err := s.fromEnv(st); err != nil {
			return err
		}
	}
	if err := s.crossCheck(); err != nil {
		return err
	}
	for _, st := range s.settings {
		if st.given && st.prepare != nil {
			if err := st.prepare(); err != nil {
				return fmt.Errorf("%s: %w", st.quote(st.raw), err)
			}
		}
	}
	for _, st := range s.settings {
		if st.given {
			st.commit(s)
		}
	}
	return nil
}

// fromEnv reads the first of st's variables that is set.
func (s *Set) fromEnv(st *setting) error {
	for _, e := range st.env {
		raw, ok := s.lookup(e.name)
		if !ok || strings.TrimSpace(raw) == "" {
			continue // an empty variable is as good as unset
		}
		st.source, st.raw = e.name, raw
		vals := []string{raw}
		if e.split != nil {
			if vals = e.split(raw); len(vals) == 0 {
				return fmt.Errorf("%s: no value in the list", st.quote(raw))
			}
		}
		if st.list {
			st.reset()
			st.written = nil
		}
		for _, v := range vals {
			if e.conv != nil {
				var err error
				if v, err = e.conv(v); err != nil {
					return fmt.Errorf("%s: %w", st.quote(raw), err)
				}
			}
			if err := st.parse(v); err != nil {
				return fmt.Errorf("%s: %w", st.quote(raw), err)
			}
			st.written = append(st.written, v)
		}
		st.given = true
		return nil
	}
	return nil
}

// quote names where v came from as a person wrote it: `-max-age -1h` or
// `GRACEFORK_MAX_AGE="-1h"`.
func (st *setting) quote(v string) string {
	if strings.HasPrefix(st.source, "-") {
		if st.isBool {
			return st.source + "=" + v
		}
		return st.source + " " + v
	}
	return fmt.Sprintf("%s=%q", st.source, v)
}

func (s *Set) lookupSetting(name string) *setting {
	for _, st := range s.settings {
		if st.name == name {
			return st
		}
	}
	return nil
}

// crossCheck rejects settings that need another one.
func (s *Set) crossCheck() error {
	for _, need := range [][2]string{{"access-log-format", "access-logfile"}} {
		a, b := s.lookupSetting(need[0]), s.lookupSetting(need[1])
		if a.given && !b.given {
			return fmt.Errorf("%s: needs -%s", a.quote(a.raw), b.name)
		}
	}
	// -reload=false, or a program's default turned off: nothing would
	// watch the extra files.
	if rx := s.lookupSetting("reload-extra-file"); rx.given && s.lookupSetting("reload").show() != "true" {
		return fmt.Errorf("%s: needs -reload", rx.quote(rx.raw))
	}
	return nil
}

// UsageError rewrites an error of prefork.New, Serve or Options.Validate
// about a value that came from a flag or the environment as that flag or
// variable and the value as written: "-timeout 1s: must be at least 2s",
// "GRACEFORK_PID=\"/no/dir/app.pid\": its directory does not exist". It
// returns nil when err is not such an error: nil, a failed bind, or a
// field the program set itself.
func (s *Set) UsageError(err error) error {
	var oe *prefork.OptionError
	if !errors.As(err, &oe) || (oe.Err != nil && !errors.Is(oe.Err, errors.ErrUnsupported)) {
		return nil
	}
	for _, st := range s.settings {
		if !st.given {
			continue
		}
		for _, f := range st.fields {
			if f == oe.Field {
				return fmt.Errorf("%s: %s", st.quote(st.raw), reasonInFlags.Replace(oe.Reason))
			}
		}
		if st.name == "bind" {
			// Addr is the first value, Addrs[i] the (i+2)th.
			i := -1
			if oe.Field == "Addr" {
				i = 0
			} else if n, ok := strings.CutPrefix(oe.Field, "Addrs["); ok {
				if k, err := strconv.Atoi(strings.TrimSuffix(n, "]")); err == nil {
					i = k + 1
				}
			}
			if i >= 0 && i < len(st.written) {
				v := st.written[i]
				if strings.HasPrefix(st.source, "-") || len(st.written) == 1 {
					return fmt.Errorf("%s: %s", st.quote(v), reasonInFlags.Replace(oe.Reason))
				}
				return fmt.Errorf("%s: %q: %s", st.quote(st.raw), v, reasonInFlags.Replace(oe.Reason))
			}
		}
	}
	return nil
}

// reasonInFlags rewrites the Options field names in a reason ("needs
// MaxRequests") as the flags a person typed.
var reasonInFlags = strings.NewReplacer(
	"MaxRequestsJitter", "-max-requests-jitter", "MaxRequests", "-max-requests",
	"MaxAgeJitter", "-max-age-jitter", "MaxAge", "-max-age", "MaxMemory", "-max-memory",
	"Options.Addrs", "-bind", "Options.Addr", "the first -bind")

// flagValue is a setting as a flag.Value.
type flagValue struct{ st *setting }

func (v flagValue) setting() *setting { return v.st }

func (v flagValue) String() string {
	if v.st == nil {
		return ""
	}
	return v.st.show()
}

func (v flagValue) Set(s string) error {
	st := v.st
	if st.list && !strings.HasPrefix(st.source, "-") {
		st.reset() // the first flag replaces the program's default
		st.written = nil
	}
	if err := st.parse(s); err != nil {
		return err
	}
	st.given, st.source, st.raw = true, "-"+st.name, s
	st.written = append(st.written, s)
	return nil
}

// boolValue is a boolean setting as a flag.Value: "-reload" alone means true.
type boolValue struct{ flagValue }

func (boolValue) IsBoolFlag() bool { return true }

func (s *Set) add(st *setting) {
	if len(st.env) == 0 || st.env[0].name != envName(st.name) {
		st.env = append([]envVar{{name: envName(st.name)}}, st.env...)
	}
	s.settings = append(s.settings, st)
	var names []string
	for _, e := range st.env {
		names = append(names, e.name)
	}
	usage := st.usage
	if len(names) > 0 {
		usage += " (env " + strings.Join(names, ", ") + ")"
	}
	var v flag.Value = flagValue{st}
	if st.isBool {
		v = boolValue{flagValue{st}}
	}
	s.fs.Var(v, st.name, usage)
	if st.short != "" {
		name, _ := flag.UnquoteUsage(s.fs.Lookup(st.name))
		s.fs.Var(v, st.short, "short for -"+st.name+" `"+name+"`")
	}
}

// envName is a flag's variable: GRACEFORK_ and its name in capitals, a
// dash an underscore.
func envName(flagName string) string {
	return "GRACEFORK_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// splitList splits a variable holding several addresses at commas and
// spaces.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}

// define registers every flag.
func (s *Set) define() {
	s.defineProcesses()
	s.defineRecycling()
	s.defineTimeouts()
	s.defineLogs()
	s.defineModes()
}

// defineProcesses registers processes and addresses: -workers, -bind.
func (s *Set) defineProcesses() {
	o := s.opts
	var workers int
	s.add(&setting{name: "workers", short: "w", usage: "`number` of worker processes (0: one per core)",
		env:    []envVar{{name: "WEB_CONCURRENCY"}},
		parse:  func(v string) (err error) { workers, err = parseCount(v); return err },
		show:   func() string { return showInt(pick(s, "workers", workers, o.Workers)) },
		commit: func(*Set) { o.Workers = workers },
		fields: []string{"Workers"}})

	var binds []string
	s.add(&setting{name: "bind", short: "b", list: true,
		usage: "`address` to listen on, repeatable: host:port, unix:/path or fd://N (a socket the parent passed)",
		env: []envVar{{name: envName("bind"), split: splitList},
			{name: "PORT", conv: portAddr}},
		parse: func(v string) error {
			if v == "" {
				return errors.New("empty address")
			}
			binds = append(binds, v)
			return nil
		},
		reset: func() { binds = nil },
		show: func() string {
			if s.lookupSetting("bind").given {
				return strings.Join(binds, ",")
			}
			all := o.Addrs
			if o.Addr != "" {
				all = append([]string{o.Addr}, all...)
			}
			return strings.Join(all, ",")
		},
		commit: func(*Set) { o.Addr, o.Addrs = binds[0], append([]string(nil), binds[1:]...) }})
}

// defineRecycling registers recycling: -max-requests, -max-age, -max-memory.
func (s *Set) defineRecycling() {
	o := s.opts
	var maxReq, maxReqJitter uint64
	s.add(&setting{name: "max-requests", usage: "recycle a worker after this `number` of requests (0: never)",
		parse:  func(v string) (err error) { maxReq, err = parseUint(v); return err },
		show:   func() string { return showUint(pick(s, "max-requests", maxReq, o.Recycle.MaxRequests)) },
		commit: func(*Set) { o.Recycle.MaxRequests = maxReq },
		fields: []string{"Recycle.MaxRequests"}})
	s.add(&setting{name: "max-requests-jitter", usage: "add a random 0..`n` to each worker's -max-requests",
		parse: func(v string) (err error) { maxReqJitter, err = parseUint(v); return err },
		show: func() string {
			return showUint(pick(s, "max-requests-jitter", maxReqJitter, o.Recycle.MaxRequestsJitter))
		},
		commit: func(*Set) { o.Recycle.MaxRequestsJitter = maxReqJitter },
		fields: []string{"Recycle.MaxRequestsJitter"}})
	s.duration("max-age", "", "recycle a worker after it has served for this `duration` (0: never)", &o.Recycle.MaxAge, "Recycle.MaxAge")
	s.duration("max-age-jitter", "", "add a random 0..`duration` to each worker's -max-age", &o.Recycle.MaxAgeJitter, "Recycle.MaxAgeJitter")

	var maxMem uint64
	s.add(&setting{name: "max-memory", usage: "recycle a worker whose resident set stays above this `size` (800M, 512MiB, 1GiB or bytes; K, M, G powers of 1000, KiB, MiB, GiB of 1024; 0: never; Linux only)",
		parse:  func(v string) (err error) { maxMem, err = parseSize(v); return err },
		show:   func() string { return showSize(pick(s, "max-memory", maxMem, o.Recycle.MaxMemory)) },
		commit: func(*Set) { o.Recycle.MaxMemory = maxMem },
		fields: []string{"Recycle.MaxMemory"}})
}

// defineTimeouts registers timeouts and the PID file.
func (s *Set) defineTimeouts() {
	o := s.opts
	s.duration("timeout", "t", "replace a worker silent for this `duration`, after logging its goroutines (at least 2s; 0: 30s)", &o.HeartbeatTimeout, "HeartbeatTimeout")
	s.duration("graceful-timeout", "", "the `duration` in-flight requests may run after a worker is told to stop (0: 30s)", &o.GracefulTimeout, "GracefulTimeout")

	var keepAlive time.Duration
	s.add(&setting{name: "keep-alive", usage: "the `duration` a keep-alive connection waits for its next request (Server.IdleTimeout; 0: no keep-alive)",
		parse: func(v string) (err error) { keepAlive, err = parseDuration(v); return err },
		show: func() string {
			if s.lookupSetting("keep-alive").given {
				return showDuration(keepAlive)
			}
			if o.Server != nil {
				return showDuration(o.Server.IdleTimeout)
			}
			return ""
		},
		commit: func(*Set) {
			if o.Server == nil {
				o.Server = &http.Server{}
			}
			if keepAlive == 0 {
				o.Server.SetKeepAlivesEnabled(false)
			} else {
				o.Server.IdleTimeout = keepAlive
			}
		}})

	s.str("pid", "p", "write the master's pid to this `file` once it serves (follows upgrades)", &o.PIDFile, "PIDFile")
}

// defineLogs registers the access log and the master's log.
func (s *Set) defineLogs() {
	o := s.opts
	var accessPath, accessFormat string
	s.add(&setting{name: "access-logfile", usage: "write one line per request to this `file` (appending), or - for stdout",
		parse: func(v string) error {
			if v == "" {
				return errors.New(`want a file, or - for stdout`)
			}
			accessPath = v
			return nil
		},
		show:    func() string { return accessPath },
		prepare: func() error { return s.openAccessLog(accessPath) },
		commit:  func(s *Set) { s.setAccessLog(accessFormat) }})
	s.add(&setting{name: "access-log-format", usage: "the access log's `format`: combined (Apache's, the default), json or text (log/slog records)",
		parse: func(v string) error {
			switch v {
			case "combined", "json", "text":
				accessFormat = v
				return nil
			}
			return errors.New("want combined, json or text")
		},
		show:   func() string { return accessFormat },
		commit: func(*Set) {}, // with -access-logfile
	})

	var level slog.Level
	s.add(&setting{name: "log-level", usage: "the least `level` logged: debug, info (the default), warning, error or critical",
		parse:  func(v string) (err error) { level, err = parseLevel(v); return err },
		show:   func() string { return showLevel(s, level) },
		commit: func(*Set) { setLevel(o, level) }})

	s.str("log-file", "", "append the master's log and the workers' output to this `file` (reopened on SIGUSR1)", &o.LogFile, "LogFile")
}

// defineModes registers metrics, stopping, development reload, the mode, -check-config.
func (s *Set) defineModes() {
	o := s.opts
	s.str("metrics-bind", "", "serve every worker's Prometheus metrics, merged, at /metrics on this `address` (a bare :port binds loopback)", &o.MetricsAddr, "MetricsAddr")
	s.duration("shutdown-delay", "", "on SIGTERM, keep serving for this `duration` with readiness failing before the drain begins", &o.ShutdownDelay, "ShutdownDelay")
	s.boolean("reload", "", "reload the workers when the executable changes (development)", &o.ReloadOnChange, "ReloadOnChange")

	var extra []string
	s.add(&setting{name: "reload-extra-file", list: true, usage: "a further `path` whose change reloads, repeatable; needs -reload",
		env:    []envVar{{name: envName("reload-extra-file"), split: filepath.SplitList}},
		parse:  func(v string) error { extra = append(extra, v); return nil },
		reset:  func() { extra = nil },
		show:   func() string { return strings.Join(extra, string(filepath.ListSeparator)) },
		commit: func(*Set) { o.ReloadWatch = append(o.ReloadWatch, extra...) },
		fields: []string{"ReloadWatch"}})

	s.boolean("single-process", "", "serve in this process, without a master or workers (under an orchestrator)", &o.SingleProcess, "SingleProcess")
	s.boolean("reuse-port", "", "give each worker a listening socket of its own on every TCP address (SO_REUSEPORT; Linux)", &o.ReusePort, "ReusePort")
	s.boolean("no-balance", "", "turn off the balancing of keep-alive load across workers (holding back from accept, asking clients beyond a worker's share to reconnect)", &o.NoBalance, "NoBalance")

	// -check-config has no variable: one left set would stop every start.
	s.settings = append(s.settings, &setting{name: "check-config", isBool: true,
		commit: func(*Set) {}})
	s.fs.BoolVar(&s.checkConfig, "check-config", false, "check the configuration, print OK or the error, and exit (0 or 2)")
}

// pick is the pending value when the flag or a variable gave one, the
// program's default otherwise.
func pick[T any](s *Set, name string, pending, def T) T {
	if st := s.lookupSetting(name); st != nil && st.given {
		return pending
	}
	return def
}

func (s *Set) duration(name, short, usage string, dst *time.Duration, field string) {
	var d time.Duration
	s.add(&setting{name: name, short: short, usage: usage,
		parse:  func(v string) (err error) { d, err = parseDuration(v); return err },
		show:   func() string { return showDuration(pick(s, name, d, *dst)) },
		commit: func(*Set) { *dst = d },
		fields: []string{field}})
}

func (s *Set) str(name, short, usage string, dst *string, field string) {
	var v string
	s.add(&setting{name: name, short: short, usage: usage,
		parse:  func(x string) error { v = x; return nil }, // "" turns a program's default off
		show:   func() string { return pick(s, name, v, *dst) },
		commit: func(*Set) { *dst = v },
		fields: []string{field}})
}

func (s *Set) boolean(name, short, usage string, dst *bool, field string) {
	var b bool
	s.add(&setting{name: name, short: short, usage: usage, isBool: true,
		parse: func(x string) error {
			v, err := strconv.ParseBool(x)
			if err != nil {
				return errors.New("want true or false (1 or 0)")
			}
			b = v
			return nil
		},
		show: func() string {
			if pick(s, name, b, *dst) {
				return "true"
			}
			return "" // not "false": -h shows no default then
		},
		commit: func(*Set) { *dst = b },
		fields: []string{field}})
}

// parseDuration reads Go's syntax ("1m30s", "500ms") or, as Gunicorn's
// settings are written, a bare number of seconds ("30", "0.5"). It
// refuses negative durations.
func parseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	var d time.Duration
	if digits := strings.TrimLeft(t, "+-"); digits != "" && strings.Trim(digits, "0123456789.") == "" {
		tooLong := errors.New("too long: more than 292 years")
		if !strings.Contains(t, ".") { // whole seconds, exactly
			n, err := strconv.ParseInt(t, 10, 64)
			if err != nil && !errors.Is(err, strconv.ErrRange) {
				return 0, fmt.Errorf("%q is not a number of seconds", t)
			}
			if err != nil || n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second) {
				return 0, tooLong
			}
			d = time.Duration(n) * time.Second
		} else {
			f, err := strconv.ParseFloat(t, 64)
			if err != nil {
				return 0, fmt.Errorf("%q is not a number of seconds", t)
			}
			if math.Abs(f) >= float64(math.MaxInt64)/float64(time.Second) {
				return 0, tooLong
			}
			d = time.Duration(f * float64(time.Second))
		}
	} else {
		var err error
		if d, err = time.ParseDuration(t); err != nil {
			return 0, errors.New("want a duration such as 30s, 1m30s or 500ms, or a number of seconds")
		}
	}
	if d < 0 {
		return 0, errors.New("must not be negative")
	}
	return d, nil
}

// parseCount reads a number of workers.
func parseCount(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		if strings.HasPrefix(strings.TrimSpace(s), "-") {
			return 0, errors.New("must not be negative")
		}
		return 0, errors.New("want a whole number")
	}
	if n < 0 {
		return 0, errors.New("must not be negative")
	}
	if n > prefork.MaxWorkers {
		return 0, fmt.Errorf("must be at most %d (prefork.MaxWorkers)", prefork.MaxWorkers)
	}
	return n, nil
}

// parseUint reads a count of requests.
func parseUint(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	n, err := strconv.ParseUint(t, 10, 64)
	switch {
	case err == nil:
		return n, nil
	case strings.HasPrefix(t, "-"):
		return 0, errors.New("must not be negative")
	case errors.Is(err, strconv.ErrRange):
		return 0, errors.New("too large")
	}
	return 0, errors.New("want a whole number")
}

// portAddr turns PORT's value into the address to bind: every interface,
// as platforms that set PORT (Heroku, Cloud Run, Render) expect.
func portAddr(v string) (string, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 || n > 65535 {
		return "", errors.New("want a port number from 0 to 65535")
	}
	return ":" + strconv.Itoa(n), nil
}

// levels are -log-level's names: Gunicorn's, and slog's "warn".
var levels = []struct {
	name  string
	level slog.Level
}{
	{"debug", slog.LevelDebug}, {"info", slog.LevelInfo}, {"warning", slog.LevelWarn},
	{"warn", slog.LevelWarn}, {"error", slog.LevelError}, {"critical", slog.LevelError + 4},
}

func parseLevel(s string) (slog.Level, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	for _, l := range levels {
		if l.name == t {
			return l.level, nil
		}
	}
	return 0, errors.New("want debug, info, warning, error or critical")
}

func showLevel(s *Set, l slog.Level) string {
	if st := s.lookupSetting("log-level"); st == nil || !st.given {
		return ""
	}
	for _, n := range levels {
		if n.level == l {
			return n.name
		}
	}
	return l.String()
}

// setLevel applies -log-level. The default logger gets it as
// Options.LogLevel. A Logger of the program's own is kept — its
// destination and format are the program's choice — behind a filter that
// drops records below the level: -log-level can raise its threshold but
// not lower it below its handler's own.
func setLevel(o *prefork.Options, l slog.Level) {
	o.LogLevel = l
	if o.Logger != nil {
		o.Logger = slog.New(minLevel{o.Logger.Handler(), l})
	}
}

// minLevel drops records below min, then defers to its handler.
type minLevel struct {
	h   slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.h.Enabled(ctx, l)
}

func (m minLevel) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < m.min {
		return nil
	}
	return m.h.Handle(ctx, r)
}

func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler { return minLevel{m.h.WithAttrs(as), m.min} }
func (m minLevel) WithGroup(name string) slog.Handler    { return minLevel{m.h.WithGroup(name), m.min} }

// openAccessLog opens -access-logfile, appending.
func (s *Set) openAccessLog(path string) error {
	s.accessLog = os.Stdout
	if path != "-" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return errors.Unwrap(err) // the path is in the message already
		}
		s.accessLog = f
	}
	return nil
}

// setAccessLog sets the access log in its format over the opened file; it
// replaces any access log of the program's own.
func (s *Set) setAccessLog(format string) {
	w := s.accessLog
	s.opts.AccessLog, s.opts.AccessLogCombined = nil, nil
	switch format {
	case "json":
		s.opts.AccessLog = slog.New(slog.NewJSONHandler(w, nil))
	case "text":
		s.opts.AccessLog = slog.New(slog.NewTextHandler(w, nil))
	default:
		s.opts.AccessLogCombined = w
	}
}

func showInt(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func showUint(n uint64) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatUint(n, 10)
}

func showSize(n uint64) string {
	if n == 0 {
		return ""
	}
	return formatSize(n)
}

func showDuration(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}
