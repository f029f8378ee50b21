package worker

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// trackedListener wraps every connection it accepts, so that the drain can
// see which connections are still receiving and which were closed, hijacked
// ones included.
type trackedListener struct {
	net.Listener
	t *connTracker
}

func (l *trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.t.add(c), nil
}

// trackedConn is an accepted connection as the worker serves it. Reads and
// state changes bump a counter; the drain compares it between ticks, so the
// per-request cost is a few atomic operations and no clock.
//
// Handlers that need the socket itself (after Hijack, or in ConnContext)
// get it from NetConn, as from a *tls.Conn.
type trackedConn struct {
	net.Conn
	t        *connTracker
	activity atomic.Uint64
	state    atomic.Int32 // an http.ConnState
	closed   atomic.Bool

	// Used by the drain only, under t.mu.
	seen  uint64
	quiet time.Time
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.activity.Add(1)
	}
	return n, err
}

func (c *trackedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.t.remove(c)
	}
	return c.Conn.Close()
}

// NetConn returns the connection the listener accepted.
func (c *trackedConn) NetConn() net.Conn { return c.Conn }

// ReadFrom keeps sendfile and splice for responses: net/http uses them
// only when the connection is an io.ReaderFrom.
func (c *trackedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

// WriteTo keeps splice for hijacked connections copied elsewhere.
func (c *trackedConn) WriteTo(w io.Writer) (int64, error) {
	if wt, ok := c.Conn.(io.WriterTo); ok {
		n, err := wt.WriteTo(w)
		if n > 0 {
			c.activity.Add(1)
		}
		return n, err
	}
	return io.Copy(w, readerOnly{c})
}

// CloseWrite lets net/http half-close a connection before closing it, so a
// client still sending a body gets the answer rather than a reset.
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// SyscallConn gives handlers the socket's descriptor, as *net.TCPConn does.
func (c *trackedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

type writerOnly struct{ io.Writer }
type readerOnly struct{ io.Reader }

// connTracker follows the worker's connections from accept to close.
type connTracker struct {
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

// listener wraps ln so that its connections are tracked.
func (t *connTracker) listener(ln net.Listener) net.Listener {
	return &trackedListener{Listener: ln, t: t}
}

func (t *connTracker) add(c net.Conn) *trackedConn {
	tc := &trackedConn{Conn: c, t: t}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns == nil {
		t.conns = make(map[*trackedConn]struct{})
	}
	t.conns[tc] = struct{}{}
	return tc
}

func (t *connTracker) remove(c *trackedConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, c)
}

// track records a state change that http.Server reports. It counts as
// activity: a connection that just became idle starts its quiet time now.
// The drain's clock for a connection starts at the first tick that sees it
// quiet.
func (t *connTracker) track(c net.Conn, s http.ConnState) {
	tc := tracked(c)
	if tc == nil {
		return // not accepted through a tracked listener
	}
	tc.state.Store(int32(s))
	tc.activity.Add(1)
}

// tracked finds the trackedConn under c: c itself, or the connection a
// *tls.Conn (or any wrapper with NetConn) runs on.
func tracked(c net.Conn) *trackedConn {
	for {
		switch x := c.(type) {
		case *trackedConn:
			return x
		case *tls.Conn:
			c = x.NetConn()
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return nil
		}
	}
}

func (t *connTracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// closeIdle closes connections that wait for a request and have received
// nothing and changed state for a while — idle between requests for idle,
// new (no request yet) for fresh — and returns how many connections
// remain open, hijacked ones included. now is the time of this tick: a
// connection's quiet time counts from the first tick that sees its
// activity counter unchanged.
//
// A connection with bytes waiting in its socket is not quiet, whatever its
// counter says: its request has arrived and the server's goroutine has not
// read it yet (not scheduled, on a loaded machine). Closing it would lose
// that request.
func (t *connTracker) closeIdle(now time.Time, idle, fresh time.Duration) int {
	var quiet []*trackedConn
	t.mu.Lock()
	for c := range t.conns {
		if a := c.activity.Load(); a != c.seen || c.quiet.IsZero() {
			c.seen, c.quiet = a, now
		}
		wait := idle
		s := http.ConnState(c.state.Load())
		if s == http.StateNew {
			wait = max(idle, fresh)
		}
		if (s == http.StateIdle || s == http.StateNew) && now.Sub(c.quiet) >= wait {
			if c.pending() {
				c.quiet = now
				continue
			}
			quiet = append(quiet, c)
			delete(t.conns, c)
		}
	}
	n := len(t.conns)
	t.mu.Unlock()
	for _, c := range quiet {
		c.closeQuiet()
	}
	return n
}

// closeQuiet closes a connection nobody uses without blocking the drain:
// it closes the socket itself, not the *tls.Conn over it, whose Close
// first writes close_notify and waits up to 5 s when the client does not
// read. The server's goroutine for the connection then fails its read and
// cleans up.
func (c *trackedConn) closeQuiet() { c.Close() }
