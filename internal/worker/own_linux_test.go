package worker

import (
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/gracefork/gracefork/internal/sockets"
)

// startOwn serves on one per-slot socket, marked as the worker's own or
// not.
func startOwn(t *testing.T, own bool) (*Worker, *net.TCPListener) {
	t.Helper()
	// Bound to a port named, as the master binds its slot sockets: one
	// bound to port 0 would get another port when it listens again.
	tmp, err := sockets.ListenReusePort("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := sockets.ListenReusePort(tmp.Addr().String())
	tmp.Close()
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(Config{Listeners: []net.Listener{ln}, Own: []bool{own}, Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})})
	if err != nil {
		t.Fatal(err)
	}
	w.Start()
	t.Cleanup(func() { w.Quit(); w.Wait() })
	<-w.Ready()
	if l := w.lns[0].(*acceptSignal); (l.hold == nil) != own {
		t.Fatalf("holds back before Accept on an own socket: %v", own)
	}
	return w, ln.(*net.TCPListener)
}

// waitPaused waits until Accept has found the socket paused.
func waitPaused(t *testing.T, w *Worker) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for w.lns[0].(*acceptSignal).paused.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Accept never saw the paused socket")
		}
		runtime.Gosched()
	}
}

// A socket of the worker's own that the master pauses is not a failure:
// Accept waits, and serves again once the socket listens again.
func TestOwnSocketPausedAndResumed(t *testing.T) {
	w, ln := startOwn(t, true)
	if err := sockets.Pause(ln); err != nil {
		t.Fatal(err)
	}
	waitPaused(t, w)
	if err := sockets.Resume(ln); err != nil {
		t.Fatal(err)
	}
	c := dial(t, w)
	c.send(t, "/")
	if resp := c.answer(t); resp.StatusCode != 200 {
		t.Fatalf("status %d after the resume", resp.StatusCode)
	}
	select {
	case err := <-w.Failed():
		t.Fatalf("the pause failed the server: %v", err)
	default:
	}
	// Closed while paused, the listener ends its server, which has not
	// failed either: the drain closed it.
	sockets.Pause(ln)
	w.CloseListeners()
	done := make(chan struct{})
	go func() { w.Wait(); close(done) }()
	w.Quit()
	<-done
}

// A shared socket that stops listening fails its server, as before: only
// the master pauses sockets, and only a slot's own.
func TestSharedSocketStoppedFails(t *testing.T) {
	w, ln := startOwn(t, false)
	sockets.Pause(ln)
	select {
	case <-w.Failed():
	case <-time.After(10 * time.Second):
		t.Fatal("a shared socket that stopped listening did not fail its server")
	}
}
