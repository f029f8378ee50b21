package control

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	msgs := []Message{
		{Type: TypeReady},
		{Type: TypeHeartbeat, Requests: 1<<40 + 7, Active: 3},
		{Type: TypeDrain, Deadline: 30 * time.Second},
		{Type: TypeQuit},
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
	}
	for _, c := range cases {
		_, err := Read(bytes.NewReader(c.in))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: Read = %v, want %v", c.name, err, c.want)
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
		{Type: TypeHeartbeat, Requests: 42, Active: 2},
		{Type: TypeDrain, Deadline: time.Minute},
	} {
		b, _ := Append(nil, m)
		f.Add(b)
	}
	f.Add([]byte("GF\x01\x02\xff\xff\xff\xff"))
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		m, err := Read(r)
		if err != nil {
			return
		}
		used := len(in) - r.Len()
		again, err := Append(nil, m)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", m, err)
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
