package prefork

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
)

// h2Drainer lets a draining worker send GOAWAY to its HTTP/2 connections
// alone. http.Server.Shutdown sends GOAWAY, but it also closes idle
// HTTP/1 keep-alive connections at once, racing their clients' next
// requests — the loss a drain exists to avoid. So HTTP/2 is configured on
// a second server that never listens: the worker's server borrows its
// TLSNextProto handlers, and the shadow's Shutdown, having no listener or
// connection of its own, does nothing but run HTTP/2's graceful-shutdown
// hook on every HTTP/2 connection.
type h2Drainer struct{ shadow *http.Server }

// splitHTTP2 moves srv's HTTP/2 onto a shadow server. It does nothing for
// plain HTTP, or when the user configured TLSNextProto (or turned HTTP/2
// off) themselves.
func splitHTTP2(srv *http.Server) *h2Drainer {
	if srv.TLSConfig == nil || srv.TLSNextProto != nil || (srv.Protocols != nil && !srv.Protocols.HTTP2()) {
		return nil
	}
	shadow := &http.Server{
		TLSConfig:   srv.TLSConfig.Clone(),
		HTTP2:       srv.HTTP2,
		IdleTimeout: srv.IdleTimeout,
		ReadTimeout: srv.ReadTimeout,
	}
	// ServeTLS configures HTTP/2 on the shadow, then returns at once: its
	// listener has nothing to accept.
	shadow.ServeTLS(noListener{}, "", "")
	if _, ok := shadow.TLSNextProto["h2"]; !ok {
		return nil
	}
	srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	for proto, h := range shadow.TLSNextProto {
		srv.TLSNextProto[proto] = h
	}
	return &h2Drainer{shadow: shadow}
}

// goAway tells every HTTP/2 client to finish its streams here and open new
// ones elsewhere.
func (d *h2Drainer) goAway() {
	if d != nil {
		d.shadow.Shutdown(context.Background())
	}
}

// noListener accepts nothing.
type noListener struct{}

func (noListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (noListener) Close() error              { return nil }
func (noListener) Addr() net.Addr            { return &net.TCPAddr{} }
