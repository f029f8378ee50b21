package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// realDialTimeout returns the error of a dial whose deadline has passed,
// as net returns it.
func realDialTimeout(t *testing.T) error {
	t.Helper()
	_, err := (&net.Dialer{Deadline: time.Now().Add(-time.Second)}).Dial("tcp4", "127.0.0.1:1")
	if err == nil {
		t.Fatal("dial with a past deadline succeeded")
	}
	return err
}

// realReadTimeout returns the error of a read whose deadline has passed.
func realReadTimeout(t *testing.T) error {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	_ = a.SetReadDeadline(time.Now().Add(-time.Second))
	_, err := a.Read(make([]byte, 1))
	if err == nil {
		t.Fatal("read with a past deadline succeeded")
	}
	return err
}

// opErr wraps errno the way net reports a failed syscall of op.
func opErr(op, syscallName string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(syscallName, errno)}
}

func TestKindOfAndLossOf(t *testing.T) {
	tests := []struct {
		name  string
		stage Stage
		err   error
		kind  ErrKind
		cause Cause
		loss  string
	}{
		{"dial refused", StageDial, opErr("dial", "connect", syscall.ECONNREFUSED), KindRefused, CauseRefused, "refused"},
		{"dial deadline", StageDial, realDialTimeout(t), KindDeadline, CauseTimeout, "dial-timeout"},
		{"dial no local port", StageDial, opErr("dial", "connect", syscall.EAGAIN), KindNoPort, CauseOther, "other"},
		{"dial reset", StageDial, opErr("dial", "connect", syscall.ECONNRESET), KindConnReset, CauseReset, "other"},
		{"write broken pipe", StageWrite, opErr("write", "write", syscall.EPIPE), KindBrokenPipe, CauseReset, "accepted"},
		{"write reset", StageWrite, opErr("write", "write", syscall.ECONNRESET), KindConnReset, CauseReset, "accepted"},
		{"read reset", StageRead, opErr("read", "read", syscall.ECONNRESET), KindConnReset, CauseReset, "accepted"},
		{"read EOF", StageRead, io.EOF, KindEOF, CauseReset, "accepted"},
		{"read unexpected EOF", StageRead, fmt.Errorf("body: %w", io.ErrUnexpectedEOF), KindUnexpectedEOF, CauseReset, "accepted"},
		{"read aborted", StageRead, opErr("read", "read", syscall.ECONNABORTED), KindConnAborted, CauseReset, "accepted"},
		{"read deadline", StageRead, realReadTimeout(t), KindDeadline, CauseTimeout, "response-timeout"},
		{"read ETIMEDOUT", StageRead, opErr("read", "read", syscall.ETIMEDOUT), KindDeadline, CauseTimeout, "response-timeout"},
		{"read garbage", StageRead, errors.New(`malformed HTTP response "SSH-2.0-nope"`), KindOther, CauseOther, "other"},
		{"5xx", StageRead, nil, Kind5xx, Cause5xx, "other"},
		{"ok", StageNone, nil, KindNone, OK, ""},
	}
	for _, tt := range tests {
		kind := tt.kind
		if tt.err != nil {
			kind = KindOf(tt.err)
		}
		if kind != tt.kind || kind.Cause() != tt.cause || LossOf(tt.stage, kind) != tt.loss {
			t.Errorf("%s (%v): kind %v cause %v loss %q, want %v %v %q",
				tt.name, tt.err, kind, kind.Cause(), LossOf(tt.stage, kind), tt.kind, tt.cause, tt.loss)
		}
		if tt.err != nil && Classify(tt.err) != tt.cause {
			t.Errorf("%s: Classify = %v, want %v", tt.name, Classify(tt.err), tt.cause)
		}
	}
}

func TestLossesCount(t *testing.T) {
	var l Losses
	for _, r := range []Result{
		{Stage: StageRead, Kind: KindConnReset},
		{Stage: StageRead, Kind: KindEOF, Reused: true, ConnPID: 7},
		{Stage: StageWrite, Kind: KindBrokenPipe, Reused: true, ConnPID: 8},
		{Stage: StageDial, Kind: KindRefused},
		{Stage: StageDial, Kind: KindRefused},
		{Stage: StageDial, Kind: KindDeadline},
		{Stage: StageRead, Kind: KindDeadline, Reused: true},
		{Stage: StageRead, Kind: Kind5xx},
	} {
		l.add(r, map[int32]bool{7: true}) // pid 7 was killed, 8 was not
	}
	want := Losses{Accepted: 3, AcceptedNew: 1, AcceptedKeptAlive: 2, OnKilledWorker: 1, Refused: 2, DialTimeout: 1, ResponseTimeout: 1, Other: 1}
	got := l
	got.ByError = nil
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("losses %+v, want %+v", got, want)
	}
	if l.ByError["dial ECONNREFUSED"] != 2 || l.ByError["read ECONNRESET"] != 1 || l.ByError["write EPIPE"] != 1 || len(l.ByError) != 7 {
		t.Errorf("by error %v", l.ByError)
	}
}

// rawListener listens on a free loopback port with the given backlog
// and never accepts, so connections stay in its accept queue. It returns
// the address and the socket; the socket is closed at the end of the
// test unless the test closed it (set *fd to -1 after closing).
func rawListener(t *testing.T, backlog int) (string, *int) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := &fd
	t.Cleanup(func() {
		if *p >= 0 {
			_ = syscall.Close(*p)
		}
	})
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, backlog); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port), p
}

// waitQueued waits until the listener's accept queue holds n connections
// (TCP_INFO's unacked is the queue length of a listening socket).
func waitQueued(t *testing.T, fd, n int) {
	t.Helper()
	err := pollUntil(t.Context(), time.Now().Add(10*time.Second), func() bool {
		ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		return err == nil && int(ti.Unacked) >= n
	})
	if err != nil {
		t.Fatalf("accept queue never reached %d: %v", n, err)
	}
}

// TestStrictClientBacklogReset is the stop defect's mechanism: a
// connection the kernel accepted into the backlog, with the request
// written, is reset when the last listening socket closes. That is a
// request lost on an accepted (new) connection, not a refused dial.
func TestStrictClientBacklogReset(t *testing.T) {
	addr, fd := rawListener(t, 8)
	c := NewStrictClient(addr, 10*time.Second)
	defer c.Close()
	done := make(chan Outcome, 1)
	go func() { done <- c.Do(t.Context()) }()
	waitQueued(t, *fd, 1)
	if err := syscall.Close(*fd); err != nil {
		t.Fatal(err)
	}
	*fd = -1
	o := <-done
	if LossOf(o.Stage, o.Kind) != "accepted" || o.Cause != CauseReset || o.Reused {
		t.Fatalf("Do = %v stage %v kind %v reused %v (%v), want a reset on a new accepted connection",
			o.Cause, o.Stage, o.Kind, o.Reused, o.Err)
	}
	// Now nothing listens: the next dial is refused, which is safe to retry.
	if o := c.Do(t.Context()); LossOf(o.Stage, o.Kind) != "refused" {
		t.Fatalf("after the close: %v stage %v kind %v (%v), want a refused dial", o.Cause, o.Stage, o.Kind, o.Err)
	}
}

// TestStrictClientTimeoutStages tells a response timeout (connected into a
// backlog nobody accepts) from a dial timeout (the backlog is full, so
// the kernel drops the SYN: the dial bound, below the 1 s SYN
// retransmission, passes).
func TestStrictClientTimeoutStages(t *testing.T) {
	addr, fd := rawListener(t, 0) // the accept queue holds one connection
	first := NewStrictClient(addr, 200*time.Millisecond)
	defer first.Close()
	o := first.Do(t.Context())
	if LossOf(o.Stage, o.Kind) != "response-timeout" || o.Cause != CauseTimeout {
		t.Fatalf("queued request: %v stage %v kind %v (%v), want a response timeout", o.Cause, o.Stage, o.Kind, o.Err)
	}
	waitQueued(t, *fd, 1)
	second := NewStrictClient(addr, 5*time.Second)
	second.DialTimeout = 100 * time.Millisecond
	defer second.Close()
	o = second.Do(t.Context())
	if LossOf(o.Stage, o.Kind) != "dial-timeout" || o.Cause != CauseTimeout || o.Stage != StageDial {
		t.Fatalf("full backlog: %v stage %v kind %v (%v), want a dial timeout", o.Cause, o.Stage, o.Kind, o.Err)
	}
	if !strings.Contains(o.Err.Error(), "dial") {
		t.Errorf("dial timeout error %q does not name the dial", o.Err)
	}
}

// lateCtx is a context whose deadline has passed but whose Err is not
// set yet: the window before context.WithDeadline's timer fires.
type lateCtx struct{ context.Context }

func (lateCtx) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

// TestStrictClientEndOfRunIsNotATimeout: a dial that fails only because
// the run's deadline passed is cut by the end of the run, not a dial
// timeout of the target (the stop scenario counted thousands of them).
func TestStrictClientEndOfRunIsNotATimeout(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := NewStrictClient(ln.Addr().String(), 5*time.Second)
	defer c.Close()
	ctx := lateCtx{context.Background()}
	if o := c.Do(ctx); o.Cause != causeAborted {
		t.Fatalf("Do after the run's deadline = %v stage %v (%v), want aborted", o.Cause, o.Stage, o.Err)
	}
	if !runOver(ctx) {
		t.Fatal("runOver(late context) = false")
	}
}

func TestSummarizeStop(t *testing.T) {
	s := &Summary{Target: "x", Stop: &StopReport{TermAtS: 2, termAfter: 2 * time.Second}}
	s.Faults = []FaultRecord{{Action: ActTerm, Fired: true, Injected: true, At: 2, firedAfter: 2 * time.Second}}
	rs := []Result{
		{End: 500 * ms},
		{End: 1900 * ms, Stage: StageRead, Kind: KindEOF, Cause: CauseReset, Reused: true}, // before the TERM
		{End: 2100 * ms},
		{End: 2300 * ms},
		{End: 2050 * ms, Stage: StageRead, Kind: KindConnReset, Cause: CauseReset},
		{End: 2400 * ms, Stage: StageDial, Kind: KindRefused, Cause: CauseRefused},
		{End: 2900 * ms, Stage: StageDial, Kind: KindDeadline, Cause: CauseTimeout},
	}
	s.Summarize(rs, 250*ms, 3*time.Second)
	st := s.Stop
	if st.OKAfter != 2 || st.LastOKAfterS < 0.29 || st.LastOKAfterS > 0.31 || st.FailedBefore != 1 {
		t.Errorf("stop report %+v, want 2 ok after, the last 0.3s after, 1 failed before", st)
	}
	l := s.Losses
	if l.Accepted != 2 || l.AcceptedNew != 1 || l.AcceptedKeptAlive != 1 || l.Refused != 1 || l.DialTimeout != 1 || s.Failed != 4 {
		t.Errorf("losses %+v (failed %d)", l, s.Failed)
	}
	var b strings.Builder
	s.WriteText(&b)
	for _, want := range []string{
		"lost on accepted connections 2 (new 1, kept-alive 1), refused dials 1, timeouts dial 1 response 0, other 0",
		"by error: dial ECONNREFUSED=1 dial deadline=1 read ECONNRESET=1 read EOF=1",
		"after TERM: 2 ok, the last 0.30s after it; 1 failed before it",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

// TestRunNetHTTPStop runs a short stop scenario against nethttp-target,
// which calls http.Server.Shutdown on SIGTERM: the harness must time the
// master's exit from the term action's SIGTERM (not send another), see
// refused dials once the listener is closed, and find nothing left.
func TestRunNetHTTPStop(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run")
	}
	cfg := e2eConfig(t, 2*time.Second, 8, "at=1s action=term")
	cfg.Timeout, cfg.DialTimeout = 2*time.Second, 750*time.Millisecond
	s, err := Run(t.Context(), TNetHTTP, cfg)
	if err != nil {
		t.Fatal(err)
	}
	report(t, s)
	st := s.Stop
	if st == nil || st.ExitAfterS == nil || st.Exit != "exit status 0" {
		t.Fatalf("stop report %+v, want a measured exit with status 0", st)
	}
	if !strings.Contains(s.MasterExit, "after SIGTERM (sent by the term action") {
		t.Errorf("master: %s", s.MasterExit)
	}
	if s.Losses.Refused == 0 || st.FailedBefore != 0 {
		t.Errorf("losses %+v, %d failed before the TERM; want refused dials after it and nothing before", s.Losses, st.FailedBefore)
	}
	if len(s.Leftovers) != 0 {
		t.Errorf("leftovers %+v", s.Leftovers)
	}
	assertNothingLeft(t, s)
}
