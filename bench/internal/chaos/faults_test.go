package chaos

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFaults(t *testing.T) {
	s := time.Second
	ms := time.Millisecond
	tests := []struct {
		in   string
		want []Fault
	}{
		{"", nil},
		{" ; ;", nil},
		{"at=3s action=hup", []Fault{{3 * s, ActHUP}}},
		{"action=KILL9 at=500ms", []Fault{{500 * ms, ActKill9}}},
		{"at=5s action=kill9; at=3s action=hup", []Fault{{3 * s, ActHUP}, {5 * s, ActKill9}}},
		{"every=1.5s from=2s count=3 action=ttin", []Fault{{2 * s, ActTTIN}, {3500 * ms, ActTTIN}, {5 * s, ActTTIN}}},
		{"every=1s count=2 action=stop", []Fault{{s, ActStop}, {2 * s, ActStop}}},
		{"every=1s from=0s count=2 action=ttin; every=1s from=500ms count=2 action=ttou",
			[]Fault{{0, ActTTIN}, {500 * ms, ActTTOU}, {s, ActTTIN}, {1500 * ms, ActTTOU}}},
		{"at=1s action=usr2; at=1s action=term", []Fault{{s, ActUSR2}, {s, ActTerm}}},
	}
	for _, tt := range tests {
		got, err := ParseFaults(tt.in)
		if err != nil {
			t.Errorf("ParseFaults(%q): %v", tt.in, err)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("ParseFaults(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParseFaultsErrors(t *testing.T) {
	tests := []struct{ in, wantErr string }{
		{"at=3s", "missing action"},
		{"at=3s action=reboot", "unknown action"},
		{"at=3 action=hup", "missing unit"},
		{"at=-1s action=hup", "out of range"},
		{"at=48h action=hup", "out of range"},
		{"action=hup", "need at= or every="},
		{"every=1s action=hup", "needs count="},
		{"every=0s count=2 action=hup", "every must be > 0"},
		{"every=1s count=0 action=hup", "count must be"},
		{"every=1s count=10001 action=hup", "count must be"},
		{"every=1s count=x action=hup", "count must be"},
		{"at=1s action=hup color=red", "unexpected keys [color]"},
		{"at=1s every=1s action=hup", "unexpected keys [every]"},
		{"at=1s at=2s action=hup", "given twice"},
		{"at=1s action=hup junk", "not key=value"},
		{"at= action=hup", "not key=value"},
		{"every=1ms count=6000 action=hup; every=1ms count=6000 action=ttin", "more than 10000"},
		{"at=1s action=hup; at=x action=hup", "fault entry 2"},
	}
	for _, tt := range tests {
		_, err := ParseFaults(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseFaults(%q) error = %v, want containing %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestScenariosParse(t *testing.T) {
	counts := map[string]int{"steady": 0, "reload": 10, "crash": 10, "upgrade": 5, "scale": 20, "stop": 1, "stop-single": 1, "smoke": 2}
	for _, sc := range Scenarios {
		fs, err := ParseFaults(sc.Faults)
		if err != nil {
			t.Fatalf("scenario %s: %v", sc.Name, err)
		}
		if len(fs) != counts[sc.Name] {
			t.Errorf("scenario %s has %d faults, want %d", sc.Name, len(fs), counts[sc.Name])
		}
		for _, f := range fs {
			if f.At >= sc.Duration {
				t.Errorf("scenario %s: fault %v after its duration %s", sc.Name, f, sc.Duration)
			}
		}
		if _, err := LookupScenario(sc.Name); err != nil {
			t.Error(err)
		}
	}
	if _, err := LookupScenario("nope"); err == nil {
		t.Error("LookupScenario(nope) succeeded")
	}
}

// TestStopScenarioSchedule checks the stop scenario's schedule: one
// SIGTERM after a steady baseline, then enough load for what comes after
// the drain to be seen, with bounds that make a dropped SYN a dial
// timeout and a request stuck in a backlog a response timeout before the
// run ends.
func TestStopScenarioSchedule(t *testing.T) {
	sc, err := LookupScenario("stop")
	if err != nil {
		t.Fatal(err)
	}
	fs, err := ParseFaults(sc.Faults)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Fault{{3 * time.Second, ActTerm}}; !slices.Equal(fs, want) {
		t.Fatalf("stop faults = %v, want %v", fs, want)
	}
	if sc.Duration != 6*time.Second || sc.Targets != AllTargets {
		t.Errorf("stop runs %s on %s, want 6s on %s", sc.Duration, sc.Targets, AllTargets)
	}
	const warmup, synRetransmit = time.Second, time.Second // cmd/chaos's -warmup, Linux's first SYN RTO
	if fs[0].At-warmup < 2*time.Second {
		t.Errorf("steady window before the TERM is %s, want at least 2s", fs[0].At-warmup)
	}
	if sc.DialTimeout <= 0 || sc.DialTimeout >= synRetransmit {
		t.Errorf("dial timeout %s must be in (0, %s): a dropped SYN must show as a dial timeout", sc.DialTimeout, synRetransmit)
	}
	if sc.Timeout <= sc.DialTimeout {
		t.Errorf("request timeout %s must exceed the dial timeout %s", sc.Timeout, sc.DialTimeout)
	}
	if after := sc.Duration - fs[0].At; after < sc.Timeout+sc.DialTimeout {
		t.Errorf("load runs %s after the TERM, less than a dial plus a request deadline (%s)", after, sc.Timeout+sc.DialTimeout)
	}
}

// FuzzParseFaults checks that the parser never panics, that what it
// accepts is bounded, sorted and valid, and that rendering the result
// with Fault.String parses back to the same schedule.
func FuzzParseFaults(f *testing.F) {
	for _, seed := range []string{
		"", "at=3s action=hup", "at=3s action=hup; at=5s action=kill9",
		"every=1.5s from=2s count=10 action=hup", "every=1s count=2 action=stop; at=0s action=term",
		"at=1h2m3.5s action=usr2", "every=1ns count=10000 action=ttou", "at=3s action=hup;;;",
		"at=3s=4 action=hup", "action= at=", "every=-1s count=1 action=hup", "\x00=\x00",
	} {
		f.Add(seed)
	}
	for _, sc := range Scenarios {
		f.Add(sc.Faults)
	}
	f.Fuzz(func(t *testing.T, in string) {
		fs, err := ParseFaults(in)
		if err != nil {
			return
		}
		if len(fs) > MaxFaults {
			t.Fatalf("%d faults > MaxFaults", len(fs))
		}
		var parts []string
		for i, x := range fs {
			if !slices.Contains(Actions, x.Action) {
				t.Fatalf("invalid action %q", x.Action)
			}
			if x.At < 0 || (i > 0 && x.At < fs[i-1].At) {
				t.Fatalf("unsorted or negative: %v", fs)
			}
			parts = append(parts, x.String())
		}
		again, err := ParseFaults(strings.Join(parts, "; "))
		if err != nil {
			t.Fatalf("re-parse of %v: %v", fs, err)
		}
		if !slices.Equal(again, fs) {
			t.Fatalf("round trip: %v != %v", again, fs)
		}
	})
}
