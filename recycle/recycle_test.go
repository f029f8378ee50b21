package recycle

import (
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		p    Policy
		want string // "" for valid
	}{
		{Policy{}, ""},
		{Policy{MaxRequests: 1000, MaxRequestsJitter: 50, MaxAge: time.Hour, MaxAgeJitter: time.Minute, MaxMemory: 1 << 30, MemorySamples: 5, MinInterval: time.Second}, ""},
		{Policy{MinInterval: time.Minute}, ""}, // spaces runaway recycles
		{Policy{MaxAge: -time.Second}, "recycle: MaxAge = -1s: must not be negative"},
		{Policy{MaxAge: time.Hour, MaxAgeJitter: -time.Minute}, "recycle: MaxAgeJitter = -1m0s: must not be negative"},
		{Policy{MinInterval: -1}, "recycle: MinInterval = -1ns: must not be negative"},
		{Policy{MaxMemory: 1, MemorySamples: -2}, "recycle: MemorySamples = -2: must not be negative"},
		{Policy{MaxRequestsJitter: 50}, "recycle: MaxRequestsJitter = 50: needs MaxRequests"},
		{Policy{MaxAgeJitter: time.Minute}, "recycle: MaxAgeJitter = 1m0s: needs MaxAge"},
		{Policy{MemorySamples: 3}, "recycle: MemorySamples = 3: needs MaxMemory"},
		{Policy{MaxRequests: ^uint64(0), MaxRequestsJitter: 1}, "recycle: MaxRequestsJitter = 1: overflows"},
		{Policy{MaxAge: time.Duration(1<<63 - 1), MaxAgeJitter: 1}, "recycle: MaxAgeJitter = 1ns: overflows"},
	}
	for _, c := range cases {
		err := c.p.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: %v", c.p, err)
		case c.want != "" && (err == nil || !strings.HasPrefix(err.Error(), c.want)):
			t.Errorf("%+v: %v, want %q", c.p, err, c.want)
		}
	}
}

// The jitter is a draw from [0, jitter], inclusive, from the Policy's Rand.
func TestTrackDrawsJitter(t *testing.T) {
	for _, pick := range []string{"low", "high"} {
		var asked []uint64
		p := Policy{MaxRequests: 1000, MaxRequestsJitter: 50, MaxAge: time.Hour, MaxAgeJitter: time.Minute, MaxMemory: 1 << 30,
			Rand: func(n uint64) uint64 {
				asked = append(asked, n)
				if pick == "low" {
					return 0
				}
				return n - 1
			}}
		lim := p.Track().Limits()
		want := Limits{Requests: 1000, Age: time.Hour, Memory: 1 << 30, Samples: DefaultMemorySamples}
		if pick == "high" {
			want.Requests, want.Age = 1050, time.Hour+time.Minute
		}
		if lim != want {
			t.Errorf("%s draw: %+v, want %+v", pick, lim, want)
		}
		if len(asked) != 2 || asked[0] != 51 || asked[1] != uint64(time.Minute)+1 {
			t.Errorf("Rand asked for %v", asked)
		}
	}
	// The default source stays within the bounds.
	p := Policy{MaxRequests: 10, MaxRequestsJitter: 3}
	for range 200 {
		if n := p.Track().Limits().Requests; n < 10 || n > 13 {
			t.Fatalf("limit %d outside [10, 13]", n)
		}
	}
	if lim := (Policy{MaxAge: time.Second}).Track().Limits(); lim != (Limits{Age: time.Second}) {
		t.Fatalf("no jitter: %+v", lim)
	}
}

func TestCheck(t *testing.T) {
	tr := Policy{MaxRequests: 100, MaxAge: time.Hour, MaxMemory: 1000, MemorySamples: 2}.Track()
	steps := []struct {
		u    Usage
		want Due
	}{
		{Usage{Requests: 99, Age: time.Minute, RSS: 1001}, Due{}}, // one sample over
		{Usage{Requests: 99, Age: time.Minute, RSS: 900}, Due{}},  // back under: the count restarts
		{Usage{Requests: 99, Age: time.Minute, RSS: 1001}, Due{}},
		{Usage{Requests: 99, Age: time.Minute, RSS: 1002}, Due{Memory, 1002, 1000}},
		{Usage{Requests: 100}, Due{Requests, 100, 100}},
		{Usage{Age: time.Hour}, Due{Age, uint64(time.Hour), uint64(time.Hour)}},
		{Usage{RSS: 1000}, Due{}}, // at the limit is not over it
	}
	for i, s := range steps {
		d, ok := tr.Check(s.u)
		if d != s.want || ok != (s.want != Due{}) {
			t.Fatalf("step %d: Check(%+v) = %+v %v, want %+v", i, s.u, d, ok, s.want)
		}
	}
	if d, ok := (Policy{}).Track().Check(Usage{Requests: 1 << 40, Age: 1 << 62, RSS: 1 << 40}); ok {
		t.Fatalf("the zero Policy recycles: %+v", d)
	}
}

func TestDueString(t *testing.T) {
	for _, c := range []struct {
		d    Due
		want string
	}{
		{Due{Requests, 20034, 20000}, "20034 requests, limit 20000"},
		{Due{Age, uint64(time.Hour + 2*time.Second), uint64(time.Hour)}, "1h0m2s, limit 1h0m0s"},
		{Due{Memory, 812 << 20, 800 << 20}, "812.0 MiB, limit 800.0 MiB"},
		{Due{Runaway, uint64(3 * time.Second), uint64(time.Second)}, "3s, limit 1s"},
	} {
		if got := c.d.String(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.d, got, c.want)
		}
	}
	if Runaway.String() != "runaway request" || Reason(9).String() != "reason(9)" {
		t.Error("Reason names")
	}
}
