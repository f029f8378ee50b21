package prefork

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNotMaster is returned by the master-only methods of a [Server] in a
// worker process: the master is another process, driven by signals.
var ErrNotMaster = errors.New("prefork: this process is a worker; only the master reloads, upgrades and scales")

// ErrServerClosed is returned by [Server.Run] after Close or Shutdown
// released a Server that never ran, and by the actions asked of a master
// that is stopping or has stopped.
var ErrServerClosed = errors.New("prefork: server closed")

// ErrUpgradeRefused is wrapped by the error [Server.Upgrade] returns when
// an upgrade cannot start now; the error says why (one in progress, the
// workers not all ready yet, the previous master still there, PID 1).
var ErrUpgradeRefused = errors.New("prefork: upgrade refused")

// ErrUnsupported says the multi-process mode is not available on this
// platform: Windows, where processes inherit no descriptors by number and
// receive no unix signals. [New] does not return it: it serves in
// single-process mode there. It wraps [errors.ErrUnsupported].
var ErrUnsupported = fmt.Errorf("prefork: multi-process mode is not available on this platform (%w)", errors.ErrUnsupported)

// OptionError reports an invalid field of [Options], before any socket is
// bound or process started.
type OptionError struct {
	Field  string // e.g. "Workers" or "Addrs[1]"
	Value  any    // the value given; Error writes it as a person would ("-1s")
	Reason string // why it cannot work
	Err    error  // the cause, when there is one (a failed bind)

	env bool // Field names an environment variable, not an Options field
}

// Error names the field, the value as it would be written in Go (a
// duration as "-1s", a string quoted, a signal map as
// "{SIGKILL: shutdown}") and what is wrong with it.
func (e *OptionError) Error() string {
	if e.env {
		return fmt.Sprintf("prefork: environment %s=%s: %s", e.Field, formatValue(e.Value), e.Reason)
	}
	return fmt.Sprintf("prefork: Options.%s = %s: %s", e.Field, formatValue(e.Value), e.Reason)
}

// phrase is an OptionError value that describes rather than quotes.
type phrase string

func formatValue(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("%q", v)
	case phrase:
		return string(v)
	case fmt.Stringer: // time.Duration, signals.Map
		return v.String()
	}
	return fmt.Sprint(v)
}

// Unwrap returns the cause, such as syscall.EADDRINUSE for a failed bind.
func (e *OptionError) Unwrap() error { return e.Err }

// BootError is returned by Run when a slot's workers failed to boot
// MaxBootFailures times in a row — each exited before it was ready, or was
// not ready within BootTimeout — and no worker could serve instead: at
// start, before the first "serving", or when every slot fails.
type BootError struct {
	Slot     int // the slot whose workers failed
	Attempts int // boots tried in a row, MaxBootFailures when Run gave up
	// Exit is how the last attempt ended; its Stderr holds the lines it
	// wrote last.
	Exit     Exit
	TimedOut bool  // the last attempt was killed at BootTimeout
	Spawn    error // the Spawner failed, instead of a process exiting
}

// Error quotes the last attempt's exit status, the error it reported
// (Exit.Failure: a failed WorkerInit, say), and its stderr.
func (e *BootError) Error() string {
	var b strings.Builder
	if e.Attempts == 1 {
		fmt.Fprintf(&b, "prefork: worker slot %d failed to boot: ", e.Slot)
	} else {
		fmt.Fprintf(&b, "prefork: worker slot %d failed to boot %d times in a row; last attempt: ", e.Slot, e.Attempts)
	}
	switch {
	case e.Spawn != nil:
		b.WriteString(e.Spawn.Error())
	case e.TimedOut:
		fmt.Fprintf(&b, "not ready within BootTimeout, killed (%v)", e.Exit)
	default:
		b.WriteString(e.Exit.String())
	}
	if e.Exit.Failure != "" {
		b.WriteString(": ")
		b.WriteString(e.Exit.Failure)
	}
	if len(e.Exit.Stderr) > 0 {
		b.WriteString("; its last stderr lines:\n\t")
		b.WriteString(strings.Join(e.Exit.Stderr, "\n\t"))
	}
	return b.String()
}

// Unwrap returns the Spawner's error, when starting the process failed.
func (e *BootError) Unwrap() error { return e.Spawn }
