package prefork

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrUnsupported is wrapped by the error [Serve] and [NewMaster] return on
// a platform where the master cannot run worker processes: Windows, where
// processes inherit no descriptors by number and receive no unix signals.
// It wraps [errors.ErrUnsupported]. A single-process mode is planned there.
var ErrUnsupported = fmt.Errorf("prefork: multi-process mode is not available on this platform (%w)", errors.ErrUnsupported)

// Serve runs h in N worker processes of this binary that share the
// listening sockets, supervised by this process, the master.
//
// The same program runs in every process: Serve looks for the worker marker
// in the environment ([IsWorker]). Without it, this process is the master:
// it validates opts, binds every address, starts the workers, restarts the
// ones that crash, and acts on signals (see package signals) until it is
// told to stop. With it, Serve serves h on the inherited sockets until the
// master tells it to drain, or the master dies.
//
// In both roles Serve returns nil after a graceful shutdown, so write
//
//	if err := prefork.Serve(h, opts); err != nil {
//		log.Fatal(err)
//	}
//
// Invalid options return an *OptionError before anything is started;
// repeated boot failures a *BootError. On Windows, Serve returns an error
// wrapping [ErrUnsupported].
func Serve(h http.Handler, opts Options) error {
	if err := supported(); err != nil {
		return err
	}
	if IsWorker() {
		return serveWorker(h, opts)
	}
	m, err := NewMaster(opts)
	if err != nil {
		return err
	}
	return m.Run()
}
