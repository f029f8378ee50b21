package worker

import (
	"context"
	"crypto/tls"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
)

// h2Drainer lets a draining worker send GOAWAY to its HTTP/2 connections
// alone. http.Server.Shutdown sends GOAWAY, but it also closes idle
// HTTP/1 keep-alive connections at once, racing their clients' next
// requests — the loss a drain exists to avoid. So HTTP/2 is configured on
// a second server that never listens: the worker's server borrows its
// TLSNextProto handlers — "h2" for TLS, "unencrypted_http2" for h2c, the
// key net/http hands a plain connection to once it has read the HTTP/2
// preface — and the shadow's Shutdown, having no listener or connection of
// its own, does nothing but run HTTP/2's graceful-shutdown hook on every
// HTTP/2 connection.
//
// The hook reaches only the connections HTTP/2 has registered by then: one
// still in its TLS handshake, or between handshake and registration, is
// missed. Such a connection learns of the drain from its next answer: a
// draining worker sets "Connection: close", which HTTP/2 turns into GOAWAY
// (see Worker.wrap).
type h2Drainer struct {
	shadow *http.Server
	log    *slog.Logger
}

// splitHTTP2 moves srv's HTTP/2 onto a shadow server. It does nothing when
// srv serves no HTTP/2 (plain HTTP without unencrypted HTTP/2, or HTTP/2
// turned off), or when the user configured TLSNextProto themselves: their
// HTTP/2 then drains through "Connection: close" alone. perListener is
// Config.TLS: with it, some listeners may serve TLS and others not,
// whatever srv.TLSConfig says.
func splitHTTP2(srv *http.Server, perListener []*tls.Config, log *slog.Logger) *h2Drainer {
	if srv.TLSNextProto != nil {
		return nil
	}
	var p http.Protocols
	if srv.Protocols != nil {
		p = *srv.Protocols
	} else {
		p.SetHTTP1(true)
		p.SetHTTP2(true)
	}
	anyTLS, anyPlain := srv.TLSConfig != nil, srv.TLSConfig == nil
	if perListener != nil {
		anyTLS = slices.ContainsFunc(perListener, func(c *tls.Config) bool { return c != nil })
		anyPlain = slices.Contains(perListener, nil)
	}
	h2 := anyTLS && p.HTTP2()
	h2c := anyPlain && p.UnencryptedHTTP2()
	if !h2 && !h2c {
		return nil
	}
	shadow := &http.Server{
		HTTP2:       srv.HTTP2,
		Protocols:   srv.Protocols,
		IdleTimeout: srv.IdleTimeout,
		ReadTimeout: srv.ReadTimeout,
	}
	// Serve and ServeTLS configure HTTP/2 (both "h2" and h2c) on the
	// shadow, then return at once: its listener has nothing to accept.
	// Serve configures it only for a server without a TLSConfig.
	if h2 && srv.TLSConfig != nil {
		shadow.TLSConfig = srv.TLSConfig.Clone()
		shadow.ServeTLS(noListener{}, "", "")
	} else {
		shadow.Serve(noListener{})
	}
	if _, ok := shadow.TLSNextProto["h2"]; !ok {
		return nil // a setup error: srv's own Serve meets and reports it
	}
	srv.TLSNextProto = maps.Clone(shadow.TLSNextProto)
	return &h2Drainer{shadow: shadow, log: log}
}

// goAway tells every HTTP/2 client to finish its streams here and open new
// ones elsewhere.
func (d *h2Drainer) goAway() {
	if d != nil {
		d.shadow.Shutdown(context.Background())
		d.log.Debug("worker sent GOAWAY to its HTTP/2 connections")
	}
}

// noListener accepts nothing.
type noListener struct{}

func (noListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (noListener) Close() error              { return nil }
func (noListener) Addr() net.Addr            { return &net.TCPAddr{} }

// listenerTLS is c as a listener of the worker's server serves it: a
// copy whose ALPN offers HTTP/2 and HTTP/1.1 as the server's protocols
// allow — what ServeTLS does for the server's own TLSConfig.
func (w *Worker) listenerTLS(c *tls.Config) *tls.Config {
	c = c.Clone()
	var p http.Protocols
	if w.srv.Protocols != nil {
		p = *w.srv.Protocols
	} else {
		p.SetHTTP1(true)
	}
	if _, ok := w.srv.TLSNextProto["h2"]; !ok {
		p.SetHTTP2(false) // turned off, or not configured (GODEBUG=http2server=0)
	} else if w.srv.Protocols == nil {
		p.SetHTTP2(true)
	}
	c.NextProtos = slices.DeleteFunc(slices.Clone(c.NextProtos), func(s string) bool {
		return s == "h2" || s == "http/1.1"
	})
	if p.HTTP2() {
		c.NextProtos = append(c.NextProtos, "h2")
	}
	if p.HTTP1() {
		c.NextProtos = append(c.NextProtos, "http/1.1")
	}
	return c
}
