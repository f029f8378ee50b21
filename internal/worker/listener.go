package worker

import (
	"net"
	"sync"
)

// acceptSignal tells when a server has entered its accept loop.
// http.Server finishes its setup inside Serve and ServeTLS (HTTP/2
// configuration, TLS checks) and only then calls Accept: the first call
// means the server serves.
type acceptSignal struct {
	net.Listener
	once    sync.Once
	onFirst func() // called once, at the first Accept
	hold    func() // called before each Accept (balance.go); nil: none

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

// Accept returns the inner listener's connection unchanged.
func (l *acceptSignal) Accept() (net.Conn, error) {
	l.once.Do(l.onFirst)
	if l.hold != nil {
		l.hold()
	}
	return l.Listener.Accept()
}
