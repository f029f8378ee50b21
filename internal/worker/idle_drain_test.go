package worker

import (
	"context"
	"net"
	"testing"
	"time"
)

// lateListener returns Accept's error a little late, as a Serve goroutine
// not yet scheduled (a worker has GOMAXPROCS=1 when Workers == NumCPU) does.
type lateListener struct{ net.Listener }

func (l lateListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		time.Sleep(50 * time.Millisecond)
	}
	return c, err
}

// A drain of an idle worker has nothing to wait for: it must return nil
// and not log "worker drain cut short".
func TestIdleDrainSucceeds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(Config{Listeners: []net.Listener{lateListener{ln}}, Handler: newGated(), DrainIdle: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w.Start()
	defer func() { w.Quit(); w.Wait() }()
	<-w.Ready()
	if err := w.Drain(context.Background()); err != nil {
		t.Fatalf("Drain of an idle worker = %v", err)
	}
}
