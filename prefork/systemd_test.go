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
	"github.com/gracefork/gracefork/prefork"
	"github.com/gracefork/gracefork/prefork/preforktest"
	"golang.org/x/sys/unix"
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

// passCred makes every datagram carry its sender's credentials, as
// systemd's notify socket does.
func (n *notifySocket) passCred() {
	n.t.Helper()
	rc, err := n.conn.SyscallConn()
	if err != nil {
		n.t.Fatal(err)
	}
	rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) })
	if err != nil {
		n.t.Fatal(err)
	}
}

// sent is a message with the pid of its sender.
type sent struct {
	m    map[string]string
	from int
}

// collect reads every message from now on, with its sender's pid, into
// the channel, so that senders never find the socket's queue full while the
// test looks elsewhere. It ends when the socket is closed at cleanup.
func (n *notifySocket) collect() <-chan sent {
	out := make(chan sent, 1<<16)
	go func() {
		buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(unix.SizeofUcred))
		for {
			k, oobn, _, _, err := n.conn.ReadMsgUnix(buf, oob)
			if err != nil {
				close(out)
				return
			}
			m, _ := sdnotify.Parse(string(buf[:k]))
			msg := sent{m: m}
			if cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil && len(cmsgs) == 1 {
				if cred, err := unix.ParseUnixCredentials(&cmsgs[0]); err == nil {
					msg.from = int(cred.Pid)
				}
			}
			out <- msg
		}
	}()
	return out
}

// mark puts a message of the test's own in the queue: whatever comes after
// it was sent after this call.
func (n *notifySocket) mark() {
	n.t.Helper()
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		n.t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("TEST_MARK=1")); err != nil {
		n.t.Fatal(err)
	}
}

// pings reads until count WATCHDOG=1 pings came from pid after the mark;
// a ping from quiet after the mark fails the test.
func pings(t *testing.T, msgs <-chan sent, count, pid, quiet int) {
	t.Helper()
	marked := false
	var seen []string
	deadline := time.After(preforktest.Patience)
	for count > 0 {
		var msg sent
		select {
		case msg = <-msgs:
		case <-deadline:
			t.Fatalf("no WATCHDOG=1 from %d within %v; saw %v", pid, preforktest.Patience, seen)
		}
		seen = append(seen, fmt.Sprint(msg.from, msg.m))
		switch {
		case msg.m["TEST_MARK"] == "1":
			marked = true
		case !marked || msg.m["WATCHDOG"] != "1":
		case msg.from == quiet:
			t.Fatalf("WATCHDOG=1 from %d, which has handed over; saw %v", quiet, seen)
		case msg.from == pid:
			count--
		}
	}
}

// Under systemd's watchdog (WatchdogSec= sets WATCHDOG_USEC, and
// WATCHDOG_PID to the main pid), the pings follow the main pid through
// three upgrades: each new master pings, and its predecessor stops as soon
// as it has handed over, though it still drains a request.
func TestE2EWatchdogFollowsUpgrades(t *testing.T) {
	ns := listenNotify(t)
	ns.passCred()
	msgs := ns.collect()
	p := startMasterCmd(t, func(c *exec.Cmd) {
		c.Args = append([]string{"/bin/sh", "-c", `WATCHDOG_PID=$$ exec "$0" "$@"`}, c.Args...)
		c.Path = "/bin/sh"
	}, "TEST_WORKERS=1", "NOTIFY_SOCKET="+ns.path, "WATCHDOG_USEC=200000")
	var at int
	url := "http://" + p.addr(&at) + "/slow"
	master := p.cmd.Process.Pid
	p.waitLog(&at, "serving", map[string]any{"pid": master})
	ns.mark()
	pings(t, msgs, 1, master, 0)
	for range 3 {
		round := at
		slow := startSlow(t, url) // holds the old master in its drain
		started := p.waitLog(&at, "slow request started", nil)
		fds := pidfds(t, map[int]int{0: master})
		syscall.Kill(master, syscall.SIGUSR2)
		next := p.upgraded(&at, master)
		ns.mark()
		pings(t, msgs, 3, next, master)
		for _, w := range prefork.ChildPids(next) {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", w))
			if env := "\x00" + string(b); strings.Contains(env, "\x00WATCHDOG_") || strings.Contains(env, "\x00NOTIFY_SOCKET=") {
				t.Fatalf("worker %d inherited systemd's variables: %q", w, b)
			}
		}
		slow.finish(t, started["pid"])
		waitGone(t, fds)
		p.waitLog(&round, "previous master gone", map[string]any{"pid": next})
		master = next
	}
	fds := pidfds(t, map[int]int{0: master})
	syscall.Kill(master, syscall.SIGTERM)
	waitGone(t, fds)
}
