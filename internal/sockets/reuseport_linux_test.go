package sockets

import (
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

func listenSlots(t *testing.T, n int) []net.Listener {
	t.Helper()
	var lns []net.Listener
	addr := "127.0.0.1:0"
	for range n {
		ln, err := ListenReusePort(addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		addr = ln.Addr().String()
		lns = append(lns, ln)
	}
	return lns
}

func conn(ln net.Listener) syscall.Conn { return ln.(*net.TCPListener) }

// Sockets bound with SO_REUSEPORT share a port; a paused one leaves the
// group (new connections go to the other), resets what it queued, and
// listens again when resumed — on the same port, since it was bound to
// one named (one bound to port 0 would get a new port).
func TestPauseAndResume(t *testing.T) {
	lns := listenSlots(t, 2)
	a, b := conn(lns[0]), conn(lns[1])
	if !ReusesPort(a) || !ReusesPort(b) {
		t.Fatal("SO_REUSEPORT not set")
	}
	var clients []net.Conn
	dial := func(n int) {
		for range n {
			c, err := net.Dial("tcp", lns[0].Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			clients = append(clients, c)
		}
	}
	dial(32)
	qa, _ := Queued(a)
	qb, err := Queued(b)
	if err != nil || qa+qb != 32 || qb == 0 {
		t.Fatalf("queued %d + %d (%v), want 32 over both", qa, qb, err)
	}
	if err := Pause(b); err != nil {
		t.Fatal(err)
	}
	if on, err := Listening(b); on || err != nil {
		t.Fatalf("paused socket listens: %v %v", on, err)
	}
	dial(16)
	if n, _ := Queued(a); n != qa+16 {
		t.Fatalf("after the pause %d queued in the other socket, want %d", n, qa+16)
	}
	// The connections b had queued were reset.
	reset := 0
	for _, c := range clients[:32] {
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && !os.IsTimeout(err) {
			reset++
		}
	}
	if reset != qb {
		t.Fatalf("%d clients reset, want the %d b had queued", reset, qb)
	}
	if err := Resume(b); err != nil {
		t.Fatal(err)
	}
	if on, _ := Listening(b); !on {
		t.Fatal("resumed socket does not listen")
	}
	if err := Resume(b); err != nil {
		t.Fatalf("Resume of a listening socket: %v", err)
	}
	before, _ := Queued(b)
	dial(32)
	if n, _ := Queued(b); n == before {
		t.Fatal("the resumed socket takes no connection")
	}
	if _, err := MigrateReq(); err != nil {
		t.Fatalf("MigrateReq: %v", err)
	}
}

// A paused slot socket passes a worker's check of its inherited listeners;
// a stream socket that never listened does not.
func TestCheckListenerTakesAPausedSlotSocket(t *testing.T) {
	lns := listenSlots(t, 2)
	b := lns[1].(*net.TCPListener)
	Pause(b)
	f, err := b.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := CheckListener(int(f.Fd())); err != nil {
		t.Fatalf("paused slot socket: %v", err)
	}
	c, err := net.Dial("tcp", lns[0].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cf, _ := c.(*net.TCPConn).File()
	defer cf.Close()
	if err := CheckListener(int(cf.Fd())); err == nil {
		t.Fatal("a connected socket passed as a listener")
	}
}
