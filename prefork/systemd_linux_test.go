package prefork_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefork/gracefork/internal/sdnotify"
	"github.com/gracefork/gracefork/prefork"
	"github.com/gracefork/gracefork/prefork/preforktest"
	"golang.org/x/sys/unix"
)

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
