package prefork

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os/user"
	"runtime"
	"strconv"

	"github.com/gracefork/gracefork/internal/sockets"
)

// Listener is an address with settings of its own, for
// [Options.Listeners]: TLS on one address and not another, a unix socket
// with a file mode and an owner for a sidecar or a front proxy.
type Listener struct {
	// Addr is written as Options.Addr is: "host:port", "unix:/path", or
	// "fd://N" for a listening socket the parent process passed as
	// descriptor N.
	Addr string
	// TLSConfig, if set, makes this address serve TLS with it (set
	// Certificates, GetCertificate or GetConfigForClient); HTTP/2 is
	// offered as Options.Server's protocols allow, and a configuration
	// HTTP/2 rejects (a TLS 1.2 cipher list without one it requires) is
	// refused by New. Nil serves plain HTTP
	// here, whatever Options.Server.TLSConfig says: that one applies to
	// Addr and Addrs only.
	TLSConfig *tls.Config
	// Mode is the permission bits of a unix socket's file (0o660, say),
	// set as the socket is bound: no client can connect while its mode
	// is wider (the process's umask is narrowed for the bind). 0 leaves
	// what the umask gives. Unix sockets only.
	Mode fs.FileMode
	// Owner and Group, if set, become the unix socket's owner and group:
	// a name ("www-data") or a number ("33"). Changing the owner usually
	// needs root. Unix sockets only.
	Owner, Group string
}

// parseListeners checks Options.Listeners and adds them to the addresses,
// after Addr and Addrs; c.tls and c.perms get an entry for every address.
func (c *config) parseListeners() error {
	var serverTLS *tls.Config
	if c.Server != nil {
		serverTLS = c.Server.TLSConfig
	}
	for range c.addrs {
		c.tls = append(c.tls, serverTLS)
		c.perms = append(c.perms, sockets.NoPerm)
	}
	for i, l := range c.Listeners {
		field := fmt.Sprintf("Listeners[%d]", i)
		if err := c.addAddr(field+".Addr", l.Addr); err != nil {
			return err
		}
		if err := checkTLS(field+".TLSConfig", l.TLSConfig); err != nil {
			return err
		}
		if err := checkHTTP2(field+".TLSConfig", l.TLSConfig, c.Server); err != nil {
			return err
		}
		p, err := l.perm(field, c.addrs[len(c.addrs)-1])
		if err != nil {
			return err
		}
		c.tls = append(c.tls, l.TLSConfig)
		c.perms = append(c.perms, p)
	}
	return nil
}

// checkTLS refuses a tls.Config a worker could not serve with.
func checkTLS(field string, t *tls.Config) error {
	if t != nil && len(t.Certificates) == 0 && t.GetCertificate == nil && t.GetConfigForClient == nil {
		return &OptionError{Field: field, Value: phrase("a tls.Config without a certificate"), Reason: "set Certificates, GetCertificate or GetConfigForClient: a worker cannot serve TLS without one"}
	}
	return nil
}

// checkHTTP2 refuses a listener's own TLS configuration that net/http's
// HTTP/2 rejects (a TLS 1.2 cipher list without one HTTP/2 requires), as
// ServeTLS refuses the server's own in the worker — here, before any
// process starts. srv's protocols apply: without HTTP/2 nothing is
// checked.
func checkHTTP2(field string, t *tls.Config, srv *http.Server) error {
	if t == nil {
		return nil
	}
	probe := &http.Server{TLSConfig: t.Clone()}
	if srv != nil {
		probe.Protocols, probe.TLSNextProto = srv.Protocols, srv.TLSNextProto
	}
	// ServeTLS sets HTTP/2 up, then serves a listener that accepts
	// nothing: any other error is the set-up's.
	if err := probe.ServeTLS(noAccept{}, "", ""); !errors.Is(err, errNoAccept) {
		return &OptionError{Field: field, Value: phrase("a tls.Config HTTP/2 rejects"), Reason: err.Error()}
	}
	return nil
}

// noAccept is a listener whose Accept fails at once.
type noAccept struct{}

var errNoAccept = errors.New("no accept")

func (noAccept) Accept() (net.Conn, error) { return nil, errNoAccept }
func (noAccept) Close() error              { return nil }
func (noAccept) Addr() net.Addr            { return &net.TCPAddr{} }

// perm checks the unix socket settings of l, bound at a, and resolves its
// owner and group.
func (l Listener) perm(field string, a sockets.Addr) (sockets.Perm, error) {
	p := sockets.NoPerm
	if l.Mode == 0 && l.Owner == "" && l.Group == "" {
		return p, nil
	}
	name, value := field+".Mode", any(phrase(fmt.Sprintf("%#o", l.Mode)))
	if l.Mode == 0 {
		name, value = field+".Owner", any(l.Owner)
		if l.Owner == "" {
			name, value = field+".Group", any(l.Group)
		}
	}
	switch {
	case runtime.GOOS == "windows":
		return p, &OptionError{Field: name, Value: value, Reason: "unsupported on windows: a unix socket's mode and owner are set on unix only", Err: errors.ErrUnsupported}
	case a.Network != "unix":
		return p, &OptionError{Field: name, Value: value, Reason: fmt.Sprintf("only a unix: address has a file mode and an owner, not %s", a)}
	case l.Mode&^fs.ModePerm != 0:
		return p, &OptionError{Field: name, Value: value, Reason: "only permission bits (0o777 at most) can be set"}
	}
	p.Mode = l.Mode
	var err error
	if p.UID, err = lookupID(l.Owner, lookupUser); err != nil {
		return p, &OptionError{Field: field + ".Owner", Value: l.Owner, Reason: err.Error()}
	}
	if p.GID, err = lookupID(l.Group, lookupGroup); err != nil {
		return p, &OptionError{Field: field + ".Group", Value: l.Group, Reason: err.Error()}
	}
	return p, nil
}

// lookupID resolves a user or group written as a name or a number; ""
// is -1, unchanged.
func lookupID(s string, lookup func(string) (string, error)) (int, error) {
	if s == "" {
		return -1, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 {
			return 0, errors.New("not a user or group number")
		}
		return n, nil
	}
	id, err := lookup(s)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(id)
}

func lookupUser(name string) (string, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return "", errors.New("no such user")
	}
	return u.Uid, nil
}

func lookupGroup(name string) (string, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return "", errors.New("no such group")
	}
	return g.Gid, nil
}
