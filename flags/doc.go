// Package flags gives a program Gunicorn's command line: [Register] puts
// the flags on a flag.FlagSet, and [Set.Apply], after the FlagSet is
// parsed, fills a prefork.Options from them and from the environment.
//
//	opts := prefork.Options{Addr: "127.0.0.1:8080", Workers: 2} // the program's defaults
//	fl := flags.Register(flag.CommandLine, &opts)
//	flag.Parse()
//	fl.Apply() // exits 2 on a bad value, as flag.Parse does
//	srv, err := prefork.New(handler, opts)
//	if uerr := fl.UsageError(err); uerr != nil { ... exit 2 ... }
//
// then
//
//	app -w 4 -b :8080 -b unix:/run/app.sock --max-requests 10000 --timeout 30
//	WEB_CONCURRENCY=4 PORT=8080 app
//	GRACEFORK_MAX_MEMORY=512MiB GRACEFORK_BIND="0.0.0.0:8080,unix:/run/app.sock" app
//
// # Flags
//
// Go's flag package reads -name and --name alike; Gunicorn's short names
// (-w, -b, -t, -p) are registered too.
//
//	-w, -workers n             Options.Workers (0: one per core)
//	-b, -bind address          Options.Addr, then Addrs: host:port, unix:/path, fd://N; repeatable
//	-max-requests n            Options.Recycle.MaxRequests
//	-max-requests-jitter n     Options.Recycle.MaxRequestsJitter
//	-max-age d                 Options.Recycle.MaxAge
//	-max-age-jitter d          Options.Recycle.MaxAgeJitter
//	-max-memory size           Options.Recycle.MaxMemory: 800M, 512MiB, 1GiB or bytes
//	-t, -timeout d             Options.HeartbeatTimeout (Gunicorn's worker silence timeout)
//	-graceful-timeout d        Options.GracefulTimeout
//	-keep-alive d              Options.Server.IdleTimeout; 0 turns keep-alive off
//	-p, -pid file              Options.PIDFile
//	-access-logfile file|-     Options.AccessLogCombined, or AccessLog with -access-log-format json|text
//	-log-level level           Options.LogLevel (debug, info, warning, error, critical)
//	-log-file file             Options.LogFile
//	-metrics-bind address      Options.MetricsAddr
//	-shutdown-delay d          Options.ShutdownDelay
//	-reload                    Options.ReloadOnChange
//	-reload-extra-file path    Options.ReloadWatch; repeatable, needs -reload
//	-single-process            Options.SingleProcess
//	-reuse-port                Options.ReusePort: a socket per worker slot (Linux)
//	-no-balance                Options.NoBalance: no keep-alive balancing across workers
//	-check-config              validate, print OK or the error, exit 0 or 2
//
// A duration is Go's ("1m30s", "500ms") or, as Gunicorn's are written, a
// bare number of seconds ("30", "0.5"); none may be negative. -b fd://N
// names a socket the parent process passed as descriptor N; it is given
// to the library as written.
//
// # The environment
//
// Each flag but -check-config falls back on GRACEFORK_ and its name in
// capitals, dashes as underscores: GRACEFORK_WORKERS,
// GRACEFORK_MAX_REQUESTS, GRACEFORK_ACCESS_LOGFILE. GRACEFORK_BIND holds
// one or more addresses separated by commas or spaces;
// GRACEFORK_RELOAD_EXTRA_FILE is a list of paths as PATH is (colons on
// Unix). Booleans take 1, true, 0 or false. An empty variable counts as
// unset. -check-config has no variable: one left set would stop every
// start. Then, as on Heroku and the platforms that copied it,
// WEB_CONCURRENCY gives the workers and PORT the address (":$PORT", every
// interface) when no -b and no GRACEFORK_BIND is given.
//
// A value is taken from the first of: the flag, GRACEFORK_<NAME>,
// WEB_CONCURRENCY or PORT, and last what the Options held before Apply
// (the program's default, shown by -h). A bad value stops Apply before
// any process starts, naming the flag or the variable and the value as
// written: `invalid value "-1h" for flag -max-age: must not be negative`,
// `GRACEFORK_MAX_AGE="-1h": must not be negative`. Values only the
// library can judge (a -timeout under 2s, a PID file in a missing
// directory) are reported by prefork.New as an *prefork.OptionError, which
// [Set.UsageError] rewrites the same way.
//
// # The program's own settings
//
// Apply adjusts, rather than replaces, what the program set:
//
//   - -keep-alive sets IdleTimeout on the program's Options.Server, or on
//     a new one when it is nil.
//   - -log-level sets Options.LogLevel, the default logger's level. A
//     Logger of the program's own is kept, behind a filter that drops the
//     records below the level: the flag can raise its threshold, not lower
//     it below its handler's own.
//   - -access-logfile replaces any access log of the program's own, so
//     that requests are not logged twice. The file is opened, appending,
//     by every process; SIGUSR1 does not reopen it (rotate it with
//     copytruncate).
//   - GRACEFORK_SINGLE_PROCESS is read by prefork itself as well, so
//     -single-process=false does not override it.
//
// # From Gunicorn and from fasthttp's prefork
//
//	Gunicorn                        gracefork
//	-w, --workers, WEB_CONCURRENCY  -w, -workers, WEB_CONCURRENCY, GRACEFORK_WORKERS
//	-b, --bind (fd://, unix:)       -b, -bind (fd://N, unix:/path), PORT, GRACEFORK_BIND
//	--max-requests[-jitter]         the same
//	-t, --timeout                   -t, -timeout (worker silence; Options.RequestTimeout bounds a request)
//	--graceful-timeout              the same
//	--keep-alive                    the same (http.Server.IdleTimeout)
//	-p, --pid                       the same
//	--access-logfile                the same; --access-logformat is -access-log-format combined|json|text
//	--log-level                     the same
//	--log-file, --error-logfile     -log-file (reopened on USR1)
//	--reload, --reload-extra-file   the same
//	--check-config                  the same (exit 2, not 1, on an error)
//	--statsd-host                   -metrics-bind (Prometheus)
//	signals HUP TERM INT QUIT USR1 USR2 WINCH TTIN TTOU   the same table (signals.Default)
//	server hooks (when_ready, post_fork…)  Options.Hooks (no flag: they are code)
//
//	fasthttp prefork.Prefork        gracefork
//	Network "tcp4"/"tcp6"           the address: "0.0.0.0:8080" or "[::]:8080"
//	Reuseport                       none: one socket, inherited by every worker
//	RecoverThreshold                Options.MaxBootFailures (boot failures in a row)
//	ServeFunc, ServeTLSFunc         prefork.Serve(handler, opts), Options.Server.TLSConfig
//	Logger                          Options.Logger (log/slog), -log-level
//	GOMAXPROCS children             -workers; each worker gets GOMAXPROCS/workers
//	ShutdownGracePeriod             -graceful-timeout
//	OnChildSpawn, OnMasterReady     Options.Hooks (AfterSpawn, OnReady), or Options.OnEvent
//	CommandProducer                 Options.Spawner
//	IsChild()                       prefork.IsWorker(), or Options.Hooks.WorkerInit
package flags
