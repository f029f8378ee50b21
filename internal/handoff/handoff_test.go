package handoff

import (
	"slices"
	"strings"
	"testing"
)

// The contract round-trips: the master's spec, put into a worker's
// environment the way the master builds it, reads back in the worker as
// the same spec, in the standard descriptor layout.
func TestRoundTripThroughEnvironment(t *testing.T) {
	master := []string{"PATH=/bin", Env + "=stale", "LISTEN_FDS=2", TableflipParentEnv + "=1", "HOME=/root"}
	sent := NewSpec(3, 17, 2, 1)
	env := append(WorkerEnviron(master), sent.EnvEntry())
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := vars[k]; dup {
			t.Fatalf("%s appears twice in the worker's environment %v", k, env)
		}
		vars[k] = v
	}
	got, ok, err := Lookup(func(k string) string { return vars[k] })
	if !ok || err != nil {
		t.Fatalf("Lookup = %v, %v", ok, err)
	}
	want := Spec{Slot: 3, Gen: 17, Ctl: ControlFd, Fds: []int{FirstListenerFd, FirstListenerFd + 1}, Procs: 1}
	if got.Slot != want.Slot || got.Gen != want.Gen || got.Ctl != want.Ctl || !slices.Equal(got.Fds, want.Fds) || got.Procs != want.Procs {
		t.Fatalf("the worker reads %+v, want %+v", got, want)
	}
	if len(vars) != 3 { // PATH, HOME, the marker
		t.Fatalf("worker environment %v keeps a master's variable", env)
	}
}

func TestLookupAbsentAndMalformed(t *testing.T) {
	if _, ok, err := Lookup(func(string) string { return "" }); ok || err != nil {
		t.Fatalf("no marker: %v, %v", ok, err)
	}
	_, ok, err := Lookup(func(string) string { return "1" })
	if !ok || err == nil || !strings.Contains(err.Error(), Env+`="1" is malformed`) {
		t.Fatalf("garbage marker: %v, %v", ok, err)
	}
}

func TestParseRejects(t *testing.T) {
	bad := map[string]string{
		"":                                      "version",
		"1":                                     "version",
		"v1":                                    "0 fields",
		"v2;slot=0;gen=1;ctl=3;fds=4;procs=0":   `version "v2"`,
		"v1;slot=0;gen=1;ctl=3;fds=4":           "4 fields",
		"v1;gen=1;slot=0;ctl=3;fds=4;procs=0":   "want slot=",
		"v1;slot=-1;gen=1;ctl=3;fds=4;procs=0":  "slot:",
		"v1;slot=x;gen=1;ctl=3;fds=4;procs=0":   "slot:",
		"v1;slot=0;gen=1;ctl=1;fds=4;procs=0":   "standard stream",
		"v1;slot=0;gen=1;ctl=3;fds=;procs=0":    "no listener",
		"v1;slot=0;gen=1;ctl=3;fds=4,2;procs=0": `"2" is not a descriptor`,
		"v1;slot=0;gen=1;ctl=3;fds=4;procs=99999999999": "procs:",
	}
	for in, want := range bad {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want it to say %q", in, err, want)
		}
	}
}

func TestWorkerEnvironStripsPrivateVariables(t *testing.T) {
	in := []string{"PATH=/bin", Env + "=v1", "LISTEN_FDS=2", "LISTEN_PID=9", "NOTIFY_SOCKET=/run/x",
		TableflipParentEnv + "=1", "LISTEN_FDSX=keep", "HOME=/root"}
	got := WorkerEnviron(in)
	want := []string{"PATH=/bin", "LISTEN_FDSX=keep", "HOME=/root"}
	if !slices.Equal(got, want) {
		t.Fatalf("WorkerEnviron = %v, want %v", got, want)
	}
}

// FuzzParseSpec: the marker parser never panics, and what it accepts
// encodes back to the same text.
func FuzzParseSpec(f *testing.F) {
	f.Add(NewSpec(0, 1, 1, 1).Encode())
	f.Add(NewSpec(12, 99, 3, 0).Encode())
	f.Add("v1;slot=0;gen=1;ctl=3;fds=4,;procs=0")
	f.Add("1")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse(in)
		if err != nil {
			return
		}
		if s.Encode() != in {
			// Leading zeros or "+" read as numbers; only the canonical form must round-trip.
			if again, err := Parse(s.Encode()); err != nil || again.Encode() != s.Encode() {
				t.Fatalf("Parse(%q) = %+v, which does not round-trip", in, s)
			}
		}
	})
}

// Parse accepts exactly what Encode writes: no descriptor named twice (the
// worker closes each it takes over) and no number in another spelling.
func TestParseAcceptsOnlyCanonical(t *testing.T) {
	for _, in := range []string{
		"v1;slot=0;gen=1;ctl=3;fds=4,4;procs=0",
		"v1;slot=0;gen=1;ctl=4;fds=4;procs=0",
		"v1;slot=+0;gen=-0;ctl=03;fds=+4;procs=0",
	} {
		if s, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) accepted: %+v", in, s)
		}
	}
}
