package sdnotify

import (
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func listen(t *testing.T) (*net.UnixConn, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, path
}

func recv(t *testing.T, c *net.UnixConn) map[string]string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(string(buf[:n]))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSendOverRealSocket(t *testing.T) {
	c, path := listen(t)
	n, err := FromEnv(func(k string) string { return map[string]string{"NOTIFY_SOCKET": path}[k] })
	if err != nil || n == nil {
		t.Fatal(n, err)
	}
	for _, msg := range []string{Ready(), ReadyAs(4242), Stopping(), Watchdog(), Reloading()} {
		if err := n.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	if m := recv(t, c); m["READY"] != "1" {
		t.Fatalf("ready: %v", m)
	}
	if m := recv(t, c); m["READY"] != "1" || m["MAINPID"] != "4242" {
		t.Fatalf("ready as: %v", m)
	}
	if m := recv(t, c); m["STOPPING"] != "1" {
		t.Fatalf("stopping: %v", m)
	}
	if m := recv(t, c); m["WATCHDOG"] != "1" {
		t.Fatalf("watchdog: %v", m)
	}
	m := recv(t, c)
	us, err := strconv.ParseInt(m["MONOTONIC_USEC"], 10, 64)
	if m["RELOADING"] != "1" || err != nil || us <= 0 {
		t.Fatalf("reloading: %v", m)
	}
}

func TestNilNotifierAndBadEnv(t *testing.T) {
	n, err := FromEnv(func(string) string { return "" })
	if n != nil || err != nil || n.Send(Ready()) != nil {
		t.Fatalf("unset NOTIFY_SOCKET: %v %v", n, err)
	}
	if _, err := FromEnv(func(string) string { return "relative.sock" }); err == nil {
		t.Fatal("relative path accepted")
	}
}

func TestWatchdogInterval(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	cases := []struct {
		env  func(string) string
		want time.Duration
		bad  bool
	}{
		{env(), 0, false},
		{env("WATCHDOG_USEC", "2000000"), time.Second, false},
		{env("WATCHDOG_USEC", "2000000", "WATCHDOG_PID", "7"), time.Second, false},
		{env("WATCHDOG_USEC", "2000000", "WATCHDOG_PID", "8"), 0, false},
		{env("WATCHDOG_USEC", "2000000", "WATCHDOG_PID", "3"), time.Second, false}, // the old master's
		{env("WATCHDOG_USEC", "soon"), 0, true},
		{env("WATCHDOG_USEC", "-1"), 0, true},
	}
	for i, c := range cases {
		got, err := WatchdogInterval(c.env, 7, 3)
		if got != c.want || (err != nil) != c.bad {
			t.Errorf("case %d: %v, %v", i, got, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("READY=1")
	f.Add("MAINPID=1\nREADY=1\n")
	f.Add("=x")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := Parse(s)
		if err == nil && len(m) == 0 {
			t.Fatalf("Parse(%q) accepted nothing", s)
		}
	})
}
