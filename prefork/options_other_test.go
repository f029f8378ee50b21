//go:build !linux

package prefork_test

import (
	"errors"
	"testing"

	"github.com/gracefork/gracefork/prefork"
	"github.com/gracefork/gracefork/recycle"
)

// Where a worker cannot read its resident set size, MaxMemory is refused
// rather than never acted on.
func TestMaxMemoryUnsupported(t *testing.T) {
	_, err := prefork.New(nil, prefork.Options{Addr: "127.0.0.1:0", Recycle: recycle.Policy{MaxMemory: 1 << 30}, Spawner: refuseSpawner{t}})
	var oe *prefork.OptionError
	if !errors.As(err, &oe) || oe.Field != "Recycle.MaxMemory" || !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("New = %v, want an OptionError for Recycle.MaxMemory wrapping errors.ErrUnsupported", err)
	}
}

// ReusePort is Linux's: elsewhere New refuses it before binding anything.
func TestReusePortUnsupported(t *testing.T) {
	_, err := prefork.New(nil, prefork.Options{Addr: "127.0.0.1:0", ReusePort: true, Spawner: refuseSpawner{t}})
	var oe *prefork.OptionError
	if !errors.As(err, &oe) || oe.Field != "ReusePort" || !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("New = %v, want an OptionError for ReusePort wrapping errors.ErrUnsupported", err)
	}
}
