package control

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	msgs := []Message{
		{Type: TypeReady},
		{Type: TypeHeartbeat, Requests: 1<<40 + 7, Active: 3, InFlight: 2, RSS: 1<<33 + 5},
		{Type: TypeDrain, Deadline: 30 * time.Second},
		{Type: TypeRetire, Reason: RetireRunaway, Value: uint64(31 * time.Second)},
		{Type: TypeRequestLimit, Requests: 20000},
		{Type: TypeGather, Seq: 7},
		{Type: TypeMetrics, Seq: 7, Payload: "\x01snapshot"},
		{Type: TypeMetrics, Final: true},
		{Type: TypeQuit},
		{Type: TypeCloseListeners},
		{Type: TypeListenersClosed},
		{Type: TypeReadiness, Ready: true},
		{Type: TypeReadiness, Reason: NotReadyStopping},
		{Type: TypePool, Active: 300, InFlight: 12, Workers: 4, Fewest: 70},
		{Type: TypeFailed, Payload: "WorkerInit: dial tcp 10.0.0.5:5432: connection refused"},
		{Type: TypeFailed},
	}
	var buf bytes.Buffer
	for _, m := range msgs {
		if err := Write(&buf, m); err != nil {
			t.Fatalf("Write(%+v): %v", m, err)
		}
	}
	for _, want := range msgs {
		got, err := Read(&buf)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if got != want {
			t.Fatalf("Read = %+v, want %+v", got, want)
		}
	}
	if _, err := Read(&buf); err != io.EOF {
		t.Fatalf("Read at end = %v, want io.EOF", err)
	}
}

func TestReadRejects(t *testing.T) {
	valid, _ := Append(nil, Message{Type: TypeDrain, Deadline: time.Second})
	mut := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), valid...))
	}
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"magic", mut(func(b []byte) []byte { b[0] = 'X'; return b }), ErrMagic},
		{"version", mut(func(b []byte) []byte { b[2] = 9; return b }), ErrVersion},
		{"type", mut(func(b []byte) []byte { b[3] = 200; return b }), ErrType},
		{"too large", mut(func(b []byte) []byte { b[4] = 0xff; return b }), ErrTooLarge},
		{"wrong size", mut(func(b []byte) []byte { b[7] = 4; return b[:12] }), ErrPayload},
		{"overflow", mut(func(b []byte) []byte { b[8] = 0xff; return b }), ErrPayload},
		{"cut header", valid[:5], io.ErrUnexpectedEOF},
		{"cut payload", valid[:10], io.ErrUnexpectedEOF},
		{"readiness flag", func() []byte { b, _ := Append(nil, Message{Type: TypeReadiness}); b[8] = 2; return b }(), ErrPayload},
	}
	for _, c := range cases {
		_, err := Read(bytes.NewReader(c.in))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: Read = %v, want %v", c.name, err, c.want)
		}
	}
}

// A frame of a type this build does not know — one a newer peer sends
// during a reload across builds — is read whole: the next frame reads fine.
func TestReadSkipsUnknownType(t *testing.T) {
	var buf bytes.Buffer
	buf.Write([]byte("GF\x01\xc8\x00\x00\x00\x03abc")) // type 200, 3 bytes
	Write(&buf, Message{Type: TypeQuit})
	m, err := Read(&buf)
	if !errors.Is(err, ErrType) || m.Type != 200 {
		t.Fatalf("Read(type 200) = %+v, %v; want type 200 and ErrType", m, err)
	}
	if m, err := Read(&buf); err != nil || m.Type != TypeQuit {
		t.Fatalf("Read after the unknown frame = %+v, %v; want quit", m, err)
	}
	// Cut short, it is still a cut frame.
	if _, err := Read(bytes.NewReader([]byte("GF\x01\xc8\x00\x00\x00\x03a"))); err != io.ErrUnexpectedEOF {
		t.Fatalf("Read(cut unknown frame) = %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestTypeStrings(t *testing.T) {
	for typ, want := range map[Type]string{
		TypeReady: "ready", TypeHeartbeat: "heartbeat", TypeDrain: "drain", TypeQuit: "quit",
		TypeCloseListeners: "close listeners", TypeListenersClosed: "listeners closed", TypeFailed: "failed", 200: "type(200)",
	} {
		if got := typ.String(); got != want {
			t.Errorf("Type(%d).String() = %q, want %q", uint8(typ), got, want)
		}
	}
}

func TestAppendUnknownType(t *testing.T) {
	if _, err := Append(nil, Message{Type: 99}); !errors.Is(err, ErrType) {
		t.Fatalf("Append(type 99) = %v, want ErrType", err)
	}
}

// FuzzRead: the decoder never panics, never reads past its cap, and what it
// accepts re-encodes to the very bytes it consumed.
func FuzzRead(f *testing.F) {
	for _, m := range []Message{
		{Type: TypeReady}, {Type: TypeQuit},
		{Type: TypeHeartbeat, Requests: 42, Active: 2, InFlight: 1, RSS: 9 << 20},
		{Type: TypeDrain, Deadline: time.Minute},
		{Type: TypeRetire, Reason: RetireRunaway, Value: 7},
		{Type: TypeRequestLimit, Requests: 1000},
		{Type: TypeGather, Seq: 3},
		{Type: TypeMetrics, Seq: 3, Final: true, Payload: "\x01\x05abcde"},
		{Type: TypeCloseListeners}, {Type: TypeListenersClosed},
		{Type: TypeReadiness, Ready: true}, {Type: TypePool, Active: 9, InFlight: 2, Workers: 2, Fewest: 4},
		{Type: TypeFailed, Payload: "WorkerInit: no database"},
	} {
		b, _ := Append(nil, m)
		f.Add(b)
	}
	f.Add([]byte("GF\x01\x02\xff\xff\xff\xff"))
	f.Add([]byte("GF\x01\xc8\x00\x00\x00\x03abcGF\x01\x04\x00\x00\x00\x00"))                    // unknown type, then quit
	f.Add([]byte("GF\x01\x02\x00\x00\x00\x0c\x00\x00\x00\x00\x00\x00\x00\x2a\x00\x00\x00\x02")) // a heartbeat's first form
	f.Add([]byte("GF\x01\x0c\x00\x00\x00\x0c\x00\x00\x00\x09\x00\x00\x00\x02\x00\x00\x00\x02")) // a pool message's first form
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		m, err := Read(r)
		if errors.Is(err, ErrType) {
			// Skipped whole: exactly the header and the length it names.
			used := len(in) - r.Len()
			if used < headerLen || used != headerLen+int(binary.BigEndian.Uint32(in[4:8])) {
				t.Fatalf("unknown type %d: consumed %d bytes of %x", m.Type, used, in)
			}
			return
		}
		if err != nil {
			return
		}
		used := len(in) - r.Len()
		again, err := Append(nil, m)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		if m.Type == TypeHeartbeat && used == headerLen+heartbeatLenV1 {
			// The first form: its fields re-encode in the current one.
			if m.InFlight != 0 || m.RSS != 0 || !bytes.Equal(again[8:20], in[8:20]) {
				t.Fatalf("first-form heartbeat %x decoded as %+v", in[:used], m)
			}
			return
		}
		if m.Type == TypePool && used == headerLen+poolLenV1 {
			// The first form: Fewest is Active, the rest re-encodes.
			if m.Fewest != m.Active || !bytes.Equal(again[8:20], in[8:20]) {
				t.Fatalf("first-form pool message %x decoded as %+v", in[:used], m)
			}
			return
		}
		if !bytes.Equal(again, in[:used]) {
			t.Fatalf("re-encoding %+v = %x, consumed %x", m, again, in[:used])
		}
	})
}

func BenchmarkAppendHeartbeat(b *testing.B) {
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = Append(buf[:0], Message{Type: TypeHeartbeat, Requests: 1e6, Active: 10})
	}
}

func BenchmarkReadHeartbeat(b *testing.B) {
	frame, _ := Append(nil, Message{Type: TypeHeartbeat, Requests: 1e6, Active: 10})
	r := bytes.NewReader(frame)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(frame)
		if _, err := Read(r); err != nil {
			b.Fatal(err)
		}
	}
}

// A heartbeat in its first, 12-byte form — from a worker of an older build
// that a reload started — still reads, with InFlight and RSS zero.
func TestHeartbeatFirstForm(t *testing.T) {
	in := []byte("GF\x01\x02\x00\x00\x00\x0c")
	in = binary.BigEndian.AppendUint64(in, 42)
	in = binary.BigEndian.AppendUint32(in, 3)
	m, err := Read(bytes.NewReader(in))
	if err != nil {
		t.Fatalf("Read = %v", err)
	}
	if want := (Message{Type: TypeHeartbeat, Requests: 42, Active: 3}); m != want {
		t.Fatalf("Read = %+v, want %+v", m, want)
	}
}

// A Metrics frame carries a snapshot of any size up to the cap; its final
// flag is 0 or 1, and a snapshot over the cap is refused when written.
func TestMetricsFrame(t *testing.T) {
	b, err := Append(nil, Message{Type: TypeMetrics, Seq: 1, Final: true, Payload: "x"})
	if err != nil {
		t.Fatal(err)
	}
	b[headerLen+8] = 2
	if _, err := Read(bytes.NewReader(b)); !errors.Is(err, ErrPayload) {
		t.Fatalf("final flag 2: %v, want ErrPayload", err)
	}
	short := []byte("GF\x01\x0a\x00\x00\x00\x04abcd")
	if _, err := Read(bytes.NewReader(short)); !errors.Is(err, ErrPayload) {
		t.Fatalf("4-byte metrics payload: %v, want ErrPayload", err)
	}
	big := strings.Repeat("m", MaxPayload-metricsHead)
	if _, err := Append(nil, Message{Type: TypeMetrics, Payload: big}); err != nil {
		t.Fatalf("a snapshot at the cap: %v", err)
	}
	if _, err := Append(nil, Message{Type: TypeMetrics, Payload: big + "m"}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a snapshot over the cap: %v, want ErrTooLarge", err)
	}
}

// A Failed frame carries a text of any size up to MaxFailure; a longer
// one is refused when written and when read.
func TestFailedFrame(t *testing.T) {
	text := strings.Repeat("e", MaxFailure)
	b, err := Append(nil, Message{Type: TypeFailed, Payload: text})
	if err != nil {
		t.Fatalf("a text at the cap: %v", err)
	}
	if m, err := Read(bytes.NewReader(b)); err != nil || m.Payload != text {
		t.Fatalf("Read = %d bytes, %v", len(m.Payload), err)
	}
	if _, err := Append(nil, Message{Type: TypeFailed, Payload: text + "e"}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a text over the cap: %v, want ErrTooLarge", err)
	}
	over := binary.BigEndian.AppendUint32([]byte("GF\x01\x0d"), MaxFailure+1)
	over = append(over, text+"e"...)
	if _, err := Read(bytes.NewReader(over)); !errors.Is(err, ErrPayload) {
		t.Fatalf("Read(a text over the cap) = %v, want ErrPayload", err)
	}
}
