// Package sdnotify speaks systemd's notification protocol (sd_notify(3))
// without cgo: datagrams of "KEY=value" lines to the unix socket named by
// NOTIFY_SOCKET.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Notifier sends state changes to the service manager. A nil Notifier, for
// a process not started by systemd, sends nothing.
type Notifier struct {
	addr *net.UnixAddr
}

// FromEnv returns a Notifier for NOTIFY_SOCKET, or nil when it is unset.
// A leading "@" names a socket in the abstract namespace.
func FromEnv(getenv func(string) string) (*Notifier, error) {
	path := getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil, nil
	}
	if path[0] != '/' && path[0] != '@' {
		return nil, fmt.Errorf("sdnotify: NOTIFY_SOCKET=%q is neither a path nor an abstract socket", path)
	}
	return &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}, nil
}

// Send sends one state message, such as "READY=1".
func (n *Notifier) Send(state string) error {
	if n == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(time.Second))
	_, err = c.Write([]byte(state))
	return err
}

// Ready is the message for a service that serves.
func Ready() string { return "READY=1" }

// ReadyAs is the message of a new main process after an upgrade.
func ReadyAs(pid int) string { return "MAINPID=" + strconv.Itoa(pid) + "\nREADY=1" }

// Stopping is the message for a service that shuts down.
func Stopping() string { return "STOPPING=1" }

// Status is a free-form line for `systemctl status`. Newlines, which
// would start another KEY=value, become spaces.
func Status(s string) string {
	return "STATUS=" + strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

// Watchdog is the keep-alive ping.
func Watchdog() string { return "WATCHDOG=1" }

// Reloading is the message that starts a reload, stamped with
// CLOCK_MONOTONIC as Type=notify-reload requires.
func Reloading() string {
	return "RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(monotonicUsec(), 10)
}

// WatchdogInterval returns how often to ping when systemd's watchdog is on
// for this process: half of WATCHDOG_USEC, as sd_watchdog_enabled(3)
// advises; zero when it is off. WATCHDOG_PID, when set, names the process
// the watchdog is meant for (sd_watchdog_enabled(3): another pid means
// off); pids are the ones that count as this process — its own, and for a
// new master started by a binary upgrade, the old master it takes over from
// (it inherited the old master's environment, and becomes the main pid
// with MAINPID=).
func WatchdogInterval(getenv func(string) string, pids ...int) (time.Duration, error) {
	v := getenv("WATCHDOG_USEC")
	if v == "" {
		return 0, nil
	}
	if p := getenv("WATCHDOG_PID"); p != "" && !slices.ContainsFunc(pids, func(pid int) bool { return p == strconv.Itoa(pid) }) {
		return 0, nil
	}
	us, err := strconv.ParseInt(v, 10, 64)
	if err != nil || us <= 0 {
		return 0, fmt.Errorf("sdnotify: WATCHDOG_USEC=%q is not a positive number", v)
	}
	return time.Duration(us) * time.Microsecond / 2, nil
}

// Parse reads a message into its fields, for tests and for tools that
// listen like systemd does.
func Parse(msg string) (map[string]string, error) {
	out := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSuffix(msg, "\n"), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			return nil, errors.New("sdnotify: malformed line " + strconv.Quote(line))
		}
		out[k] = v
	}
	return out, nil
}
