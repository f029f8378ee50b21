package prefork

import (
	"net/http"
	"time"

	core "github.com/gracefork/gracefork/internal/worker"
)

// ExtendDeadline moves the timeout of r, a request that a worker serves
// under Options.RequestTimeout, to d from now: a handler that knows it
// needs longer (an export, a report) asks for it, as a request's progress
// shows, instead of raising the timeout for every request. A shorter d
// moves the deadline closer. ExtendDeadline reports false when r has no
// timeout: RequestTimeout is 0, r is not served by a gracefork worker (a
// test's request, a program outside Serve), or r has timed out, returned
// or hijacked its connection already.
func ExtendDeadline(r *http.Request, d time.Duration) bool { return core.ExtendDeadline(r, d) }
