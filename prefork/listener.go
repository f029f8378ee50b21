package prefork

import (
	"net"
	"sync"
)

// acceptSignal tells when a server has entered its accept loop.
// http.Server finishes its setup inside Serve and ServeTLS (HTTP/2
// configuration, TLS checks) and only then calls Accept: the first call
// means the server serves, and a worker may say it is ready.
type acceptSignal struct {
	net.Listener
	once      sync.Once
	accepting chan struct{} // closed at the first Accept
}

func newAcceptSignal(ln net.Listener) *acceptSignal {
	return &acceptSignal{Listener: ln, accepting: make(chan struct{})}
}

// Accept returns the inner listener's connection unchanged.
func (l *acceptSignal) Accept() (net.Conn, error) {
	l.once.Do(func() { close(l.accepting) })
	return l.Listener.Accept()
}
