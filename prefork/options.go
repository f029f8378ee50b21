package prefork

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/gracefork/gracefork/internal/sockets"
	"github.com/gracefork/gracefork/recycle"
	"github.com/gracefork/gracefork/signals"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for the zero values of [Options].
const (
	DefaultGracefulTimeout = 30 * time.Second
	DefaultBootTimeout     = 30 * time.Second
	DefaultMaxBootFailures = 5
	// DefaultDrainIdle is how long a draining worker waits for a silent
	// keep-alive connection's next request before closing it.
	DefaultDrainIdle = time.Second
	// DefaultUpgradeTimeout is tableflip's.
	DefaultUpgradeTimeout = time.Minute
	// DefaultMetricsTimeout is how long a scrape waits for the workers.
	DefaultMetricsTimeout = time.Second
	// DefaultHeartbeatTimeout is Gunicorn's default --timeout.
	DefaultHeartbeatTimeout = 30 * time.Second
)

// Bounds of [Options], beyond which a setting cannot work.
const (
	// MaxWorkers bounds Options.Workers. Each worker is a whole process
	// (several MiB of memory, a control socket, a share of the CPUs), and a
	// Go worker serves many requests at once: more workers than cores
	// gains nothing, and a thousand is far past any machine's cores.
	MaxWorkers = 1024
	// MinBootTimeout bounds Options.BootTimeout and UpgradeTimeout from
	// below: a worker (or a new master with its workers) must start a
	// process and the Go runtime and report ready, which takes more than
	// a few milliseconds on a busy machine; less would fail healthy boots.
	MinBootTimeout = time.Second
)

// Options configure [Serve] and [New]. The zero value of every field is
// its default. The same Options must be passed in the master and the workers
// (they are, when every process runs the same main).
type Options struct {
	// Addr is the address to listen on: "host:port" (":8080",
	// "127.0.0.1:0", "[::1]:8080"), "unix:/path/to.sock", or "fd://N", a
	// listening socket the parent process passed as descriptor N (taken
	// once, by the first master; reloads and upgrades keep it like any
	// other). Use Addrs or Listeners for several; at least one address is
	// required.
	Addr string
	// Addrs are further addresses to listen on; every worker serves them all.
	Addrs []string
	// Listeners are further addresses with settings of their own — TLS
	// here and not there, a unix socket's mode and owner — served after
	// Addr and Addrs. See [Listener].
	Listeners []Listener

	// ReusePort gives each worker slot a listening socket of its own for
	// every TCP address, instead of one socket that every worker accepts
	// from. The master binds one socket per slot with SO_REUSEPORT (the
	// first on the address as written — port 0 picks a port — the others
	// on the same port) and holds every one for its life; slot i's worker
	// inherits slot i's socket, at the same descriptors as ever (one
	// listener per address, in order), and so does every worker that
	// replaces it — a reload, a recycle, a crash restart — so the
	// connections waiting in its queue are served by the next worker.
	// Linux hands each new connection to one of the sockets by a hash of
	// the client's address and port: the kernel, not the workers, spreads
	// the load, whoever is quickest to accept. Unix sockets, fd://N
	// addresses and sockets passed by systemd stay shared.
	//
	// Scaling up binds (or reopens) the new slot's socket. Scaling down
	// closes the removed slot's socket the moment its queue is empty,
	// while its worker still accepts, then drains the worker; a
	// connection whose handshake completes in that instant is reset,
	// unless net.ipv4.tcp_migrate_req=1, which moves it to another
	// slot's socket (the master logs the setting). A binary upgrade hands
	// every slot's socket to the new master, which binds or closes the
	// difference when its worker count differs.
	//
	// The trade-off, and why the shared socket is the default: a slot
	// whose worker is gone — crashed and restarting, or booting after a
	// young crash's backoff — keeps receiving its share of new
	// connections, which wait in its queue until the next worker serves
	// them (a slot that fails to boot MaxBootFailures times closes its
	// socket until it boots again); with the shared socket the other
	// workers take them at once. A second instance started by mistake
	// on the same port by the same user binds too and takes a share of
	// the connections (the master checks that the port is free only when
	// it binds it first). Linux only: elsewhere it is an *OptionError
	// wrapping errors.ErrUnsupported. Ignored in single-process mode (one
	// process, one socket). See the package documentation's "Per-slot
	// sockets".
	ReusePort bool

	// NoBalance turns off the workers' balancing of keep-alive load (the
	// package documentation's "Balance"): the master no longer tells the
	// workers the pool's totals, so a worker accepts whenever the kernel
	// hands it a connection, and asks no kept-alive client to reconnect
	// for the pool's sake (a drain still tells every client). For clients
	// that spread their requests themselves over several connections, such
	// as a proxy's upstream pool, where being asked to reconnect is a cost
	// with nothing to gain; or to measure what balancing does. With one
	// worker, or with ReusePort, it changes nothing but the shedding.
	NoBalance bool

	// SingleProcess serves the handler in this process, with no master and
	// no worker processes: the mode to choose where an orchestrator
	// (Kubernetes, Nomad, ECS) supervises and restarts the process. The
	// environment variable GRACEFORK_SINGLE_PROCESS (SingleProcessEnv) set
	// to 1 or true chooses it too, so that one image runs either way; it is
	// the only mode on platforms without worker processes (Windows). See
	// the package documentation's "Single-process mode".
	SingleProcess bool

	// Workers is the number of worker processes, at most MaxWorkers;
	// default: GOMAXPROCS of the master, that is, one per available core.
	Workers int

	// Server is the http.Server each worker serves with: timeouts,
	// MaxHeaderBytes, TLSConfig (set Certificates or GetCertificate; the
	// worker then serves TLS), Protocols (unencrypted HTTP/2 included),
	// ErrorLog, BaseContext, ConnContext, SetKeepAlivesEnabled and so on.
	// The worker serves with this very value, not a copy: its Addr is
	// ignored, its Handler is replaced by the one given to Serve, and
	// ConnState is called after the worker's own connection tracking.
	// Nil means a zero http.Server.
	//
	// Hooks added with RegisterOnShutdown run at the end of a drain: once
	// every connection has closed and every handler, hijacked ones
	// included, has returned — or when GracefulTimeout cuts the drain
	// short. They do not run when a worker quits at once (SIGINT, SIGQUIT).
	// The worker exits right after starting them and does not wait for
	// them. To learn of a drain when it starts, as a WebSocket handler
	// must, select on [Draining].
	//
	// HTTP/2 connections, over TLS or unencrypted, get GOAWAY when the
	// drain starts, and any that missed it (still in its TLS handshake)
	// gets it with its next answer. If TLSNextProto is set (by
	// golang.org/x/net/http2.ConfigureServer, say), that HTTP/2 is used as
	// is, and its connections get GOAWAY with their first answer after the
	// drain starts: net/http and x/net both turn the "Connection: close" a
	// draining worker sets into GOAWAY. For h2c, use Protocols with
	// SetUnencryptedHTTP2, not golang.org/x/net/http2/h2c: that handler
	// hijacks its connections, whose streams the drain cannot reach, so
	// they are cut at GracefulTimeout.
	Server *http.Server

	// GracefulTimeout bounds a drain: how long in-flight requests may run
	// after a worker is told to stop. The master kills what is left a
	// little after it. Default DefaultGracefulTimeout.
	GracefulTimeout time.Duration
	// ShutdownDelay is how long a graceful stop (SIGTERM, Shutdown) keeps
	// serving normally after it begins, with the readiness handler
	// ([ReadyHandler]) already failing: an orchestrator or a load balancer
	// that takes the instance out of rotation when it starts to stop
	// (Kubernetes removes a terminating pod from its endpoints at the same
	// time as it sends SIGTERM) still sends requests for a while, and they
	// are served, keep-alive and all. Then the drain begins. Reloads,
	// recycles and upgrades do not wait for it. Default 0: the readiness
	// handler fails and the drain begins at once.
	ShutdownDelay time.Duration
	// DrainIdle is how long a draining worker waits for the next request
	// on a silent keep-alive connection before it closes it. Default
	// DefaultDrainIdle.
	DrainIdle time.Duration
	// BootTimeout is how long a new worker may take to report ready
	// before it is killed and counted as a failed boot; at least
	// MinBootTimeout. Default DefaultBootTimeout.
	BootTimeout time.Duration
	// HeartbeatTimeout is how long a serving worker may go without a
	// heartbeat (one a second) before the master kills it and restarts its
	// slot: a stopped or wedged process would otherwise hold the
	// connections it accepted for ever. On Unix it first gets SIGABRT (after
	// SIGCONT), and its goroutines' stacks are logged with its exit, so the
	// operator sees where it hung. At least 2s. Default
	// DefaultHeartbeatTimeout.
	HeartbeatTimeout time.Duration
	// MaxBootFailures is how many failed boots in a row make a slot
	// fail. Before the first "serving" (every slot ready once), or when
	// no other slot serves or has boots left, Serve then stops everything
	// and returns a *BootError; otherwise the others serve on and the slot
	// retries every 10 s, logging an error each time. Default
	// DefaultMaxBootFailures.
	MaxBootFailures int
	// MaxSurge is how many replacement workers a reload boots at a time,
	// beyond Workers. Default 1: slots are replaced one by one. Workers
	// that drain are not counted: they no longer accept connections.
	MaxSurge int

	// Recycle retires workers after a number of requests, an age or a
	// memory size (see package recycle): the master boots a replacement,
	// waits until it is ready, then drains the old worker, one recycle at
	// a time, at least Recycle.MinInterval apart, never during a reload or
	// an upgrade. A replacement that fails to boot leaves the old worker
	// serving; the recycle is retried later, with backoff, and does not
	// count towards MaxBootFailures. The zero Policy never recycles.
	Recycle recycle.Policy
	// RequestTimeout bounds a request, when set. A request still running
	// after it has its context cancelled (context.Cause wraps
	// context.DeadlineExceeded); its client gets 503 Service Unavailable,
	// with "Connection: close", unless the handler has begun its answer,
	// which is then cut off (the connection closed, or the HTTP/2 stream
	// reset) so that a short answer never passes for a whole one. One
	// record is logged with the method, the path, the duration and the
	// handler's stack. What the handler writes afterwards fails with
	// http.ErrHandlerTimeout and goes nowhere; the in-flight count and the
	// drain no longer wait for it. A handler that still runs a grace
	// period later (RequestTimeout again, at least a second) ignores its
	// context and cannot be stopped in Go: its worker asks to be recycled
	// and is replaced gracefully, the stuck goroutine with it. A handler
	// can move its own deadline with ExtendDeadline; a hijacked request (a
	// WebSocket) has none. With a timeout, each handler runs on a
	// goroutine of its own, which costs about 2 µs a request. Default 0:
	// no timeout, at no cost.
	RequestTimeout time.Duration

	// MetricsAddr, if set, is where the master serves every worker's
	// Prometheus metrics and its own, merged, at /metrics — each worker's
	// series labelled worker="<slot>" — and a status view at /status. A
	// bare port (":9100") binds loopback only; it must differ from every
	// serving address. The socket is bound with the others, is never
	// handed to workers, and survives upgrades. Off by default; Server's
	// MetricsHandler serves the same on a route of the program's own.
	//
	// At a binary upgrade the new master continues the old one's totals:
	// the old master, once its workers have drained, hands what they
	// counted to the new one, and until those totals are in (at most
	// UpgradeTimeout + GracefulTimeout + 6 s after the new master starts)
	// the new master holds its scrapes rather than serve its own pool's
	// counts alone, which Prometheus would read as a reset. An old master
	// killed before its end hands over nothing: the counts start over, as
	// after a crash.
	MetricsAddr string
	// MetricsGatherer is what a worker reports to the master: default
	// prometheus.DefaultGatherer of the worker process, so that promauto
	// metrics in handlers just work.
	MetricsGatherer prometheus.Gatherer
	// MetricsRegisterer, if set, also gets the master's own metrics
	// (workers by state, restarts, reloads, recycles…). They are always
	// served at MetricsAddr; gracefork never registers on the default
	// registry unasked.
	MetricsRegisterer prometheus.Registerer
	// WorkerMetrics adds the library's per-worker metrics to what each
	// worker reports: requests by code and method, their duration, in
	// flight, open connections, and the Go and process collectors.
	WorkerMetrics bool
	// MetricsTimeout bounds a scrape's wait for the workers: one that has
	// not answered by then is served from its last snapshot, marked stale.
	// Default DefaultMetricsTimeout.
	MetricsTimeout time.Duration

	// AccessLog, if set, gets one record per request ("request", at Info)
	// from the process that served it (a worker, or the single process):
	// slot (-1 in single-process mode), pid, method, path with its query,
	// status, body bytes, duration (as "1.5ms", a string in every
	// handler), remote address and protocol. A hijacked connection (a
	// WebSocket) is logged when its handler returns, with status 0 and
	// hijacked=true. Off by default; about 1.2 µs a request with slog's
	// JSON handler.
	AccessLog *slog.Logger
	// AccessLogCombined, if set, gets one line per request in Apache's
	// combined log format, for tools that expect it (hijacked: status
	// "-"). Each line is one Write, so the lines of a worker's
	// goroutines, and of workers appending to one file (opened with
	// O_APPEND) or pipe, never interleave. Off by default; about 0.4 µs a
	// request.
	AccessLogCombined io.Writer

	// ReloadOnChange, for development, watches the executable (the path
	// workers are started from) and runs a rolling reload, as SIGHUP does,
	// once a change has settled — the master looks every 500 ms and waits
	// for a look that finds nothing more changed — so that rebuilding in a
	// loop (`go build -o ./app && …`) restarts the workers without dropping
	// a request. A new binary that fails to boot leaves the old workers
	// serving. Not with "go run": it builds into a temporary directory, and
	// a rebuild is a new path the master does not know; build to a fixed
	// path instead. Multi-process mode only.
	ReloadOnChange bool
	// ReloadWatch are further paths — files, or directories whose files
	// (up to 10,000) are watched — whose change triggers the same reload:
	// templates, configuration. They need ReloadOnChange.
	ReloadWatch []string

	// PIDFile, if set, is written with the master's pid once every worker
	// is ready (atomically), names the new master after an upgrade, and is
	// removed at exit if it still names this one. A file that names a live
	// master of this program makes New refuse to start.
	PIDFile string
	// UpgradeTimeout bounds an upgrade: a new master not ready within it
	// is killed and this one serves on. At least MinBootTimeout. Default
	// DefaultUpgradeTimeout.
	UpgradeTimeout time.Duration

	// Signals maps signals to actions; default signals.Default(), Gunicorn's
	// table. It must leave a way to shut down.
	Signals signals.Map

	// Logger receives the master's events and the workers' own lines,
	// one structured record each. Default: text to stderr, or to LogFile,
	// at LogLevel.
	//
	// When it is set, what a worker writes to stderr outside it becomes
	// records too, so that a JSON log holds nothing but records: each
	// stray line one "worker output" record with the worker's slot and
	// pid; a Go crash dump (a panic that kills the worker, a fatal error,
	// the SIGABRT dump of a hung worker), from its first line to the end,
	// one "worker crash output" record at ERROR; a handler's panic, which
	// net/http recovers, one "handler panicked" record with its stack
	// (the worker's Server.ErrorLog, unless the program set one, logs
	// through Logger at WARN, that panic at ERROR). Lines that are records
	// already — the worker's Logger writing JSON, or slog's text, to
	// stderr — pass through as written. With the default Logger, worker
	// output is passed on as written.
	Logger *slog.Logger
	// LogLevel is the least level the default Logger writes; it is
	// ignored when Logger is set (give that handler its own level).
	// Default slog.LevelInfo.
	LogLevel slog.Leveler
	// LogFile, if set, is where the master writes its log (unless Logger
	// is set) and the workers' stdout and stderr, appending; the
	// ReopenLogs action (SIGUSR1) reopens it after a log rotation.
	LogFile string
	// OnEvent, if set, is called with every event the master logs, in
	// order: from the master's loop while Run runs, and from New for the
	// events of binding (see EventKind). It must return quickly and must
	// not wait for a Server method's outcome. Tests use it to wait for a
	// state.
	OnEvent func(Event)

	// Hooks are functions the master and the workers call at points of
	// the service's life, as Gunicorn's server hooks: WorkerInit before a
	// worker serves (connect the database, warm caches), WorkerShutdown
	// after it stopped. See [Hooks].
	Hooks Hooks

	// Spawner starts workers; default: the running executable re-executed
	// with the same arguments. preforktest provides a fake for tests.
	Spawner Spawner
	// Clock is the master's time source; default: the real clock.
	// preforktest provides a fake that tests advance by hand.
	Clock Clock
}

// config is Options validated and with defaults applied.
type config struct {
	Options
	addrs  []sockets.Addr
	fields []string // the field each addr came from, for error messages
	// tls is each address's TLS, nil for plain HTTP; perms, each unix
	// socket's file mode and owner.
	tls   []*tls.Config
	perms []sockets.Perm
	// metricsAddr is MetricsAddr parsed, a bare port made loopback; its
	// Network is "" when metrics are not served (master only).
	metricsAddr sockets.Addr
	procs       int // GOMAXPROCS for each worker, 0 to inherit
	// defaultLogger: Options.Logger was nil; the master then logs to
	// LogFile when one is set.
	defaultLogger bool
}

// validate checks what every process uses — the addresses, the
// durations, the Server template, the Logger — and applies the defaults.
// A worker runs only this; the master runs validateMaster as well.
func (o Options) validate() (*config, error) {
	c := &config{Options: o}
	if err := c.parseAddrs(); err != nil {
		return nil, err
	}
	if err := c.defaultDurations(); err != nil {
		return nil, err
	}
	if c.Server != nil {
		if err := checkTLS("Server.TLSConfig", c.Server.TLSConfig); err != nil {
			return nil, err
		}
	}
	if err := c.checkReusePort(sockets.ReusePortSupported()); err != nil {
		return nil, err
	}
	if c.Logger == nil {
		c.defaultLogger = true
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: c.LogLevel}))
	}
	c.Logger = withReadableDurations(c.Logger)
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	return c, nil
}

// Validate checks o as [New] would in the master, without binding a
// socket, starting a process or writing a file: the addresses, the
// durations and bounds, the Server template, the recycle policy, the
// metrics address, the PID file's directory and the signal table. It
// returns the *OptionError New would return, or nil. What only binding
// can tell (an address in use, a permission) it does not.
func (o Options) Validate() error {
	c, err := o.validate()
	if err != nil {
		return err
	}
	return c.validateMaster()
}

// defaultDurations rejects negative durations and fills in the defaults.
func (c *config) defaultDurations() error {
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"GracefulTimeout", &c.GracefulTimeout, DefaultGracefulTimeout},
		{"DrainIdle", &c.DrainIdle, DefaultDrainIdle},
		{"BootTimeout", &c.BootTimeout, DefaultBootTimeout},
		{"UpgradeTimeout", &c.UpgradeTimeout, DefaultUpgradeTimeout},
		{"HeartbeatTimeout", &c.HeartbeatTimeout, DefaultHeartbeatTimeout},
		{"RequestTimeout", &c.RequestTimeout, 0},
		{"MetricsTimeout", &c.MetricsTimeout, DefaultMetricsTimeout},
		{"ShutdownDelay", &c.ShutdownDelay, 0},
	}
	for _, d := range durations {
		if *d.v < 0 {
			return &OptionError{Field: d.name, Value: *d.v, Reason: "must not be negative"}
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	return nil
}

// validateMaster checks what only the master uses — the supervision
// bounds, the PID file's directory, the signal table — and applies their
// defaults. It runs after validate, in the master only: a worker must not
// stat the PID file's directory.
func (c *config) validateMaster() error {
	if err := c.checkBounds(); err != nil {
		return err
	}
	if err := c.checkPIDFileDir(); err != nil {
		return err
	}
	if err := c.checkRecycle(); err != nil {
		return err
	}
	if err := c.checkReloadWatch(); err != nil {
		return err
	}
	if err := c.parseMetricsAddr(); err != nil {
		return err
	}
	if c.Signals == nil {
		c.Signals = signals.Default()
	}
	if err := c.Signals.Validate(); err != nil {
		return &OptionError{Field: "Signals", Value: c.Signals, Reason: err.Error(), Err: err}
	}
	c.procs = workerProcs(c.Workers)
	return nil
}

// checkPIDFileDir refuses a PID file whose directory does not exist.
func (c *config) checkPIDFileDir() error {
	if c.PIDFile != "" {
		if st, err := os.Stat(filepath.Dir(c.PIDFile)); err != nil || !st.IsDir() {
			return &OptionError{Field: "PIDFile", Value: c.PIDFile, Reason: "its directory does not exist"}
		}
	}
	return nil
}

// checkBounds checks the master's counts and timeouts against their
// bounds and fills in the defaults of the counts.
func (c *config) checkBounds() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"BootTimeout", c.BootTimeout}, {"UpgradeTimeout", c.UpgradeTimeout}} {
		if d.v < MinBootTimeout {
			return &OptionError{Field: d.name, Value: d.v, Reason: "must be at least 1s (MinBootTimeout): starting processes and the Go runtime takes longer than that on a busy machine"}
		}
	}
	if c.HeartbeatTimeout < 2*heartbeatInterval {
		return &OptionError{Field: "HeartbeatTimeout", Value: c.HeartbeatTimeout, Reason: "must be at least 2s: workers report once a second"}
	}
	if c.Workers < 0 {
		return &OptionError{Field: "Workers", Value: c.Workers, Reason: "must not be negative"}
	}
	if c.Workers > MaxWorkers {
		return &OptionError{Field: "Workers", Value: c.Workers, Reason: "must be at most 1024 (MaxWorkers): each worker is a whole process, and more workers than cores gain nothing"}
	}
	c.Workers = cmp.Or(c.Workers, min(runtime.GOMAXPROCS(0), MaxWorkers))
	for _, n := range []struct {
		name string
		v    *int
		def  int
	}{{"MaxBootFailures", &c.MaxBootFailures, DefaultMaxBootFailures}, {"MaxSurge", &c.MaxSurge, 1}} {
		if *n.v < 0 {
			return &OptionError{Field: n.name, Value: *n.v, Reason: "must not be negative"}
		}
		*n.v = cmp.Or(*n.v, n.def)
	}
	return nil
}

func (c *config) parseAddrs() error {
	if c.Addr == "" && len(c.Addrs) == 0 && len(c.Listeners) == 0 {
		return &OptionError{Field: "Addr", Value: c.Addr, Reason: "no address to listen on (set Addr, Addrs or Listeners)"}
	}
	if c.Addr != "" {
		if err := c.addAddr("Addr", c.Addr); err != nil {
			return err
		}
	}
	for i, s := range c.Addrs {
		if err := c.addAddr(fmt.Sprintf("Addrs[%d]", i), s); err != nil {
			return err
		}
	}
	return c.parseListeners()
}

// addAddr parses the address s of field and adds it, once.
func (c *config) addAddr(field, s string) error {
	a, err := sockets.Parse(s)
	if err != nil {
		return &OptionError{Field: field, Value: s, Reason: err.Error()}
	}
	for i, prev := range c.addrs {
		if prev == a && !(a.Network == "tcp" && strings.HasSuffix(a.Address, ":0")) { // port 0: a free port each
			return &OptionError{Field: field, Value: s, Reason: "repeats Options." + c.fields[i]}
		}
	}
	c.addrs = append(c.addrs, a)
	c.fields = append(c.fields, field)
	return nil
}

// checkReusePort refuses ReusePort where the platform cannot balance
// per-slot sockets (unsupported is why, nil on Linux) and where no address
// would get them.
func (c *config) checkReusePort(unsupported error) error {
	if !c.ReusePort {
		return nil
	}
	if unsupported != nil {
		return &OptionError{Field: "ReusePort", Value: true, Reason: unsupported.Error(), Err: unsupported}
	}
	for _, a := range c.addrs {
		if a.Network == "tcp" {
			return nil
		}
	}
	return &OptionError{Field: "ReusePort", Value: true, Reason: "no TCP address to give each worker a socket of its own: unix sockets and fd://N addresses stay shared"}
}

// workerProcs splits the master's CPUs between the workers (ARCHITECTURE.md
// decision 10), unless the user set GOMAXPROCS, which the workers then inherit.
func workerProcs(workers int) int {
	if os.Getenv("GOMAXPROCS") != "" {
		return 0
	}
	return max(1, runtime.GOMAXPROCS(0)/workers)
}

// checkRecycle checks Options.Recycle, in the master, which applies it.
func (c *config) checkRecycle() error {
	p := c.Recycle
	if err := p.Validate(); err != nil {
		var fe *recycle.FieldError
		if errors.As(err, &fe) {
			return &OptionError{Field: "Recycle." + fe.Field, Value: phrase(fe.Value), Reason: fe.Reason}
		}
		return err
	}
	if p.MaxMemory > 0 && !rssSupported {
		return &OptionError{Field: "Recycle.MaxMemory", Value: p.MaxMemory, Reason: "unsupported on " + runtime.GOOS + ": workers read their resident set size on Linux only", Err: errors.ErrUnsupported}
	}
	return nil
}

// parseMetricsAddr checks Options.MetricsAddr, in the master, which alone
// binds it. A bare port (":9100") binds loopback: metrics tell an
// outsider much about a service, so exposing them is a choice to write
// out ("0.0.0.0:9100").
func (c *config) parseMetricsAddr() error {
	if c.MetricsAddr == "" {
		return nil
	}
	a, err := sockets.Parse(c.MetricsAddr)
	if err != nil {
		return &OptionError{Field: "MetricsAddr", Value: c.MetricsAddr, Reason: err.Error()}
	}
	if a.Network == "tcp" {
		if host, port, _ := net.SplitHostPort(a.Address); host == "" {
			a.Address = net.JoinHostPort("127.0.0.1", port)
		}
	}
	for i, prev := range c.addrs {
		if prev == a {
			// Port 0 included: tableflip hands sockets over by the address
			// as written, so two ":0" would become one after an upgrade.
			return &OptionError{Field: "MetricsAddr", Value: c.MetricsAddr, Reason: "repeats Options." + c.fields[i] + " (a bare port means 127.0.0.1): metrics need an address of their own"}
		}
	}
	c.metricsAddr = a
	return nil
}
