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
	var ne net.Error
	switch {
	case err == nil:
		return OK
	case errors.Is(err, syscall.ECONNREFUSED):
		return CauseRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNABORTED):
		return CauseReset
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return CauseTimeout
	}
	return CauseOther
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
}

// Outcome is what one request returned.
type Outcome struct {
	Cause Cause
	PID   int
	Slot  int   // worker slot, -1 if unknown
	Err   error // the error behind a failure, for diagnostics
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
	Mode     ClientMode
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
	// Samples holds the first error seen for each failure cause.
	Samples map[Cause]string
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
		shared = newRetryingHTTPClient(cfg.Conns)
		defer shared.CloseIdleConnections()
	}
	perConn := make([][]Result, cfg.Conns)
	samples := make([]map[Cause]string, cfg.Conns)
	unfinished := make([]time.Duration, cfg.Conns) // -1: none
	var wg sync.WaitGroup
	for i := range cfg.Conns {
		var r requester
		if cfg.Mode == Retrying {
			r = &RetryingClient{URL: "http://" + cfg.Addr + "/", Client: shared, Timeout: cfg.Timeout}
		} else {
			r = NewStrictClient(cfg.Addr, cfg.Timeout)
		}
		wg.Go(func() {
			defer r.Close()
			perConn[i], samples[i], unfinished[i] = loadLoop(ctx, r, start, take, cfg.OnPID)
		})
	}
	wg.Wait()
	var n int
	for _, rs := range perConn {
		n += len(rs)
	}
	lr := &LoadResult{Results: make([]Result, 0, n), Samples: make(map[Cause]string)}
	for i, rs := range perConn {
		lr.Results = append(lr.Results, rs...)
		if unfinished[i] >= 0 {
			lr.Unfinished++
			lr.LongestUnfinished = max(lr.LongestUnfinished, unfinished[i])
		}
		for c, e := range samples[i] {
			if _, ok := lr.Samples[c]; !ok {
				lr.Samples[c] = e
			}
		}
	}
	return lr, nil
}

// loadLoop is one connection's request loop. It returns the results, an
// error sample per cause, and how long the request cut by the end of the
// run had waited (-1 if none was).
func loadLoop(ctx context.Context, r requester, start time.Time, take func() bool, onPID func(int)) ([]Result, map[Cause]string, time.Duration) {
	out := make([]Result, 0, 4096)
	samples := make(map[Cause]string)
	cut := time.Duration(-1)
	lastPID := 0
	for ctx.Err() == nil && take() {
		t0 := time.Now()
		o := r.Do(ctx)
		t1 := time.Now()
		if o.Cause == causeAborted || (o.Cause != OK && ctx.Err() != nil) {
			cut = t1.Sub(t0) // cut by the end of the run, not the target's fault
			break
		}
		out = append(out, Result{End: t1.Sub(start), Latency: t1.Sub(t0), Cause: o.Cause, PID: int32(o.PID), Slot: int16(o.Slot)})
		if _, ok := samples[o.Cause]; !ok && o.Err != nil {
			samples[o.Cause] = o.Err.Error()
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

	mu     sync.Mutex
	conn   net.Conn
	br     *bufio.Reader
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
// the target.
func (c *StrictClient) Do(ctx context.Context) Outcome {
	deadline := time.Now().Add(c.timeout)
	conn, br, o := c.connect(ctx, deadline)
	if conn == nil {
		return o
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	_ = conn.SetDeadline(deadline)
	o = c.roundTrip(conn, br)
	if ctx.Err() != nil {
		c.drop()
		return Outcome{Cause: causeAborted}
	}
	return o
}

// connect returns the kept-alive connection or dials a new one.
func (c *StrictClient) connect(ctx context.Context, deadline time.Time) (net.Conn, *bufio.Reader, Outcome) {
	c.mu.Lock()
	conn, br, closed := c.conn, c.br, c.closed
	c.mu.Unlock()
	if closed {
		return nil, nil, Outcome{Cause: causeAborted}
	}
	if conn != nil {
		return conn, br, Outcome{}
	}
	d := net.Dialer{Deadline: deadline}
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, Outcome{Cause: causeAborted}
		}
		return nil, nil, Outcome{Cause: Classify(err), Err: err}
	}
	br = bufio.NewReaderSize(conn, 4096)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		_ = conn.Close()
		return nil, nil, Outcome{Cause: causeAborted}
	}
	c.conn, c.br = conn, br
	return conn, br, Outcome{}
}

// roundTrip writes the request and reads the response on conn.
func (c *StrictClient) roundTrip(conn net.Conn, br *bufio.Reader) Outcome {
	if _, err := conn.Write(c.req); err != nil {
		c.drop()
		return Outcome{Cause: Classify(err), Err: err}
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.drop()
		return Outcome{Cause: Classify(err), Err: err}
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		c.drop()
		return Outcome{Cause: Classify(err), Err: err}
	}
	if resp.Close {
		c.drop()
	}
	o := Outcome{Cause: classifyStatus(resp.StatusCode), PID: ParsePID(body), Slot: ParseSlot(body)}
	if o.Cause != OK {
		o.Err = fmt.Errorf("status %s", resp.Status)
	}
	return o
}

// drop closes the current connection so the next Do dials again.
func (c *StrictClient) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn, c.br = nil, nil
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
// connections to the target and never uses a proxy.
func newRetryingHTTPClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
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
			}
			return o
		}
	}
	if ctx.Err() != nil {
		return Outcome{Cause: causeAborted}
	}
	return Outcome{Cause: Classify(err), Err: err}
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
