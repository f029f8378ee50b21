package prefork

import "context"

// Hooks are functions gracefork calls at points of a service's life, as
// Gunicorn's server hooks: each field's comment says which process it runs
// in and when. Nil fields are skipped. Every process runs the same main, so
// every process has every hook; each runs only where its comment says.
//
// The master's hooks (OnStarting … OnExit) run in the master process, one
// at a time, in the order of the moments that call them, on a goroutine
// of their own: the master never waits for one. It starts a worker
// without waiting for BeforeSpawn, and goes on serving while OnReady
// runs; its supervision (restarts, reloads, signals, heartbeats) never
// stalls behind a hook. A hook that runs longer than SlowHookAfter (10 s)
// is reported (EventHookSlow) and runs on, the hooks queued after it
// waiting for it; a hook that panics is recovered and reported
// (EventHookPanicked), and the master and the next hooks go on. Once the
// last worker has gone, Run waits for OnExit and whatever is still queued,
// at most HooksExitWait (15 s). Unlike OnEvent, a hook may call the
// Server's methods; one that waits for an outcome (Reload, Upgrade,
// Shutdown) holds the hooks queued behind it until it returns — and
// Shutdown waits for Run, which waits for the hooks until HooksExitWait —
// so call those from a goroutine of the hook's own. After a binary upgrade
// each master runs its own hooks: the new one from OnStarting, while the
// old one still serves, to OnExit. The single-process mode has no master,
// and runs none of them.
//
// The workers' hooks (WorkerInit, WorkerShutdown) run in each worker
// process, and in the single process, at the start and the end of its
// serving; the worker waits for them, within bounds.
type Hooks struct {
	// OnStarting runs in the master when Run starts, before any other
	// hook. The workers start without waiting for it: what must be done
	// before any worker starts belongs before Run, in the master
	// (Server.IsMaster).
	OnStarting func()
	// BeforeSpawn runs in the master for each worker it starts — at
	// start, after a crash, in a reload, a recycle or a scale-up — with
	// the worker's slot and generation (its Pid is 0). It is not a
	// barrier: the worker starts at once, and may serve before
	// BeforeSpawn has run.
	BeforeSpawn func(w WorkerInfo)
	// AfterSpawn runs in the master once a worker process has started
	// (EventSpawned), with its pid. A spawn that fails (EventSpawnFailed)
	// has no AfterSpawn.
	AfterSpawn func(w WorkerInfo)
	// OnReady runs in the master once: when every slot first has a ready
	// worker, the moment of EventServing, the PID file and systemd's
	// READY=1. A reload does not run it again (OnReloadEnd tells when one
	// is over); a master started by a binary upgrade runs its own OnReady
	// when its workers are ready, before the old master drains.
	OnReady func()
	// OnWorkerExit runs in the master after a worker process has ended,
	// whatever ended it, with its exit as EventExited has it (Exit.Failure:
	// the error it reported, such as WorkerInit's) and whether the master
	// had asked it to go (a drain or a quit, not a kill).
	OnWorkerExit func(w WorkerInfo, exit Exit, expected bool)
	// OnReloadStart runs in the master when a rolling reload begins
	// (SIGHUP, Server.Reload, ReloadOnChange). Reloads asked for during
	// one coalesce into one more pass, which begins — OnReloadStart —
	// once the pass under way has ended — OnReloadEnd.
	OnReloadStart func()
	// OnReloadEnd runs in the master when the reload pass ends, with what
	// Server.Reload returns for it: nil when every slot runs a new worker;
	// the *BootError of a new worker that failed to boot (the old workers
	// serve on); ErrServerClosed when a stop ended it; an error when
	// stop-workers (WINCH, Scale(0)) did. Every OnReloadStart has its
	// OnReloadEnd.
	OnReloadEnd func(err error)
	// OnExit runs in the master last, once every worker has gone, with the
	// error Run then returns: nil, or the *BootError of workers that kept
	// failing to boot. Run waits for it, and for the hooks queued before
	// it, at most HooksExitWait.
	OnExit func(err error)

	// WorkerInit runs in each worker, and in the single process of the
	// single-process mode, before it serves: its listeners accept nothing
	// and it reports ready to the master only once WorkerInit has returned
	// nil. It is the place to connect to a database, warm caches or load
	// models — what a program would otherwise do in an IsWorker branch
	// before Serve. WorkerID and WorkerGeneration tell it which worker it
	// is (WorkerID is -1 in single-process mode).
	//
	// An error fails the boot: the worker exits non-zero without serving,
	// and Run returns it, wrapped ("prefork: WorkerInit: …"). In
	// multi-process mode the worker also sends its text to the master,
	// which quotes it in the worker's exit (Exit.Failure, the "exited"
	// record) and in the *BootError of a boot that keeps failing, or of a
	// reload that fails (the old workers then serve on). A panic crashes
	// the process, with its stack in the worker's stderr, which the master
	// keeps.
	//
	// It counts towards BootTimeout: a worker not ready in time is killed.
	// ctx is cancelled when the worker is told to stop before it serves (a
	// stop signal, Close, or Run's context ending); once WorkerInit has
	// returned, the worker then stops without serving, and an error it
	// returned is logged, not returned.
	WorkerInit func(ctx context.Context) error
	// WorkerShutdown runs in each worker, and in the single process, once
	// it has stopped serving, where http.Server.RegisterOnShutdown's
	// functions would: after a drain, when every request has been answered
	// and every handler has returned (hijacked connections' included) or
	// GracefulTimeout has cut the drain short, and the server's
	// RegisterOnShutdown functions have been started; or after a quick
	// stop (SIGINT, SIGQUIT, Close), once the server has closed its
	// connections (hijacked ones are their handlers' to close). It is where to close the database and flush buffers. It runs
	// once in every process whose WorkerInit succeeded (or that has none),
	// whatever stopped it, but never in a process that was killed.
	//
	// The worker waits for it, and exits only once it has returned or ctx
	// has ended: ctx ends when the drain's deadline (GracefulTimeout from
	// the drain's start) passes, and at least 1 s after WorkerShutdown
	// starts — before the master's kill, which comes 2 s after the
	// deadline (after a quick stop, 2 s after the stop). An error is
	// logged. A panic crashes the process, as in any goroutine.
	WorkerShutdown func(ctx context.Context) error
}
