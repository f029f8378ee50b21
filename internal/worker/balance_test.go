package worker

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
)

// The share is the fair part of the pool's connections, rounded up, plus a
// tenth; alone, or before the master said, there is none.
func TestShareLimit(t *testing.T) {
	w := &Worker{}
	for _, tc := range []struct{ conns, workers, want int }{
		{16, 2, 8}, {64, 2, 35}, {256, 4, 70}, {4, 2, 2}, {5, 2, 3}, {4, 4, 1}, {200, 2, 110},
	} {
		w.pool.conns.Store(int64(tc.conns))
		w.pool.workers.Store(int64(tc.workers))
		if got := w.shareLimit(); got != tc.want {
			t.Errorf("%d conns over %d workers: limit %d, want %d", tc.conns, tc.workers, got, tc.want)
		}
	}
	for _, tc := range []struct{ conns, workers int }{{16, 1}, {0, 2}, {0, 0}} {
		w.pool.conns.Store(int64(tc.conns))
		w.pool.workers.Store(int64(tc.workers))
		if got := w.shareLimit(); got < 1<<30 {
			t.Errorf("%d conns over %d workers: limit %d, want none", tc.conns, tc.workers, got)
		}
	}
}

// A worker holds back from Accept when it holds more than its share, or
// its fair share while another holds fewer; not otherwise.
func TestOverShare(t *testing.T) {
	for _, tc := range []struct {
		mine, conns, workers, fewest int
		want                         bool
	}{
		{1, 4, 4, 0, true},     // 4 connections over 4 workers: one has none
		{1, 4, 4, 1, false},    // one each
		{0, 4, 4, 0, false},    // the one with none takes the next
		{2, 4, 4, 1, true},     // over the limit (1)
		{8, 32, 4, 8, false},   // even
		{8, 32, 4, 7, true},    // at its share, another below
		{7, 32, 4, 6, false},   // below its share: takes connections
		{10, 16, 1, 16, false}, // alone
	} {
		w := &Worker{}
		w.conns.conns = map[*trackedConn]struct{}{}
		for range tc.mine {
			w.conns.conns[&trackedConn{}] = struct{}{}
		}
		w.pool.conns.Store(int64(tc.conns))
		w.pool.workers.Store(int64(tc.workers))
		w.pool.fewest.Store(int64(tc.fewest))
		if got := w.overShare(); got != tc.want {
			t.Errorf("%+v: overShare %v, want %v", tc, got, tc.want)
		}
	}
}

// A worker holding more than its share sends exactly the excess of its
// kept-alive clients away, each with a whole answer and "Connection:
// close"; the others keep their connection.
func TestShedsTheConnectionsOverItsShare(t *testing.T) {
	w := start(t, Config{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {})})
	conns := make([]*rawConn, 12)
	for i := range conns {
		conns[i] = dial(t, w)
		conns[i].send(t, "/")
		conns[i].answer(t)
	}
	w.SetPool(18, 2, 6) // fair 9, limit 9: 3 over
	closed := 0
	for _, c := range conns {
		c.send(t, "/")
		if resp := c.answer(t); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		} else if resp.Close {
			closed++
		}
	}
	if closed != 3 {
		t.Fatalf("%d clients told to reconnect, want 3", closed)
	}
	// Alone (a scale-down to one worker), nothing is sent away.
	w.SetPool(16, 1, 16)
	for _, c := range conns[5:] {
		c.send(t, "/")
		if resp := c.answer(t); resp.Close {
			t.Fatal("a worker alone sent a client away")
		}
	}
}

// A worker over its share still accepts: the hold-back is bounded, and
// ends at once when a drain begins.
func TestHoldBackIsBounded(t *testing.T) {
	w := start(t, Config{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {})})
	for range 4 {
		c := dial(t, w)
		c.send(t, "/")
		c.answer(t)
	}
	w.SetPool(2, 2, 0) // far over its share
	if !w.overShare() {
		t.Fatal("not over its share")
	}
	c := dial(t, w) // accepted after at most holdbackMax
	c.send(t, "/")
	if resp := c.answer(t); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	w.draining.Store(true)
	w.holdBack() // returns at once: nothing to wait for in a drain
}

// Once its listeners are closed (a final stop's first phase) a worker
// sends nobody away: the client would reconnect into another worker's copy
// of the socket, about to close, and be reset.
func TestNoSheddingOnceListenersClosed(t *testing.T) {
	w := start(t, Config{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {})})
	conns := make([]*rawConn, 6)
	for i := range conns {
		conns[i] = dial(t, w)
		conns[i].send(t, "/")
		conns[i].answer(t)
	}
	w.SetPool(6, 2, 0) // 3 over its share
	w.CloseListeners()
	for _, c := range conns {
		c.send(t, "/")
		if resp := c.answer(t); resp.Close {
			t.Fatal("a client was told to reconnect after the listeners closed")
		}
	}
}

// A worker waiting in Accept when the master's totals put it over its
// share is woken, and holds back instead of taking the next connection.
func TestOverShareWakesTheWaitingAccept(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(Config{Listeners: []net.Listener{ln}, Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})})
	if err != nil {
		t.Fatal(err)
	}
	holds := make(chan bool, 64)
	hold := w.accepts[0].hold
	w.accepts[0].hold = func() bool { over := hold(); holds <- over; return over }
	w.Start()
	defer func() { w.Quit(); w.Wait() }()
	<-holds // waiting in Accept
	for range 2 {
		c := dial(t, w)
		c.send(t, "/")
		c.answer(t)
		<-holds // back in Accept
	}
	w.SetPool(2, 2, 0) // 2 connections, limit 1: over
	if over := <-holds; !over {
		t.Fatal("woken, but not over its share")
	}
}

// Two workers on one socket: the one over its share leaves new
// connections to the other, which waits in Accept, and takes only those
// the other leaves queued (about one in fifty here, when its short poll
// meets an arrival).
func TestOverShareWorkerLeavesConnectionsToOthers(t *testing.T) {
	shared, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := shared.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	shared2, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	answer := func(name string) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { io.WriteString(rw, name) })
	}
	// Each also has a listener of its own (start's): the busy one's
	// holds connections before the test begins.
	busy := start(t, Config{Listeners: []net.Listener{shared}, Handler: answer("busy")})
	start(t, Config{Listeners: []net.Listener{shared2}, Handler: answer("free")})
	for range 3 {
		c := dial(t, busy)
		c.send(t, "/")
		c.answer(t)
	}
	busy.SetPool(3, 2, 0) // limit 2: over with 3, and more
	counts := map[string]int{}
	for range 40 {
		c, err := net.Dial("tcp", shared.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		counts[string(b)]++
	}
	if counts["free"] < 30 {
		t.Errorf("the worker under its share took %d of 40 connections (the one over it: %d)", counts["free"], counts["busy"])
	}
}
