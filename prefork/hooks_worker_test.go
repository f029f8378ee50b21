//go:build unix

package prefork

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gracefork/gracefork/internal/control"
)

// order records what happened, in order, across goroutines.
type order struct {
	mu   sync.Mutex
	seen []string
}

func (o *order) add(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, s)
}

func (o *order) get() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.seen...)
}

// readTypes reads the master's end of a control channel until it ends,
// noting every message's type in o, and closes done.
func readTypes(c net.Conn, o *order, failures chan<- string, done chan<- struct{}) {
	defer close(done)
	for {
		msg, err := control.Read(c)
		if err != nil {
			return
		}
		o.add(msg.Type.String())
		if msg.Type == control.TypeFailed {
			failures <- msg.Payload
		}
	}
}

// WorkerInit runs before the worker serves: the worker reports ready only
// once it has returned, and the handler sees what it set up.
// WorkerShutdown runs after the drain.
func TestWorkerInitRunsBeforeReady(t *testing.T) {
	var o order
	var db string
	h := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { io.WriteString(rw, db) })
	opts := Options{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler), Hooks: Hooks{
		WorkerInit: func(ctx context.Context) error {
			o.add("init")
			db = "connected"
			return nil
		},
		WorkerShutdown: func(ctx context.Context) error { o.add("shutdown"); return nil },
	}}
	w, master := inProcessRoleWith(t, h, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.run(ctx) }()
	expect(t, master, control.TypeReady)
	o.add("ready")
	if b := getBody(t, w, "/"); b != "connected" {
		t.Fatalf("answer %q, want what WorkerInit set up", b)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run = %v", err)
	}
	if got := o.get(); len(got) != 3 || got[0] != "init" || got[1] != "ready" || got[2] != "shutdown" {
		t.Fatalf("order %v, want [init ready shutdown]", got)
	}
}

// An error from WorkerInit fails the boot: the worker never reports
// ready, tells the master why, Run returns the error wrapped, and
// WorkerShutdown does not run.
func TestWorkerInitErrorFailsBoot(t *testing.T) {
	errDB := errors.New("dial tcp 10.0.0.5:5432: connection refused")
	shut := false
	opts := Options{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler), Hooks: Hooks{
		WorkerInit:     func(ctx context.Context) error { return errDB },
		WorkerShutdown: func(ctx context.Context) error { shut = true; return nil },
	}}
	w, master := inProcessRoleWith(t, http.NotFoundHandler(), opts)
	var o order
	failures, read := make(chan string, 1), make(chan struct{})
	go readTypes(master, &o, failures, read)
	err := w.run(context.Background())
	if !errors.Is(err, errDB) || err.Error() != "prefork: WorkerInit: "+errDB.Error() {
		t.Fatalf("run = %v, want WorkerInit's error wrapped", err)
	}
	if got := <-failures; got != "WorkerInit: "+errDB.Error() {
		t.Fatalf("told the master %q", got)
	}
	<-read
	for _, typ := range o.get() {
		if typ == "ready" {
			t.Fatalf("a worker whose WorkerInit failed said ready: %v", o.get())
		}
	}
	if shut {
		t.Fatal("WorkerShutdown ran after a failed WorkerInit")
	}
}

// A stop while WorkerInit runs cancels its context; the worker then stops
// without serving, and Run returns nil. WorkerShutdown runs only after a
// WorkerInit that succeeded.
func TestStopDuringWorkerInitCancelsIt(t *testing.T) {
	for _, initErr := range []bool{true, false} {
		entered := make(chan struct{})
		shut := false
		opts := Options{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler), Hooks: Hooks{
			WorkerInit: func(ctx context.Context) error {
				close(entered)
				<-ctx.Done()
				if initErr {
					return ctx.Err()
				}
				return nil
			},
			WorkerShutdown: func(ctx context.Context) error { shut = true; return nil },
		}}
		w, master := inProcessRoleWith(t, http.NotFoundHandler(), opts)
		var o order
		read := make(chan struct{})
		go readTypes(master, &o, make(chan string, 1), read)
		done := make(chan error, 1)
		go func() { done <- w.run(context.Background()) }()
		<-entered
		w.quit()
		if err := <-done; err != nil {
			t.Fatalf("run after a quit during WorkerInit = %v", err)
		}
		<-read
		if got := o.get(); len(got) != 1 || got[0] != "heartbeat" {
			t.Fatalf("told the master %v, want only the last heartbeat", got)
		}
		if shut == initErr {
			t.Fatalf("WorkerInit failed %v, WorkerShutdown ran %v", initErr, shut)
		}
	}
}

// WorkerShutdown runs once the drain is over: the request in flight has
// been answered. Its context ends at the drain's deadline.
func TestWorkerShutdownRunsAfterTheDrain(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	answered := false
	h := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(rw, "done")
		mu.Lock()
		answered = true
		mu.Unlock()
	})
	type seen struct {
		answered bool
		left     time.Duration
	}
	shut := make(chan seen, 1)
	opts := Options{Addr: "127.0.0.1:0", GracefulTimeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler), Hooks: Hooks{
		WorkerShutdown: func(ctx context.Context) error {
			dl, _ := ctx.Deadline()
			mu.Lock()
			defer mu.Unlock()
			shut <- seen{answered, time.Until(dl)}
			return errors.New("flush failed") // logged only
		},
	}}
	w, master := inProcessRoleWith(t, h, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.run(ctx) }()
	expect(t, master, control.TypeReady)
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + w.addrs()[0].String() + "/")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-entered
	cancel() // drain
	close(release)
	if body := <-got; body != "done" {
		t.Fatalf("request in flight at the drain: %q", body)
	}
	if err := <-done; err != nil {
		t.Fatalf("run = %v", err)
	}
	s := <-shut
	if !s.answered {
		t.Fatal("WorkerShutdown ran before the request in flight was answered")
	}
	if s.left <= time.Second || s.left > 5*time.Second {
		t.Fatalf("WorkerShutdown's context ends in %v, want the drain's deadline (within 5s)", s.left)
	}
}
