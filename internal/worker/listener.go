package worker

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// acceptSignal tells when a server has entered its accept loop.
// http.Server finishes its setup inside Serve and ServeTLS (HTTP/2
// configuration, TLS checks) and only then calls Accept: the first call
// means the server serves.
type acceptSignal struct {
	net.Listener
	once    sync.Once
	onFirst func() // called once, at the first Accept
	// hold is called before each Accept (balance.go); nil: none. It
	// reports whether this worker is still over its share: it then takes
	// only a connection that is waiting already, and holds back again.
	hold func() bool
	// deadline sets the inner listener's accept deadline, to poll and to
	// wake an Accept (kick); nil when the listener has none.
	deadline func(time.Time) error

	closeOnce sync.Once
	closeErr  error
}

// Close closes the listener once: CloseListeners closes it at drain
// start, and http.Server.Shutdown, which closes it again, must not fail on
// an idle worker whose Serve has not yet seen the first close.
func (l *acceptSignal) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.Listener.Close() })
	return l.closeErr
}

// pollWait is how long a worker over its share waits in Accept for a
// connection already queued: one that no worker under its share took.
const pollWait = time.Millisecond

// Accept returns the inner listener's connection unchanged. With
// balancing, a worker over its share never waits in Accept: while it is
// over, it holds back, then takes a connection only if one is queued
// already (no other worker took it), and holds back again. A worker that
// waits in Accept when it goes over its share is woken (kick).
func (l *acceptSignal) Accept() (net.Conn, error) {
	l.once.Do(l.onFirst)
	if l.hold == nil {
		return l.Listener.Accept()
	}
	if l.deadline == nil {
		l.hold()
		return l.Listener.Accept()
	}
	for {
		// The deadline is cleared before the share is read: a kick
		// after the read wakes this Accept, one before it is seen.
		l.deadline(time.Time{})
		if l.hold() {
			l.deadline(time.Now().Add(pollWait))
		}
		c, err := l.Listener.Accept()
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		return c, err
	}
}

// kick wakes an Accept that waits, so that it reads the share again.
func (l *acceptSignal) kick() {
	if l.deadline != nil {
		l.deadline(time.Now())
	}
}
