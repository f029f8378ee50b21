//go:build unix

package worker

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"
)

// A connection whose next request waits unread in its socket — the
// server's goroutine has not run yet — is not quiet, whatever its activity
// counter says; once the request is read and answered and it is silent
// again, it closes.
func TestDrainKeepsConnectionsWithUnreadBytes(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	cli, srv := fileConn(t, fds[0]), fileConn(t, fds[1])
	defer cli.Close()
	var tr connTracker
	tc := tr.add(srv)
	defer tc.Close()
	tr.track(tc, http.StateIdle)
	t0 := time.Now()
	tr.closeIdle(t0, testIdle, testIdle)
	// On a unix socket the bytes are in the peer's buffer when Write returns.
	if _, err := io.WriteString(cli, "GET / HTTP/1.1\r\n"); err != nil {
		t.Fatal(err)
	}
	if n := tr.closeIdle(t0.Add(testIdle), testIdle, testIdle); n != 1 || tc.closed.Load() {
		t.Fatal("a connection with a request waiting unread was closed as idle")
	}
	if _, err := io.ReadFull(tc, make([]byte, 16)); err != nil {
		t.Fatal(err)
	}
	tr.closeIdle(t0.Add(2*testIdle), testIdle, testIdle)
	if n := tr.closeIdle(t0.Add(3*testIdle), testIdle, testIdle); n != 0 || !tc.closed.Load() {
		t.Fatalf("%d open once silent again, want 0", n)
	}
}

func fileConn(t *testing.T, fd int) net.Conn {
	f := os.NewFile(uintptr(fd), "socketpair")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A drain closes the listeners before any client is told to reconnect:
// when OnDrain runs (the drain's first sign), a dial is refused already.
func TestDrainClosesListenersBeforeTellingClients(t *testing.T) {
	refused := make(chan bool, 1)
	var w *Worker
	w = start(t, Config{Handler: http.NotFoundHandler(), OnDrain: func() {
		c, err := net.Dial("tcp", w.Addrs()[0].String())
		if err == nil {
			c.Close()
		}
		refused <- errors.Is(err, syscall.ECONNREFUSED)
	}})
	go w.Drain(context.Background())
	if !<-refused {
		t.Fatal("the listener still accepted when the drain began telling clients to reconnect")
	}
}
