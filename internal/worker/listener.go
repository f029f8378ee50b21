package worker

import (
	"errors"
	"net"
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
	hold    func() // called before each Accept (balance.go); nil: none
	// own: the socket is this worker's slot's alone (Config.Own), which
	// the master may pause.
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

// Accept returns the inner listener's connection unchanged. On a socket of
// the worker's own that the master paused (it no longer listens: accept
// fails with EINVAL), it waits until the socket listens again or the
// listener is closed.
func (l *acceptSignal) Accept() (net.Conn, error) {
	l.once.Do(l.onFirst)
	if l.hold != nil {
		l.hold()
	}
	for {
		c, err := l.Listener.Accept()
		if err == nil || !l.own || !errors.Is(err, syscall.EINVAL) {
			return c, err
		}
		l.paused.Add(1)
		select {
		case <-l.closed:
		case <-time.After(pausedPoll):
		}
	}
}
