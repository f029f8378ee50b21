package prefork

import (
	"slices"
	"strings"
	"testing"
)

func TestSpecRoundTrip(t *testing.T) {
	s := spec{slot: 3, gen: 17, ctl: 3, fds: []int{4, 5}, procs: 1}
	got, err := parseSpec(s.encode())
	if err != nil || got.slot != 3 || got.gen != 17 || got.ctl != 3 || !slices.Equal(got.fds, s.fds) || got.procs != 1 {
		t.Fatalf("parseSpec(%q) = %+v, %v", s.encode(), got, err)
	}
}

func TestParseSpecRejects(t *testing.T) {
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
		if _, err := parseSpec(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseSpec(%q) = %v, want it to say %q", in, err, want)
		}
	}
}

func TestLeakedMarkerIsExplained(t *testing.T) {
	env := map[string]string{markerEnv: "1"}
	unset := false
	defer func(s bool, sp spec, e error) { markerSet, mySpec, markerErr = s, sp, e }(markerSet, mySpec, markerErr)
	readMarker(func(k string) string { return env[k] }, func(string) error { unset = true; return nil })
	if !unset || !IsWorker() || WorkerID() != -1 {
		t.Fatalf("unset=%v IsWorker=%v WorkerID=%d", unset, IsWorker(), WorkerID())
	}
	err := serveWorker(nil, Options{Addr: ":0"})
	for _, want := range []string{markerEnv + `="1" is malformed`, "leaked", "unset " + markerEnv} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
}

// FuzzParseSpec: the marker parser never panics, and what it accepts
// encodes back to the same text.
func FuzzParseSpec(f *testing.F) {
	f.Add(spec{slot: 0, gen: 1, ctl: 3, fds: []int{4}, procs: 1}.encode())
	f.Add(spec{slot: 12, gen: 99, ctl: 3, fds: []int{4, 5, 6}}.encode())
	f.Add("v1;slot=0;gen=1;ctl=3;fds=4,;procs=0")
	f.Add("1")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := parseSpec(in)
		if err != nil {
			return
		}
		if s.encode() != in {
			// Leading zeros or "+" read as numbers; only the canonical form must round-trip.
			if again, err := parseSpec(s.encode()); err != nil || again.encode() != s.encode() {
				t.Fatalf("parseSpec(%q) = %+v, which does not round-trip", in, s)
			}
		}
	})
}
