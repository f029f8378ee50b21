package chaos

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Cause classifies the outcome of one request.
type Cause uint8

// The request outcomes.
const (
	OK           Cause = iota // 2xx/3xx/4xx response read in full
	CauseRefused              // dial got ECONNREFUSED
	CauseReset                // ECONNRESET, EPIPE, or EOF before a full response
	CauseTimeout              // the per-request deadline passed
	Cause5xx                  // a 5xx response
	CauseOther                // anything else
	causeAborted              // cut short by the end of the run: not counted
)

// Causes lists the failure causes in report order.
var Causes = []Cause{CauseRefused, CauseReset, CauseTimeout, Cause5xx, CauseOther}

// String returns the cause's report name.
func (c Cause) String() string {
	switch c {
	case OK:
		return "ok"
	case CauseRefused:
		return "refused"
	case CauseReset:
		return "reset"
	case CauseTimeout:
		return "timeout"
	case Cause5xx:
		return "5xx"
	case CauseOther:
		return "other"
	case causeAborted:
		return "aborted"
	}
	return "cause(" + strconv.Itoa(int(c)) + ")"
}

// Classify maps a dial, write or read error to a failure cause.
func Classify(err error) Cause {
	return KindOf(err).Cause()
}

// ErrKind is the precise error behind a failed request: which errno, EOF
// or deadline it was. Cause groups the kinds for the per-cause counts.
type ErrKind uint8

// The error kinds.
const (
	KindNone          ErrKind = iota // no error
	KindRefused                      // ECONNREFUSED: nothing listened
	KindConnReset                    // ECONNRESET: the peer sent RST
	KindBrokenPipe                   // EPIPE: writing after the peer closed or reset
	KindEOF                          // io.EOF: closed before any byte of the response
	KindUnexpectedEOF                // io.ErrUnexpectedEOF: closed in the middle of the response
	KindConnAborted                  // ECONNABORTED
	KindDeadline                     // a deadline passed (os.ErrDeadlineExceeded, context.DeadlineExceeded, ETIMEDOUT)
	KindNoPort                       // EAGAIN from connect: no free local port (the client's side)
	Kind5xx                          // a 5xx response
	KindOther                        // anything else
)

// String returns the kind as the report writes it.
func (k ErrKind) String() string {
	switch k {
	case KindNone:
		return "none"
	case KindRefused:
		return "ECONNREFUSED"
	case KindConnReset:
		return "ECONNRESET"
	case KindBrokenPipe:
		return "EPIPE"
	case KindEOF:
		return "EOF"
	case KindUnexpectedEOF:
		return "unexpected-EOF"
	case KindConnAborted:
		return "ECONNABORTED"
	case KindDeadline:
		return "deadline"
	case KindNoPort:
		return "EAGAIN"
	case Kind5xx:
		return "5xx"
	case KindOther:
		return "other"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Cause groups the kind into a failure cause.
func (k ErrKind) Cause() Cause {
	switch k {
	case KindNone:
		return OK
	case KindRefused:
		return CauseRefused
	case KindConnReset, KindBrokenPipe, KindEOF, KindUnexpectedEOF, KindConnAborted:
		return CauseReset
	case KindDeadline:
		return CauseTimeout
	case Kind5xx:
		return Cause5xx
	}
	return CauseOther
}

// KindOf maps a dial, write or read error to its kind. Unexpected EOF is
// tested before EOF, and errnos before deadlines.
func KindOf(err error) ErrKind {
	var ne net.Error
	switch {
	case err == nil:
		return KindNone
	case errors.Is(err, syscall.ECONNREFUSED):
		return KindRefused
	case errors.Is(err, syscall.ECONNRESET):
		return KindConnReset
	case errors.Is(err, syscall.EPIPE):
		return KindBrokenPipe
	case errors.Is(err, io.ErrUnexpectedEOF):
		return KindUnexpectedEOF
	case errors.Is(err, io.EOF):
		return KindEOF
	case errors.Is(err, syscall.ECONNABORTED):
		return KindConnAborted
	case errors.Is(err, syscall.EAGAIN):
		// Before the deadline test: Errno.Timeout is true for EAGAIN,
		// which connect returns when no local port is free.
		return KindNoPort
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, syscall.ETIMEDOUT), errors.As(err, &ne) && ne.Timeout():
		return KindDeadline
	}
	return KindOther
}

// Stage says where a request failed: before its connection was
// established (dial), or on an established connection (write, read).
type Stage uint8

// The stages.
const (
	StageNone  Stage = iota // the request did not fail
	StageDial               // connecting
	StageWrite              // writing the request on an established connection
	StageRead               // reading the response on an established connection
)

// String returns the stage as the report writes it.
func (s Stage) String() string {
	switch s {
	case StageNone:
		return "none"
	case StageDial:
		return "dial"
	case StageWrite:
		return "write"
	case StageRead:
		return "read"
	}
	return "stage(" + strconv.Itoa(int(s)) + ")"
}

// classifyStatus maps an HTTP status to OK or Cause5xx.
func classifyStatus(code int) Cause {
	if code >= 500 {
		return Cause5xx
	}
	return OK
}

// Result is the record of one request.
type Result struct {
	End     time.Duration // completion time after the start of the run
	Latency time.Duration
	Cause   Cause
	PID     int32 // pid= in the response body, 0 if none
	Slot    int16 // worker= in the response body, -1 if none or not a number
	Stage   Stage
	Kind    ErrKind
	// Reused is set when the request went on a connection that had
	// already carried a response (kept alive), not one dialled for it.
	Reused bool
	// Conn is the index of the client connection (the load goroutine)
	// that sent the request.
	Conn int32
	// ConnPID is, for a failed request on a kept-alive connection of the
	// strict client, the pid that answered the connection's previous
	// request: the worker that held the connection. 0 otherwise.
	ConnPID int32
}

// Outcome is what one request returned.
type Outcome struct {
	Cause Cause
	PID   int
	Slot  int   // worker slot, -1 if unknown
	Err   error // the error behind a failure, for diagnostics
	// Stage and Kind say where and how a failed request failed.
	Stage Stage
	Kind  ErrKind
	// Reused: the request went on a kept-alive connection.
	Reused bool
}

// failed returns the outcome of a request that failed at stage with err.
func failed(stage Stage, err error, reused bool) Outcome {
	k := KindOf(err)
	return Outcome{Cause: k.Cause(), Kind: k, Stage: stage, Err: err, Reused: reused}
}

// ClientMode selects the HTTP client.
type ClientMode string

// The client modes.
const (
	// Strict is a minimal HTTP/1.1 client that never retries: a request
	// that fails is a failed request.
	Strict ClientMode = "strict"
	// Retrying is Go's http.Client, which silently retries an idempotent
	// request whose kept-alive connection was closed before the response.
	Retrying ClientMode = "retrying"
)

// LoadConfig describes a load run.
type LoadConfig struct {
	Addr     string        // host:port, loopback only
	Conns    int           // concurrent keep-alive connections
	Duration time.Duration // length of the run
	Requests int64         // total request budget; 0 means unbounded
	Timeout  time.Duration // per-request deadline
	// DialTimeout bounds the connect of a request (within Timeout); 0
	// leaves it to Timeout.
	DialTimeout time.Duration
	Mode        ClientMode
	// OnPID, if set, is called (from load goroutines) the first time a
	// connection sees a response from a given pid.
	OnPID func(pid int)
}

// requester sends one request and reports its outcome.
type requester interface {
	Do(ctx context.Context) Outcome
	Close()
}

// LoadResult is what a load run recorded.
type LoadResult struct {
	Results []Result // every request, in no particular order
	// Samples holds the first error seen for each failure cause, and
	// KindSamples for each FailureKey.
	Samples     map[Cause]string
	KindSamples map[string]string
	// Unfinished counts the requests still waiting for an answer when
	// the run ended (not counted as failed), and LongestUnfinished is how
	// long the oldest of them had waited: a stopped worker shows here.
	Unfinished        int
	LongestUnfinished time.Duration
}

// RunLoad drives cfg.Conns connections against cfg.Addr from start until
// start+cfg.Duration, ctx is done, or the request budget is spent.
func RunLoad(ctx context.Context, cfg LoadConfig, start time.Time) (*LoadResult, error) {
	if err := checkLoopback(cfg.Addr); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithDeadline(ctx, start.Add(cfg.Duration))
	defer cancel()
	var budget atomic.Int64
	budget.Store(cfg.Requests)
	take := func() bool { return cfg.Requests <= 0 || budget.Add(-1) >= 0 }

	var shared *http.Client
	if cfg.Mode == Retrying {
		shared = newRetryingHTTPClient(cfg.Conns, cfg.DialTimeout)
		defer shared.CloseIdleConnections()
	}
	perConn := make([][]Result, cfg.Conns)
	samples := make([]loopSamples, cfg.Conns)
	unfinished := make([]time.Duration, cfg.Conns) // -1: none
	var wg sync.WaitGroup
	for i := range cfg.Conns {
		var r requester
		if cfg.Mode == Retrying {
			r = &RetryingClient{URL: "http://" + cfg.Addr + "/", Client: shared, Timeout: cfg.Timeout}
		} else {
			sc := NewStrictClient(cfg.Addr, cfg.Timeout)
			sc.DialTimeout = cfg.DialTimeout
			r = sc
		}
		wg.Go(func() {
			defer r.Close()
			perConn[i], samples[i], unfinished[i] = loadLoop(ctx, r, start, take, cfg.OnPID)
			for j := range perConn[i] {
				perConn[i][j].Conn = int32(i)
			}
		})
	}
	wg.Wait()
	var n int
	for _, rs := range perConn {
		n += len(rs)
	}
	lr := &LoadResult{Results: make([]Result, 0, n), Samples: make(map[Cause]string), KindSamples: make(map[string]string)}
	for i, rs := range perConn {
		lr.Results = append(lr.Results, rs...)
		if unfinished[i] >= 0 {
			lr.Unfinished++
			lr.LongestUnfinished = max(lr.LongestUnfinished, unfinished[i])
		}
		for c, e := range samples[i].byCause {
			if _, ok := lr.Samples[c]; !ok {
				lr.Samples[c] = e
			}
		}
		for k, e := range samples[i].byKey {
			if _, ok := lr.KindSamples[k]; !ok {
				lr.KindSamples[k] = e
			}
		}
	}
	return lr, nil
}

// loadLoop is one connection's request loop. It returns the results, an
// error sample per cause, and how long the request cut by the end of the
// run had waited (-1 if none was).
func loadLoop(ctx context.Context, r requester, start time.Time, take func() bool, onPID func(int)) ([]Result, loopSamples, time.Duration) {
	out := make([]Result, 0, 4096)
	samples := loopSamples{byCause: make(map[Cause]string), byKey: make(map[string]string)}
	cut := time.Duration(-1)
	lastPID := 0
	// prevOK is the pid that answered this loop's previous request, 0 if
	// it failed. The strict client keeps one connection and drops it on
	// a failure, so a kept-alive request's connection is the one prevOK
	// answered on.
	_, strict := r.(*StrictClient)
	prevOK := int32(0)
	for !runOver(ctx) && take() {
		t0 := time.Now()
		o := r.Do(ctx)
		t1 := time.Now()
		if o.Cause == causeAborted || (o.Cause != OK && runOver(ctx)) {
			cut = t1.Sub(t0) // cut by the end of the run, not the target's fault
			break
		}
		res := Result{End: t1.Sub(start), Latency: t1.Sub(t0), Cause: o.Cause, PID: int32(o.PID), Slot: int16(o.Slot),
			Stage: o.Stage, Kind: o.Kind, Reused: o.Reused}
		if strict && o.Cause != OK && o.Reused {
			res.ConnPID = prevOK
		}
		if prevOK = 0; o.Cause == OK {
			prevOK = int32(o.PID)
		}
		out = append(out, res)
		if o.Err != nil {
			if _, ok := samples.byCause[o.Cause]; !ok {
				samples.byCause[o.Cause] = o.Err.Error()
			}
			if k := FailureKey(o.Stage, o.Kind); samples.byKey[k] == "" {
				samples.byKey[k] = o.Err.Error()
			}
		}
		if o.PID != 0 && o.PID != lastPID {
			lastPID = o.PID
			if onPID != nil {
				onPID(o.PID)
			}
		}
		if o.Cause == CauseRefused {
			// Nothing listens: pace the next attempt instead of spinning.
			// The failure is counted; it is not retried.
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	return out, samples, cut
}

// runOver reports whether the run behind ctx is over: ctx is done, or its
// deadline has passed. The second matters because the deadline passes
// before ctx.Err() is set (by a timer, late on a loaded machine): in that
// window a dial fails at once with "i/o timeout", which is the end of the
// run, not the target's failure, and counting it spun the loop into
// thousands of bogus dial timeouts.
func runOver(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// loopSamples are one connection's first error per cause and per
// FailureKey.
type loopSamples struct {
	byCause map[Cause]string
	byKey   map[string]string
}

// FailureKey names a failure by stage and kind, such as "read ECONNRESET".
func FailureKey(s Stage, k ErrKind) string {
	return s.String() + " " + k.String()
}

// checkLoopback refuses any address that is not a loopback IP.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing to load %q: only loopback IP addresses are allowed", addr)
	}
	return nil
}

// StrictClient is a minimal HTTP/1.1 client over one net.Conn at a time.
// It never retries: a failed request is reported, the connection dropped,
// and the next Do dials again. It honours Connection: close. It is meant
// for one goroutine, except that Close may be called concurrently.
type StrictClient struct {
	addr    string
	timeout time.Duration
	req     []byte
	// DialTimeout bounds the connect (never past the request deadline);
	// 0 leaves it to the request deadline. Set it before the first Do.
	DialTimeout time.Duration

	mu     sync.Mutex
	conn   net.Conn
	br     *bufio.Reader
	used   bool // conn has carried a response
	closed bool
}

// NewStrictClient returns a client for http://addr/ with a per-request
// deadline of timeout.
func NewStrictClient(addr string, timeout time.Duration) *StrictClient {
	return &StrictClient{
		addr:    addr,
		timeout: timeout,
		req:     []byte("GET / HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: gracefork-chaos\r\n\r\n"),
	}
}

// Do sends GET / and reads the whole response. When ctx ends during the
// request the connection is closed and the outcome is not a failure of
// the target. A failure says its stage: dial (nothing was accepted),
// write or read (on an established connection), and whether the
// connection was a kept-alive one.
func (c *StrictClient) Do(ctx context.Context) Outcome {
	deadline := time.Now().Add(c.timeout)
	conn, br, reused, o := c.connect(ctx, deadline)
	if conn == nil {
		return o
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	_ = conn.SetDeadline(deadline)
	o = c.roundTrip(conn, br, reused)
	if runOver(ctx) {
		c.drop()
		return Outcome{Cause: causeAborted}
	}
	return o
}

// connect returns the kept-alive connection (reused true) or dials a new
// one, within DialTimeout and the request deadline.
func (c *StrictClient) connect(ctx context.Context, deadline time.Time) (net.Conn, *bufio.Reader, bool, Outcome) {
	c.mu.Lock()
	conn, br, used, closed := c.conn, c.br, c.used, c.closed
	c.mu.Unlock()
	if closed {
		return nil, nil, false, Outcome{Cause: causeAborted}
	}
	if conn != nil {
		return conn, br, used, Outcome{}
	}
	d := net.Dialer{Deadline: deadline}
	if c.DialTimeout > 0 {
		d.Deadline = minTime(deadline, time.Now().Add(c.DialTimeout))
	}
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		if runOver(ctx) {
			return nil, nil, false, Outcome{Cause: causeAborted}
		}
		return nil, nil, false, failed(StageDial, err, false)
	}
	br = bufio.NewReaderSize(conn, 4096)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		_ = conn.Close()
		return nil, nil, false, Outcome{Cause: causeAborted}
	}
	c.conn, c.br, c.used = conn, br, false
	return conn, br, false, Outcome{}
}

// minTime returns the earlier of a and b.
func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// roundTrip writes the request and reads the response on conn.
func (c *StrictClient) roundTrip(conn net.Conn, br *bufio.Reader, reused bool) Outcome {
	if _, err := conn.Write(c.req); err != nil {
		c.drop()
		return failed(StageWrite, err, reused)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.drop()
		return failed(StageRead, err, reused)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		c.drop()
		return failed(StageRead, err, reused)
	}
	if resp.Close {
		c.drop()
	} else {
		c.mu.Lock()
		if c.conn == conn {
			c.used = true
		}
		c.mu.Unlock()
	}
	o := Outcome{Cause: classifyStatus(resp.StatusCode), PID: ParsePID(body), Slot: ParseSlot(body), Reused: reused}
	if o.Cause != OK {
		o.Err = fmt.Errorf("status %s", resp.Status)
		o.Stage, o.Kind = StageRead, Kind5xx
	}
	return o
}

// drop closes the current connection so the next Do dials again.
func (c *StrictClient) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn, c.br, c.used = nil, nil, false
	}
}

// Close closes the connection; later calls to Do are aborted.
func (c *StrictClient) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.drop()
}

// RetryingClient sends requests through a shared net/http Client.
type RetryingClient struct {
	URL     string
	Client  *http.Client
	Timeout time.Duration
}

// newRetryingHTTPClient returns an http.Client that keeps up to conns idle
// connections to the target and never uses a proxy; dialTimeout > 0
// bounds each connect.
func newRetryingHTTPClient(conns int, dialTimeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: dialTimeout}
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         d.DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}}
}

// Do sends GET URL and reads the whole response.
func (c *RetryingClient) Do(ctx context.Context) Outcome {
	rctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return Outcome{Cause: CauseOther, Err: err}
	}
	resp, err := c.Client.Do(req)
	if err == nil {
		var body []byte
		body, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err == nil {
			o := Outcome{Cause: classifyStatus(resp.StatusCode), PID: ParsePID(body), Slot: ParseSlot(body)}
			if o.Cause != OK {
				o.Err = fmt.Errorf("status %s", resp.Status)
				o.Stage, o.Kind = StageRead, Kind5xx
			}
			return o
		}
	}
	if runOver(ctx) {
		return Outcome{Cause: causeAborted}
	}
	// net/http hides the stage; a dial error is still a *net.OpError
	// with Op "dial". Reused is unknown (it retries on its own).
	stage := StageRead
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Op == "dial" {
		stage = StageDial
	}
	return failed(stage, err, false)
}

// Close is a no-op: the shared client's idle connections are closed by
// RunLoad.
func (c *RetryingClient) Close() {}

// ParsePID returns the number after "pid=" in body, or 0.
func ParsePID(body []byte) int {
	n, ok := numberAfter(body, "pid=")
	if !ok {
		return 0
	}
	return n
}

// ParseSlot returns the number after "worker=" in body, or -1.
func ParseSlot(body []byte) int {
	n, ok := numberAfter(body, "worker=")
	if !ok || n > 1<<14 {
		return -1
	}
	return n
}

// numberAfter parses the decimal number that follows key in body.
func numberAfter(body []byte, key string) (int, bool) {
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return 0, false
	}
	n, digits := 0, 0
	for _, b := range body[i+len(key):] {
		if b < '0' || b > '9' || n > 1<<30 {
			break
		}
		n = n*10 + int(b-'0')
		digits++
	}
	return n, digits > 0
}
