package prefork

import "context"

// Hooks are functions gracefork calls at points of a service's life, as
// Gunicorn's server hooks: each field's comment says which process it runs
// in and when. Nil fields are skipped. Every process runs the same main, so
// every process has every hook; each runs only where its comment says.
type Hooks struct {
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
	// stop (SIGINT, SIGQUIT, Close), once every connection has been
	// closed. It is where to close the database and flush buffers. It runs
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
