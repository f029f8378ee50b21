// Package gracefork gives a net/http program what Gunicorn gives a Python
// application, and what nginx's master and workers give a web server: one
// binary becomes a master process and N worker processes that serve the same
// listening sockets. Through a rolling reload, a scale-down, a binary
// upgrade and a graceful stop, every request sent on a connection the server
// accepted is answered; a worker that crashes loses only the requests it was
// serving at that moment, and the connections still queued go to the other
// workers.
//
// The API is in package [github.com/gracefork/gracefork/prefork]:
//
//	mux := http.NewServeMux()
//	mux.HandleFunc("/", hello)
//	if err := prefork.Serve(mux, prefork.Options{Addr: ":8080", Workers: 4}); err != nil {
//		log.Fatal(err)
//	}
//
// # Roles
//
// The same main runs in every process. Serve (or [prefork.New]) looks for
// the worker marker, a private environment variable the master sets for
// its workers. Without it the process is the
// master: it validates the options (a bad field is an error naming the
// field and the value, before anything starts), binds every address once,
// starts the workers and supervises them. With it the process is a worker:
// it serves the handler on the sockets it inherited until it is told to
// drain. Serve removes the marker from the worker's environment when it
// takes the hand-off, so programs that a handler starts never inherit it
// (the inherited sockets are made close-on-exec before main runs, so
// neither do programs started before Serve); a process that
// carries it without having been started by a master fails at once with a
// message saying so.
//
// # Lifecycle
//
// The master holds every listening socket for its whole life; workers
// inherit them. All workers accept from one kernel queue, so a worker that
// exits, crashes or drains never takes a queued connection with it.
//
// A worker that exits unasked is restarted in the same slot: at once if it
// had served for a second, however often that happens, and with a doubling
// backoff (100ms up to 10s) when workers keep dying young. Workers that fail
// to boot (exit before they report ready, or are not ready within
// BootTimeout) MaxBootFailures times in a row make Serve drain the rest and
// return a *prefork.BootError that quotes the exit status, the error the
// worker reported (a failed WorkerInit, see Hooks) and its last stderr
// lines — at start, or when no other worker serves. Once the
// service serves, a slot that cannot be refilled does not stop it: the
// other workers serve on, the slot retries every 10s, and the master says
// so (EventDegraded, systemd's STATUS=).
//
// A serving worker reports to the master every second. One that stays
// silent for HeartbeatTimeout (30s by default) — stopped, or wedged — is
// killed and its slot restarted: the connections it accepted would
// otherwise hang for ever. It is sent SIGABRT first, so the master's log
// has every goroutine's stack in its "exited" record: where it hung.
//
// A reload starts a new worker from the binary on disk for each slot, waits
// until it is ready, then drains the old one: capacity never dips. A
// reload whose new workers cannot boot stops there and leaves the old
// workers serving. Reloads asked for during a reload coalesce into one
// more pass.
//
// A drain stops the worker accepting (the socket lives on in the master and
// the other workers), answers every request from then on with
// "Connection: close" so each keep-alive client reconnects — to another
// worker — after its next answer, closes connections that stay silent for
// DrainIdle, lets requests in flight finish within GracefulTimeout, and
// exits. The master kills what is left shortly after that deadline.
//
// A final stop (SIGTERM) has two phases: the master closes its copies of
// the sockets and every worker stops accepting, keeping its connections;
// only then are the workers told to drain. Clients told to reconnect are
// refused at once — safe to retry elsewhere — instead of queuing in a
// backlog that nobody serves.
//
// A worker whose master dies (even by SIGKILL) sees its control channel
// close, drains, and exits: no orphans.
//
// Handlers that hold a connection for long — WebSockets, streams, hijacked
// connections — select on [prefork.Draining] to finish and let the client
// reconnect elsewhere; the drain waits for them until GracefulTimeout.
// HTTP/2 connections (over TLS, and h2c through http.Server.Protocols) get
// a GOAWAY the moment the drain starts, so their clients open new streams
// elsewhere at once.
//
// # Addresses
//
// Options.Addr and Options.Addrs take "host:port", "unix:/path" and
// "fd://N" (a listening socket the parent process passed as descriptor N);
// they all serve with Options.Server, TLS included. [prefork.Listener]s
// (Options.Listeners) carry settings of their own: a TLS configuration for
// that address alone (nil is plain HTTP there), and a unix socket's mode,
// owner and group, applied as the master binds it. Every address is bound
// once, by the master (or the single process), and survives reloads and
// binary upgrades; a socket systemd passed is taken instead of binding.
//
// # Hooks
//
// Options.Hooks holds Gunicorn's server hooks for Go. In each worker (and
// in the single process), WorkerInit runs before it serves — connect the
// database, warm caches — in place of an IsWorker branch before Serve; its
// error fails the boot, and the master's error (a *BootError, the
// "exited" and "reload failed" records) quotes it, so a reload to a build
// that cannot reach its database leaves the old workers serving and says
// why. WorkerShutdown runs once the worker's drain is over, every request
// answered. In the master, OnStarting, BeforeSpawn, AfterSpawn, OnReady,
// OnWorkerExit, OnReloadStart, OnReloadEnd and OnExit run one at a time,
// in order, on a goroutine of their own: the master never waits for them,
// so a slow or stuck hook delays only the hooks after it, never a restart
// or a reload — and BeforeSpawn is not a barrier. A hook that runs past
// 10s is reported; one that panics is recovered and reported; at the end,
// Run waits for OnExit at most 15s.
//
// # Recycling
//
// Options.Recycle (package [github.com/gracefork/gracefork/recycle])
// retires workers after a number of requests, an age, or a resident set
// size held over several heartbeats, each worker with its own jittered
// limits. A worker past a limit serves on while the master boots its
// replacement; once that is ready, the old one drains — a reload of one
// slot. Recycles run one at a time across the pool, at least MinInterval
// apart, and wait while a reload or an upgrade runs. A replacement that
// cannot boot leaves the old worker serving; the recycle is retried after
// 1s, 2s, … up to a minute, and never counts towards MaxBootFailures.
//
// Options.RequestTimeout (off by default) bounds a request: past it, its
// context is cancelled and the client gets 503, or, if the answer has
// begun, a cut-off response; one record gives the handler's stack. A
// handler that ignores its context for a grace period more cannot be
// stopped in Go: its worker is recycled as above, and the goroutine goes
// with it. [prefork.ExtendDeadline] lets a handler move its own deadline.
//
// Gunicorn's settings map to the options so:
//
//	max_requests          Recycle.MaxRequests
//	max_requests_jitter   Recycle.MaxRequestsJitter (a draw from [0, jitter], as Gunicorn's)
//	timeout               HeartbeatTimeout (a silent worker), RequestTimeout (a slow request)
//	graceful_timeout      GracefulTimeout
//	(none)                Recycle.MaxAge, MaxAgeJitter, MaxMemory, MemorySamples, MinInterval
//
// The master checks age and memory on each heartbeat, once a second; a
// worker reports at once when it reaches the request limit the master drew
// for it. It serves on while its replacement boots, so it answers a few
// more requests than its limit under load.
//
// # Metrics
//
// With Options.MetricsAddr the master serves every worker's Prometheus
// metrics and its own, merged, at /metrics, each worker's series labelled
// worker="<slot>", and a status view at /status. Handlers register their
// metrics as usual (promauto, on the worker process's default registry, or
// Options.MetricsGatherer). A scrape gathers from every worker over its
// control channel within MetricsTimeout; a worker that does not answer in
// time is served from its last snapshot and marked stale. A worker that
// leaves as asked sends a final snapshot that is folded into its slot, so
// a reload, a recycle or a scale-down never makes a total go down; after a
// binary upgrade the new master continues the old one's totals. A crash
// resets that worker's part. Options.WorkerMetrics adds the
// library's request metrics per worker.
//
// # Balance
//
// All workers accept from one socket, and Linux tends to give a new
// connection to the worker that has just accepted; with keep-alive it then
// stays there. The master answers each worker's heartbeat with the pool's
// totals, and a worker holding more than its share of the connections (the
// fair part plus a tenth), or its fair share while another worker holds
// fewer, holds back from accepting, for at most 50 ms at a time; it
// answers the kept-alive clients beyond its share once each with
// "Connection: close", a whole answer: they reconnect, to another worker.
// With one worker nothing changes. Options.NoBalance (-no-balance) turns it
// off, for clients that spread their requests over connections themselves.
//
// # Per-slot sockets
//
// With Options.ReusePort (Linux), each worker slot has a listening socket
// of its own for every TCP address, bound with SO_REUSEPORT to the same
// port, and Linux hands each new connection to one of them by a hash of
// the client's address and port; unix sockets, fd://N addresses and
// sockets systemd passed stay shared. The master holds every slot's
// socket for its life: a reload, a recycle or a crash restart gives the
// slot's next worker the same socket, and the connections queued in it
// are served, not lost. A worker does not hold back from accepting on its
// own socket (no other worker would serve its queue); it still sends
// kept-alive clients beyond its share to reconnect, and their new
// connections land on a slot chosen by the hash. Scaling up binds the new
// slot's socket, or reopens the one it had; scaling down closes the
// removed slot's socket the moment its queue is empty, while its worker
// still accepts, and only then drains the worker. A connection whose
// handshake completes in that instant is reset, unless
// net.ipv4.tcp_migrate_req=1 moves it to another slot's socket; the
// master logs the setting. A binary upgrade hands every slot's socket to
// the new master, which binds the sockets of slots it has in excess and
// closes, the same way, those of slots it lacks before it takes over. An
// upgrade cannot switch the option on or off: restart the service.
//
// The cost: a slot whose worker is gone keeps receiving its share of new
// connections, which wait until the next worker serves them — at once
// after a crash of a worker that served, up to the backoff after a young
// crash. A slot that fails to boot MaxBootFailures times closes its
// socket until it boots again. With the shared socket, the other workers
// take those connections at once, which is why it stays the default.
//
// # Single-process mode
//
// Where an orchestrator (Kubernetes, Nomad, ECS) supervises, one process per
// pod is the usual choice, and the orchestrator does the master's job.
// Options.SingleProcess, or the environment variable GRACEFORK_SINGLE_PROCESS
// set to 1 or true (so that one image runs either way), makes New bind every
// address and serve the handler in this process, with no master and no fork;
// it is the only mode on Windows. The serving core is the workers' own: the
// same drain (Connection: close, GOAWAY, DrainIdle, GracefulTimeout),
// RequestTimeout, metrics (at MetricsAddr, with /readyz and /livez), PID
// file, systemd notifications and socket activation. A recycling limit, or a
// runaway request, drains the process and makes Run return nil — exit 0 —
// for the orchestrator to start a fresh one. SIGTERM (and Shutdown, or Run's
// context) stops gracefully, SIGINT and SIGQUIT at once; SIGHUP is ignored
// with a warning, and Reload, Upgrade, Scale and ReopenLogs return
// prefork.ErrSingleProcess. As a container's PID 1 the process reaps the
// zombies nobody waited for within 5 seconds — orphans; a program that
// starts commands must Wait for them within that time. WorkerID is -1 and
// Draining is closed when the drain begins, as in a worker.
//
// # Readiness and the shutdown delay
//
// prefork.ReadyHandler answers a readiness probe: 200 while the instance
// should get traffic, 503 with the reason before it serves, from the first
// moment of a stop, and — in multi-process mode — while fewer than Workers
// workers are ready or a slot is degraded. The master tells every worker the
// pool's state over the control channel, so the handler mounted on the
// program's own mux answers for the whole pool whichever worker takes the
// probe; the master also serves it at MetricsAddr/readyz.
// prefork.LiveHandler fails only when the process is wedged: in the master,
// when its loop has not taken an event within 5 seconds.
//
// Kubernetes removes a terminating pod from its endpoints at the same time as
// it sends SIGTERM, and the news takes 1 to 30 seconds to reach kube-proxy,
// ingress controllers and cloud load balancers. Options.ShutdownDelay is
// that time: on a graceful stop the readiness probe fails at once, while
// every request — keep-alive and new connections alike — is served as
// before for the delay; then the drain begins. A quick stop during the delay
// cuts it short; a reload, an upgrade or a change of the worker count is
// refused (ErrServerClosed), and a crashed worker is still replaced.
// Without a delay, a client whose connection is in the socket's queue at
// the instant the last listener closes is reset, as with any server that
// closes its listener (net/http's Shutdown too): the delay is what empties
// that queue of traffic first. examples/kubernetes has a Deployment whose
// terminationGracePeriodSeconds covers ShutdownDelay and GracefulTimeout.
//
// # Upgrade
//
// An upgrade (USR2, or [prefork.Server.Upgrade], which returns once the new
// master took over, or why it did not) starts the binary on disk as a new
// master through github.com/cloudflare/tableflip.
// The new master inherits every socket — no bind, no refused connection —
// starts its own workers, and reports ready only when all of them are; the
// old master then drains its workers and exits. Both generations serve
// during the overlap. A new binary that exits, crashes or is not ready
// within UpgradeTimeout changes nothing: it is killed, the old master serves
// on, and the failure is logged with its exit status and what it said
// (invalid options, a *BootError with its workers' stderr). One upgrade
// runs at a time, and a new master upgrades in turn only once its
// predecessor has gone.
//
// HUP and USR2 differ: HUP replaces the workers from the binary on disk and
// keeps the master, its options and its sockets; USR2 replaces the master
// too, so changed options (addresses, worker count, timeouts) take effect.
//
// # systemd
//
// The master speaks sd_notify without cgo: READY=1 once every worker
// serves; RELOADING=1 with MONOTONIC_USEC and READY=1 around a reload, so
// Type=notify-reload works with HUP; MAINPID=<pid> with READY=1 from the
// new master after an upgrade; STOPPING=1 on shutdown; STATUS= when a slot
// is degraded; WATCHDOG=1 when WatchdogSec is set, from whichever master is
// the main process, across upgrades. Sockets passed by socket activation (LISTEN_FDS,
// LISTEN_PID, LISTEN_FDNAMES) are used instead of binding, matched to the
// addresses by name (FileDescriptorName= set to the address) or by their
// bound address. Options.PIDFile names the current master across upgrades.
// examples/systemd/hello.service is a unit that fits: Type=notify,
// NotifyAccess=all (the new master's MAINPID comes from a process that is
// not yet the main one), ExecReload=/bin/kill -USR2 $MAINPID for binary
// upgrades on "systemctl reload", KillMode=mixed and a TimeoutStopSec past
// GracefulTimeout. Users of Type=notify-reload, whose reload signal is HUP,
// get worker reloads instead; remap HUP to signals.Upgrade in
// Options.Signals to make it upgrade.
//
// In a terminal, the process the shell started stays after an upgrade as a
// small waiter (it re-executes itself and forwards signals to the new
// master), so Ctrl-C still stops everything; elsewhere it exits. Either
// way, kill -TERM "$(cat pidfile)" stops the newest master.
//
// # Signals
//
// The master speaks Gunicorn's signals by default (package
// [github.com/gracefork/gracefork/signals]); Options.Signals remaps them,
// and the methods of [prefork.Server] perform the same actions from Go and
// report their outcome: Reload(ctx) returns once every worker runs the new
// code, or the new code's boot failure; Upgrade(ctx), Scale(n),
// Shutdown(ctx) and Close as net/http's.
//
//	HUP          rolling reload of the workers from the binary on disk
//	TERM         graceful shutdown: drain every worker, then exit
//	INT, QUIT    quick shutdown
//	USR1         reopen Options.LogFile
//	USR2         upgrade: a new master from the binary on disk takes over
//	WINCH        drain every worker, keep the master and its sockets
//	TTIN, TTOU   one worker more, one fewer (never fewer than one)
//
// Workers run in process groups of their own, so Ctrl-C in a terminal
// reaches only the master, which stops them in order. A signal sent to
// every process at once (systemd's default KillMode) drains gracefully
// too: a worker that gets TERM or HUP drains, INT or QUIT quits. SIGWINCH
// is ignored while the master runs in a terminal, whose window resizes
// send it.
//
// # Output
//
// Workers write straight to the master's standard output. Their standard
// error passes through the master, which keeps its last lines to explain a
// failed boot. The master logs each event (spawned, ready, exited with
// status, restart scheduled, giving up, reload …) as one log/slog record.
// With Options.Logger set, the workers' stderr becomes records as well: a
// stray line one record with the worker's slot and pid, a crash dump one
// record, a handler's panic (net/http's ErrorLog) one record with its
// stack; lines that are records already pass through.
//
// # Testing
//
// Package [github.com/gracefork/gracefork/prefork/preforktest] runs a master
// with fake workers and a fake clock, so supervision logic is tested without
// processes and without waiting. Programs' own end-to-end tests can run the
// test binary as master and workers, as this module's tests do.
//
// # Caveats
//
// Linux is the main platform. macOS and FreeBSD run the same processes;
// there a worker learns of its master's death from its control channel's
// EOF once it serves (Linux also signals it while it boots), a worker whose
// binary was deleted cannot be restarted, and the PID file check
// recognises a live master only by its executable's path as the system
// reports it. On Windows, Serve and New serve in single-process mode.
//
// Under "go run" the master is a child of the go command: send signals to
// the master's pid, not to go's, and an upgrade starts the binary go
// built, not your source. Options must be the same in every process, which they are when
// every process runs the same main with the same arguments. Workers and
// new masters are started from the path the program was started as
// (os.Args[0], symlinks kept), so a "current -> releases/vN" switch
// followed by HUP or USR2 runs the new release.
package gracefork
