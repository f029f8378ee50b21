//go:build unix

package prefork

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"

	"github.com/gracefork/gracefork/internal/control"
	"github.com/gracefork/gracefork/internal/handoff"
	"github.com/gracefork/gracefork/internal/sockets"
)

// inProcessRole builds the worker role in this process from a hand-off
// that names real descriptors: a control socketpair (the master's end is
// returned) and a listener on 127.0.0.1.
func inProcessRole(t *testing.T) (*workerRole, net.Conn) {
	t.Helper()
	return inProcessRoleWith(t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		io.WriteString(rw, "hello")
	}), Options{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
}

// inProcessRoleWith is inProcessRole serving h with opts.
func inProcessRoleWith(t *testing.T, h http.Handler, opts Options) (*workerRole, net.Conn) {
	t.Helper()
	mine, theirs, err := sockets.Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer theirs.Close()
	master, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lf, err := ln.(*net.TCPListener).File()
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	// Descriptors no *os.File owns: the role takes and closes them.
	ctl, err := syscall.Dup(int(theirs.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	lfd, err := syscall.Dup(int(lf.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	spec := handoff.Spec{Slot: 2, Gen: 7, Ctl: ctl, Fds: []int{lfd}}
	defer func(f func() handoffState) { theHandoff = f }(theHandoff)
	theHandoff = func() handoffState { return handoffState{set: true, spec: spec} }
	cfg, err := opts.validate()
	if err != nil {
		t.Fatal(err)
	}
	w, err := newWorkerRole(h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w, master
}

func expect(t *testing.T, c net.Conn, typ control.Type) {
	t.Helper()
	for {
		msg, err := control.Read(c)
		if err != nil {
			t.Fatalf("waiting for %v: %v", typ, err)
		}
		if msg.Type == typ {
			return
		}
	}
}

// The seam without processes: run says ready once serving, serves, and a
// cancelled ctx drains it to a clean nil; quit stops it at once, also when
// called before run.
func TestWorkerRoleRunInProcess(t *testing.T) {
	w, master := inProcessRole(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.run(ctx) }()
	expect(t, master, control.TypeReady)
	if b := getBody(t, w, "/"); b != "hello" {
		t.Fatalf("answer %q", b)
	}
	if _, set := os.LookupEnv(MarkerEnv); set {
		t.Fatal("the marker is still in the environment")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after ctx done = %v", err)
	}
	expect(t, master, control.TypeHeartbeat) // the last counters

	w2, _ := inProcessRole(t)
	w2.quit()
	if err := w2.run(context.Background()); err != nil {
		t.Fatalf("run after quit = %v", err)
	}
	w2.quit()
}

// EOF on the control channel (the master is gone) drains the worker.
func TestWorkerRoleDrainsOnControlEOF(t *testing.T) {
	w, master := inProcessRole(t)
	done := make(chan error, 1)
	go func() { done <- w.run(context.Background()) }()
	expect(t, master, control.TypeReady)
	master.Close()
	if err := <-done; err != nil {
		t.Fatalf("run after EOF = %v", err)
	}
}
