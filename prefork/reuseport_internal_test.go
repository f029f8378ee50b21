package prefork

import (
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/gracefork/gracefork/internal/sockets"
)

// ReusePort is refused, naming the field, where per-slot sockets cannot
// balance (wrapping errors.ErrUnsupported) and where no address would get
// one; the platform's answer is injected, so every case runs everywhere.
func TestCheckReusePort(t *testing.T) {
	unsupported := fmt.Errorf("per-slot sockets balance connections on linux only, not darwin: %w", errors.ErrUnsupported)
	parse := func(addrs ...string) *config {
		c := &config{Options: Options{Addrs: addrs, ReusePort: true}}
		if err := c.parseAddrs(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		name        string
		c           *config
		unsupported error
		want        string // "" for no error
	}{
		{"linux, tcp", parse("127.0.0.1:0", "unix:/tmp/x.sock"), nil, ""},
		{"off", &config{}, unsupported, ""},
		{"darwin", parse("127.0.0.1:0"), unsupported, "prefork: Options.ReusePort = true: per-slot sockets balance connections on linux only, not darwin: unsupported operation"},
		{"no tcp", parse("unix:/tmp/x.sock", "fd://3"), nil, "prefork: Options.ReusePort = true: no TCP address to give each worker a socket of its own: unix sockets and fd://N addresses stay shared"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.checkReusePort(tc.unsupported)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("checkReusePort = %v", err)
				}
				return
			}
			var oe *OptionError
			if !errors.As(err, &oe) || oe.Field != "ReusePort" || err.Error() != tc.want {
				t.Fatalf("checkReusePort = %v, want the OptionError %q", err, tc.want)
			}
			if got := errors.Is(err, errors.ErrUnsupported); got != (tc.unsupported != nil) {
				t.Fatalf("errors.Is(err, errors.ErrUnsupported) = %v", got)
			}
		})
	}
	// This platform's answer is the one New uses.
	if err := sockets.ReusePortSupported(); (err == nil) != (runtime.GOOS == "linux") {
		t.Fatalf("ReusePortSupported on %s = %v", runtime.GOOS, err)
	}
}
