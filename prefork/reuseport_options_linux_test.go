package prefork_test

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/gracefork/gracefork/prefork"
	"golang.org/x/sys/unix"
)

// Bad ReusePort input is refused by New before any process starts, and
// by Validate alike; a port in use is refused as without ReusePort,
// though SO_REUSEPORT alone would let a socket of the same user join it.
func TestNewRejectsBadReusePort(t *testing.T) {
	opts := prefork.Options{Addr: "unix:" + t.TempDir() + "/x.sock", ReusePort: true, Spawner: refuseSpawner{t}}
	_, err := prefork.New(nil, opts)
	var oe *prefork.OptionError
	if !errors.As(err, &oe) || oe.Field != "ReusePort" {
		t.Fatalf("New = %v, want an OptionError for ReusePort", err)
	}
	if verr := opts.Validate(); verr == nil || verr.Error() != err.Error() {
		t.Fatalf("Validate = %v, want New's error", verr)
	}

	// In use by a plain socket, or by one with SO_REUSEPORT (another
	// instance with ReusePort): both refused.
	for _, busy := range []net.Listener{listen(t, false), listen(t, true)} {
		_, err = prefork.New(nil, prefork.Options{Addr: busy.Addr().String(), ReusePort: true, Spawner: refuseSpawner{t}})
		if !errors.As(err, &oe) || oe.Field != "Addr" || !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("New on a port in use = %v, want an OptionError for Addr wrapping EADDRINUSE", err)
		}
	}
}

func listen(t *testing.T, reusePort bool) net.Listener {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		c.Control(func(fd uintptr) {
			if reusePort {
				err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}
		})
		return err
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}
