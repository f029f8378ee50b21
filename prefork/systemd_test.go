//go:build unix

package prefork_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefork/gracefork/internal/sdnotify"
	"github.com/gracefork/gracefork/prefork/preforktest"
)

// notifySocket listens like systemd does for sd_notify messages.
type notifySocket struct {
	t    *testing.T
	conn *net.UnixConn
	path string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &notifySocket{t: t, conn: c, path: path}
}

// next returns the next message that has the key.
func (n *notifySocket) next(key string) map[string]string {
	n.t.Helper()
	buf := make([]byte, 4096)
	n.conn.SetReadDeadline(time.Now().Add(preforktest.Patience))
	for {
		k, err := n.conn.Read(buf)
		if err != nil {
			n.t.Fatalf("no %s message: %v", key, err)
		}
		m, err := sdnotify.Parse(string(buf[:k]))
		if err != nil {
			n.t.Fatal(err)
		}
		if _, ok := m[key]; ok {
			return m
		}
	}
}

// What systemd sees through a service's life: READY once the workers
// serve, RELOADING (with MONOTONIC_USEC) and READY around a reload,
// MAINPID with READY from the new master after an upgrade, watchdog pings,
// STOPPING at the end.
func TestE2ESystemdNotify(t *testing.T) {
	ns := listenNotify(t)
	p := startMaster(t, "TEST_WORKERS=2", "NOTIFY_SOCKET="+ns.path, "WATCHDOG_USEC=400000")
	var at int
	p.addr(&at)
	if m := ns.next("READY"); m["READY"] != "1" || m["MAINPID"] != "" {
		t.Fatalf("first READY: %v", m)
	}
	p.waitLog(&at, "serving", nil)
	ns.next("WATCHDOG")

	p.signal(syscall.SIGHUP)
	if m := ns.next("RELOADING"); m["MONOTONIC_USEC"] == "" {
		t.Fatalf("RELOADING without MONOTONIC_USEC: %v", m)
	}
	ns.next("READY")
	p.waitLog(&at, "reload done", nil)

	old := p.cmd.Process.Pid
	syscall.Kill(old, syscall.SIGUSR2)
	m := ns.next("MAINPID")
	next := p.upgraded(&at, old)
	if m["MAINPID"] != fmt.Sprint(next) || m["READY"] != "1" {
		t.Fatalf("after the upgrade: %v, want MAINPID=%d with READY=1", m, next)
	}
	fds := pidfds(t, map[int]int{0: next})
	syscall.Kill(next, syscall.SIGTERM)
	ns.next("STOPPING")
	waitGone(t, fds)
}

// Socket activation: a listening socket passed as fd 3 with LISTEN_FDS=1
// and LISTEN_PID is used instead of binding, and it serves.
func TestE2ESocketActivation(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	addr := ln.Addr().String()
	ln.Close() // the socket lives on in lf, as in systemd
	p := startMasterCmd(t, func(c *exec.Cmd) {
		// LISTEN_PID must be the master's own pid, known only after fork:
		// a shell sets it and execs, keeping its pid, as systemd does.
		c.Args = append([]string{"/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`}, c.Args...)
		c.Path = "/bin/sh"
		c.ExtraFiles = []*os.File{lf}
	}, "TEST_WORKERS=1", "TEST_ADDR="+addr, "LISTEN_FDS=1", "LISTEN_FDNAMES=web")
	var at int
	rec := p.waitLog(&at, "listening", nil)
	if rec["addr"] != addr || rec["from"] != "activated" {
		t.Fatalf("listening %v, want %s from activation", rec, addr)
	}
	p.ready(&at, 1)
	if body := get(t, newClient(), "http://"+addr+"/"); !strings.Contains(body, "worker=0") {
		t.Fatalf("answer %q", body)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
