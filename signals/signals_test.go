package signals

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

func TestValidateRejects(t *testing.T) {
	cases := []struct {
		name string
		m    Map
		want string
	}{
		{"kill", Map{syscall.SIGTERM: Shutdown, syscall.SIGKILL: Reload}, "signals: SIGKILL cannot be caught, so it cannot mean reload"},
		{"unknown", Map{syscall.SIGTERM: Shutdown, syscall.SIGHUP: 42}, "signals: SIGHUP maps to unknown action(42)"},
		{"zero", Map{syscall.SIGTERM: Shutdown, syscall.SIGHUP: 0}, "signals: SIGHUP maps to unknown action(0)"},
		{"unnamed", Map{syscall.SIGTERM: Shutdown, syscall.Signal(40): 0}, "signals: signal 40 maps to unknown action(0)"},
		{"described", Map{syscall.SIGTERM: Shutdown, syscall.SIGSEGV: 0}, "signals: signal 11 (segmentation fault) maps to unknown action(0)"},
		{"no way out", Map{syscall.SIGHUP: Reload}, ErrNoShutdown.Error()},
		{"empty", Map{}, ErrNoShutdown.Error()},
	}
	for _, c := range cases {
		err := c.m.Validate()
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: Validate() = %v, want %q", c.name, err, c.want)
		}
	}
	if err := (Map{syscall.SIGHUP: Reload}).Validate(); !errors.Is(err, ErrNoShutdown) {
		t.Errorf("Validate() = %v, want ErrNoShutdown", err)
	}
}

func TestRemapHUPToUpgrade(t *testing.T) {
	m := Default()
	m[syscall.SIGHUP] = Upgrade
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestParseAction(t *testing.T) {
	for a := Reload; a <= RemoveWorker; a++ {
		got, err := ParseAction(a.String())
		if err != nil || got != a {
			t.Errorf("ParseAction(%q) = %v, %v; want %v", a.String(), got, err, a)
		}
	}
	if _, err := ParseAction("restart"); err == nil || !strings.Contains(err.Error(), `"restart"`) {
		t.Errorf("ParseAction(restart) = %v, want an error naming it", err)
	}
}

func TestSignalsStableOrder(t *testing.T) {
	a, b := Default().Signals(), Default().Signals()
	if len(a) != 9 {
		t.Fatalf("Signals() has %d, want 9", len(a))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("order differs at %d: %v vs %v", i, a[i], b[i])
		}
	}
}

func TestMapString(t *testing.T) {
	cases := map[string]Map{
		"{}":                                   {},
		"{SIGKILL: shutdown}":                  {syscall.SIGKILL: Shutdown},
		"{SIGHUP: upgrade, SIGTERM: shutdown}": {syscall.SIGHUP: Upgrade, syscall.SIGTERM: Shutdown},
	}
	for want, m := range cases {
		if got := m.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", m, got, want)
		}
	}
}
