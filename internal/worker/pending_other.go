//go:build !unix

package worker

// pending reports whether bytes wait unread in the connection's socket;
// where the worker cannot peek, it reports none, and a drain relies on the
// connection's activity counter alone.
func (c *trackedConn) pending() bool { return false }
