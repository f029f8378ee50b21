//go:build !unix

package signals

import (
	"syscall"
	"testing"
)

func TestDefaultOnWindows(t *testing.T) {
	m := Default()
	if len(m) != 2 || m[syscall.SIGINT] != Quit || m[syscall.SIGTERM] != Shutdown {
		t.Fatalf("Default() = %v, want INT quit and TERM shutdown", m)
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}
