package worker

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// pausedPoll is how often Accept looks whether a paused socket listens
// again. Connections queue meanwhile: they wait, they are not lost.
const pausedPoll = 20 * time.Millisecond

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
	// own: the socket is this worker's slot's alone (Config.Own): no
	// holding back, and the master may pause it.
	own bool

	closeOnce sync.Once
	closeErr  error
	closed    chan struct{} // closed by Close
	paused    atomic.Int32  // how often Accept found the socket paused (tests)
}

// Close closes the listener once: CloseListeners closes it at drain
// start, and http.Server.Shutdown, which closes it again, must not fail on
// an idle worker whose Serve has not yet seen the first close.
func (l *acceptSignal) Close() error {
	l.closeOnce.Do(func() {
		close(l.closed)
		l.closeErr = l.Listener.Close()
	})
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
	if l.own {
		return l.acceptOwn()
	}
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

// acceptOwn accepts on a socket of the worker's own, without holding
// back: no other worker serves its queue. When the master has paused it
// (it no longer listens: accept fails with EINVAL), it waits until the
// socket listens again or the listener is closed.
func (l *acceptSignal) acceptOwn() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err == nil || !errors.Is(err, syscall.EINVAL) {
			return c, err
		}
		l.paused.Add(1)
		select {
		case <-l.closed:
		case <-time.After(pausedPoll):
		}
	}
}

// kick wakes an Accept that waits, so that it reads the share again.
func (l *acceptSignal) kick() {
	if l.deadline != nil {
		l.deadline(time.Now())
	}
}
