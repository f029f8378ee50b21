package prefork_test

import (
	"errors"
	"syscall"
	"testing"

	"github.com/gracefork/gracefork/prefork"
)

func TestBootErrorMessage(t *testing.T) {
	cases := []struct {
		err  prefork.BootError
		want string
	}{
		{prefork.BootError{Slot: 0, Attempts: 1, Exit: prefork.Exit{Code: 2}},
			"prefork: worker slot 0 failed to boot: exit status 2"},
		{prefork.BootError{Slot: 1, Attempts: 3, Exit: prefork.Exit{Code: -1, Signal: syscall.SIGKILL, Stderr: []string{"a", "b"}}, TimedOut: true},
			"prefork: worker slot 1 failed to boot 3 times in a row; last attempt: not ready within BootTimeout, killed (signal: killed); its last stderr lines:\n\ta\n\tb"},
		{prefork.BootError{Slot: 2, Attempts: 5, Spawn: errors.New("prefork: start worker /x: no such file or directory")},
			"prefork: worker slot 2 failed to boot 5 times in a row; last attempt: prefork: start worker /x: no such file or directory"},
	}
	for _, c := range cases {
		if got := c.err.Error(); got != c.want {
			t.Errorf("BootError\n%s\nwant\n%s", got, c.want)
		}
	}
}
