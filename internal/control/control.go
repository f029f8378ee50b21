// Package control is the wire protocol between a gracefork master and one of
// its workers, spoken over the socketpair the worker inherits.
//
// Every message is a frame: an 8-byte header — the magic "GF", the protocol
// version, the message type, and the payload length as a big-endian uint32 —
// then the payload. Payloads are capped at [MaxPayload]; a decoder never
// allocates more than the cap, whatever the header says. EOF on the channel
// means the other side is gone.
package control

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Version is the protocol version this package speaks. A peer that sends
// another version is rejected, so a master and worker from different builds
// fail loudly instead of misreading each other.
//
// New message types do not change it: a frame's length is in its header,
// so a reader skips a type it does not know ([ErrType]) and reads on. A
// master and a worker of different builds meet during a reload (the worker
// runs the binary on disk); each ignores, with a warning, what only the
// newer one knows.
const Version = 1

// MaxPayload is the largest payload a frame may carry.
const MaxPayload = 4 << 20

const headerLen = 8

var magic = [2]byte{'G', 'F'}

// Type says what a message means.
type Type uint8

// The message types. Worker→master: Ready, Heartbeat, ListenersClosed, Retire,
// Metrics, Failed. Master→worker: Drain, Quit, CloseListeners, RequestLimit,
// Gather, Readiness, Pool.
const (
	// Ready: the worker is serving on every listener.
	TypeReady Type = 1
	// Heartbeat: the worker is alive; carries its counters.
	TypeHeartbeat Type = 2
	// Drain: stop accepting, finish in-flight requests within the deadline, exit 0.
	TypeDrain Type = 3
	// Quit: close everything now and exit.
	TypeQuit Type = 4
	// CloseListeners: stop accepting — close every listener — but serve the
	// connections already open as before, keep-alive included; answer
	// ListenersClosed. The first phase of a master's final stop: a Drain
	// follows.
	TypeCloseListeners Type = 5
	// ListenersClosed: the worker has closed every listener it held, in
	// answer to CloseListeners.
	TypeListenersClosed Type = 6
	// Retire: the worker asks to be replaced — it serves on until the
	// master drains it. Carries why (Reason) and the value that made it
	// ask (Value): a runaway request's duration in nanoseconds.
	TypeRetire Type = 7
	// RequestLimit: the worker's request limit for recycling (Requests);
	// the worker sends a heartbeat as soon as it has served that many, so
	// the master learns of it at once rather than at the next second.
	TypeRequestLimit Type = 8
	// Gather: send a Metrics snapshot now, tagged with Seq.
	TypeGather Type = 9
	// Metrics: the worker's metrics (Payload, an encoded snapshot), in
	// answer to the Gather numbered Seq; Final marks the last one a
	// draining worker sends after its last request (Seq 0).
	TypeMetrics Type = 10
	// Readiness: the pool's readiness as the master sees it (Ready): every
	// worker ready, no stop begun, not degraded; when it is not, Reason
	// says why (NotReadyShort, NotReadyStopping). Sent to every serving
	// worker when it changes and to each worker once it is ready, so that
	// a readiness handler in the workers answers for the pool.
	TypeReadiness Type = 11
	// Pool: the pool's totals (Active connections, InFlight handlers,
	// Workers serving) and the Fewest connections a serving worker holds,
	// so that a worker can tell whether it holds more than its fair share;
	// sent with each round of heartbeats.
	TypePool Type = 12
	// Failed: the worker is about to exit because of an error, whose text
	// is the Payload (at most MaxFailure bytes): its WorkerInit hook
	// failed, or a server could not serve. The master quotes it in the
	// worker's exit, so a failed boot says why whatever the program does
	// with its own logs.
	TypeFailed Type = 13
)

// MaxFailure bounds a Failed message's text.
const MaxFailure = 4 << 10

// metricsHead is the fixed part of a Metrics payload: Seq and Final.
const metricsHead = 9

// Reasons a worker asks to be retired (Message.Reason of TypeRetire).
const (
	// RetireRunaway: a handler ran past its request timeout and its
	// grace, and cannot be stopped; the goroutine goes with the worker.
	RetireRunaway uint8 = 1
)

// Why a pool is not ready (Message.Reason of TypeReadiness).
const (
	// NotReadyShort: fewer workers are ready than the pool should have.
	NotReadyShort uint8 = 1
	// NotReadyStopping: the master is stopping (its shutdown delay, then
	// the drain).
	NotReadyStopping uint8 = 2
)

// String names the type, as logs show it.
func (t Type) String() string {
	switch t {
	case TypeReady:
		return "ready"
	case TypeHeartbeat:
		return "heartbeat"
	case TypeDrain:
		return "drain"
	case TypeQuit:
		return "quit"
	case TypeCloseListeners:
		return "close listeners"
	case TypeListenersClosed:
		return "listeners closed"
	case TypeRetire:
		return "retire"
	case TypeRequestLimit:
		return "request limit"
	case TypeGather:
		return "gather"
	case TypeMetrics:
		return "metrics"
	case TypeReadiness:
		return "readiness"
	case TypePool:
		return "pool"
	case TypeFailed:
		return "failed"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Errors the decoder returns; wrapped with detail, test with errors.Is.
var (
	ErrMagic    = errors.New("control: bad magic")
	ErrVersion  = errors.New("control: unsupported protocol version")
	ErrTooLarge = errors.New("control: payload too large")
	ErrType     = errors.New("control: unknown message type")
	ErrPayload  = errors.New("control: malformed payload")
)

// Message is one decoded frame. Only the fields of its Type are meaningful.
type Message struct {
	Type Type
	// Heartbeat: requests served so far (RequestLimit: the limit),
	// connections open now, handlers
	// running now, and the process's resident set size in bytes (0 where
	// the worker cannot read it).
	Requests uint64
	Active   uint32
	InFlight uint32
	RSS      uint64
	// Retire: why, and the value that made the worker ask; Readiness:
	// why the pool is not ready.
	Reason uint8
	Value  uint64
	// Drain: how long in-flight requests may take.
	Deadline time.Duration
	// Gather and Metrics: the scrape's number; Metrics: the last
	// snapshot of a draining worker, and the snapshot's bytes (a string,
	// so that a Message stays comparable); Failed: the error's text.
	Seq     uint64
	Final   bool
	Payload string
	// Readiness: whether the pool is ready.
	Ready bool
	// Pool: how many workers serve (with Active and InFlight, the
	// pool's totals), and the fewest connections one of them holds.
	Workers uint32
	Fewest  uint32
}

// maxPayloadOf is the largest payload of the types whose payload varies
// (Metrics: its fixed part and a snapshot; Failed: a text), or 0.
func maxPayloadOf(t Type) int {
	switch t {
	case TypeMetrics:
		return MaxPayload
	case TypeFailed:
		return MaxFailure
	}
	return 0
}

// payloadLen is the exact payload size of each type as Append writes it
// (Metrics: its fixed part, which its snapshot follows; Failed: none
// before its text); any other size is malformed, except a heartbeat's
// first form and the variable part of Metrics and Failed, up to
// maxPayloadOf.
func payloadLen(t Type) (int, bool) {
	switch t {
	case TypeMetrics:
		return metricsHead, true
	case TypeReady, TypeQuit, TypeCloseListeners, TypeListenersClosed, TypeFailed:
		return 0, true
	case TypeHeartbeat:
		return heartbeatLen, true
	case TypeDrain, TypeRequestLimit, TypeGather:
		return 8, true
	case TypeRetire:
		return 9, true
	case TypeReadiness:
		return 2, true
	case TypePool:
		return poolLen, true
	}
	return 0, false
}

// A heartbeat is 24 bytes: Requests, Active, InFlight, RSS. Its first
// form, 12 bytes (Requests, Active), is still read, with InFlight and RSS
// zero: a worker of an older build, started by a reload, keeps its
// supervision.
const (
	heartbeatLen   = 24
	heartbeatLenV1 = 12
)

// A Pool message is 16 bytes: Active, InFlight, Workers, Fewest. Its first
// form, 12 bytes (no Fewest), is still read, with Fewest set to Active: a
// worker of this build, started by an older master's reload, then never
// holds back for a worker with fewer connections, as before.
const (
	poolLen   = 16
	poolLenV1 = 12
)

// Append encodes m as a frame appended to b.
func Append(b []byte, m Message) ([]byte, error) {
	n, ok := payloadLen(m.Type)
	if !ok {
		return b, fmt.Errorf("%w: %d", ErrType, m.Type)
	}
	if limit := maxPayloadOf(m.Type); limit > 0 {
		if n+len(m.Payload) > limit {
			return b, fmt.Errorf("%w: a %d-byte %s payload (max %d)", ErrTooLarge, len(m.Payload), m.Type, limit-n)
		}
		n += len(m.Payload)
	}
	b = append(b, magic[0], magic[1], Version, byte(m.Type))
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	switch m.Type {
	case TypeHeartbeat:
		b = binary.BigEndian.AppendUint64(b, m.Requests)
		b = binary.BigEndian.AppendUint32(b, m.Active)
		b = binary.BigEndian.AppendUint32(b, m.InFlight)
		b = binary.BigEndian.AppendUint64(b, m.RSS)
	case TypeRequestLimit:
		b = binary.BigEndian.AppendUint64(b, m.Requests)
	case TypeGather:
		b = binary.BigEndian.AppendUint64(b, m.Seq)
	case TypeMetrics:
		b = binary.BigEndian.AppendUint64(b, m.Seq)
		b = append(b, boolByte(m.Final))
		b = append(b, m.Payload...)
	case TypeFailed:
		b = append(b, m.Payload...)
	case TypeRetire:
		b = append(b, m.Reason)
		b = binary.BigEndian.AppendUint64(b, m.Value)
	case TypeDrain:
		b = binary.BigEndian.AppendUint64(b, uint64(m.Deadline))
	case TypeReadiness:
		b = append(b, boolByte(m.Ready), m.Reason)
	case TypePool:
		b = binary.BigEndian.AppendUint32(b, m.Active)
		b = binary.BigEndian.AppendUint32(b, m.InFlight)
		b = binary.BigEndian.AppendUint32(b, m.Workers)
		b = binary.BigEndian.AppendUint32(b, m.Fewest)
	}
	return b, nil
}

// Write encodes m and writes it to w in one call.
func Write(w io.Writer, m Message) error {
	b, err := Append(make([]byte, 0, headerLen+heartbeatLen), m)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// Read reads one frame from r. It returns io.EOF only when r ends cleanly
// between frames; a frame cut short is io.ErrUnexpectedEOF.
//
// A well-formed frame of a type this build does not know is read whole and
// returned as an error wrapping [ErrType], with the Message's Type set: r
// stays at a frame boundary, so the caller may skip it and read on. Every
// other error leaves r out of step.
func Read(r io.Reader) (Message, error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Message{}, err
	}
	t, n, err := parseHeader(h)
	if errors.Is(err, ErrType) {
		// n is within MaxPayload: skip the payload without holding it.
		if _, cerr := io.CopyN(io.Discard, r, int64(n)); cerr != nil {
			if cerr == io.EOF {
				cerr = io.ErrUnexpectedEOF
			}
			return Message{}, cerr
		}
		return Message{Type: t}, err
	}
	if err != nil {
		return Message{}, err
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Message{}, err
	}
	return decodePayload(t, p)
}

func parseHeader(h [headerLen]byte) (Type, uint32, error) {
	if h[0] != magic[0] || h[1] != magic[1] {
		return 0, 0, fmt.Errorf("%w: % x", ErrMagic, h[:2])
	}
	if h[2] != Version {
		return 0, 0, fmt.Errorf("%w: %d (want %d)", ErrVersion, h[2], Version)
	}
	t := Type(h[3])
	n := binary.BigEndian.Uint32(h[4:])
	if n > MaxPayload {
		return 0, 0, fmt.Errorf("%w: %d bytes (max %d)", ErrTooLarge, n, MaxPayload)
	}
	want, ok := payloadLen(t)
	if !ok {
		return t, n, fmt.Errorf("%w: %d", ErrType, h[3])
	}
	if limit := maxPayloadOf(t); limit > 0 {
		if int(n) < want || int(n) > limit {
			return 0, 0, fmt.Errorf("%w: %s with %d bytes (want %d to %d)", ErrPayload, t, n, want, limit)
		}
		return t, n, nil
	}
	if int(n) != want && !(t == TypeHeartbeat && n == heartbeatLenV1) && !(t == TypePool && n == poolLenV1) {
		return 0, 0, fmt.Errorf("%w: %s with %d bytes (want %d)", ErrPayload, t, n, want)
	}
	return t, n, nil
}

func decodePayload(t Type, p []byte) (Message, error) {
	m := Message{Type: t}
	switch t {
	case TypeHeartbeat:
		m.Requests = binary.BigEndian.Uint64(p)
		m.Active = binary.BigEndian.Uint32(p[8:])
		if len(p) == heartbeatLen {
			m.InFlight = binary.BigEndian.Uint32(p[12:])
			m.RSS = binary.BigEndian.Uint64(p[16:])
		}
	case TypeRetire:
		m.Reason, m.Value = p[0], binary.BigEndian.Uint64(p[1:])
	case TypeRequestLimit:
		m.Requests = binary.BigEndian.Uint64(p)
	case TypeGather:
		m.Seq = binary.BigEndian.Uint64(p)
	case TypeMetrics:
		if p[8] > 1 {
			return Message{}, fmt.Errorf("%w: metrics final flag %d", ErrPayload, p[8])
		}
		m.Seq, m.Final, m.Payload = binary.BigEndian.Uint64(p), p[8] == 1, string(p[metricsHead:])
	case TypeFailed:
		m.Payload = string(p)
	case TypeDrain:
		d := binary.BigEndian.Uint64(p)
		if d > uint64(1<<63-1) {
			return Message{}, fmt.Errorf("%w: drain deadline %d overflows", ErrPayload, d)
		}
		m.Deadline = time.Duration(d)
	case TypeReadiness:
		if p[0] > 1 {
			return Message{}, fmt.Errorf("%w: readiness flag %d", ErrPayload, p[0])
		}
		m.Ready, m.Reason = p[0] == 1, p[1]
	case TypePool:
		m.Active = binary.BigEndian.Uint32(p)
		m.InFlight = binary.BigEndian.Uint32(p[4:])
		m.Workers = binary.BigEndian.Uint32(p[8:])
		m.Fewest = m.Active
		if len(p) == poolLen {
			m.Fewest = binary.BigEndian.Uint32(p[12:])
		}
	}
	return m, nil
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}
