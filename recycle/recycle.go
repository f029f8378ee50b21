// Package recycle says when a gracefork worker should be retired and
// replaced: after a number of requests, an age, or a memory size, each
// with its own jitter so that workers started together do not retire
// together.
//
// A Policy goes into prefork.Options.Recycle. The master draws each
// worker's limits when it starts it ([Policy.Track]) and checks them on
// every heartbeat the worker sends, once a second ([Tracker.Check]). A
// worker past a limit keeps serving: the master boots its replacement,
// waits until it is ready, then drains the old one — one recycle at a
// time across the pool, at least MinInterval apart, never during a reload
// or an upgrade.
//
// The zero Policy never recycles.
package recycle

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// DefaultMemorySamples is how many heartbeats in a row must find a worker
// over MaxMemory, by default, before it is recycled: one spike (a large
// upload, a burst) does not recycle.
const DefaultMemorySamples = 3

// Policy says when workers are recycled. Each limit is off at zero.
type Policy struct {
	// MaxRequests retires a worker once it has served this many requests,
	// plus a draw from [0, MaxRequestsJitter]. Gunicorn's max_requests.
	MaxRequests uint64
	// MaxRequestsJitter spreads MaxRequests, worker by worker. Gunicorn's
	// max_requests_jitter.
	MaxRequestsJitter uint64

	// MaxAge retires a worker once it has served this long, plus a draw
	// from [0, MaxAgeJitter].
	MaxAge       time.Duration
	MaxAgeJitter time.Duration // spreads MaxAge, worker by worker

	// MaxMemory retires a worker whose resident set size — the memory the
	// OS reports, not the Go heap, so that cgo and mmap leaks count —
	// exceeds this many bytes in MemorySamples heartbeats in a row.
	// Linux only: prefork rejects it elsewhere.
	MaxMemory uint64
	// MemorySamples is how many heartbeats (one a second) in a row must
	// find the worker over MaxMemory; default DefaultMemorySamples.
	MemorySamples int

	// MinInterval is the least time between the starts of two recycles,
	// across the whole pool. Recycles are one at a time in any case.
	MinInterval time.Duration

	// Rand, if set, returns a uniform draw from [0, n) for the jitters;
	// tests set it to make the limits exact. Default math/rand/v2's
	// Uint64N.
	Rand func(n uint64) uint64
}

// Enabled reports whether the policy recycles on a limit of its own.
func (p Policy) Enabled() bool {
	return p.MaxRequests > 0 || p.MaxAge > 0 || p.MaxMemory > 0
}

// FieldError is a Policy field whose value cannot work. Value is as a
// person writes it: "-1s", not -1000000000.
type FieldError struct {
	Field  string // e.g. "MaxAge"
	Value  string // as a person writes it
	Reason string // why it cannot work
}

// Error names the field and the value: "recycle: MaxAge = -1s: …".
func (e *FieldError) Error() string {
	return fmt.Sprintf("recycle: %s = %s: %s", e.Field, e.Value, e.Reason)
}

// Validate rejects negative and contradictory values: a jitter or a
// sample count without the limit it applies to.
func (p Policy) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"MaxAge", p.MaxAge}, {"MaxAgeJitter", p.MaxAgeJitter}, {"MinInterval", p.MinInterval}} {
		if d.v < 0 {
			return &FieldError{d.name, d.v.String(), "must not be negative"}
		}
	}
	if p.MemorySamples < 0 {
		return &FieldError{"MemorySamples", fmt.Sprint(p.MemorySamples), "must not be negative"}
	}
	switch {
	case p.MaxRequestsJitter > 0 && p.MaxRequests == 0:
		return &FieldError{"MaxRequestsJitter", fmt.Sprint(p.MaxRequestsJitter), "needs MaxRequests: it spreads that limit"}
	case p.MaxAgeJitter > 0 && p.MaxAge == 0:
		return &FieldError{"MaxAgeJitter", p.MaxAgeJitter.String(), "needs MaxAge: it spreads that limit"}
	case p.MemorySamples > 0 && p.MaxMemory == 0:
		return &FieldError{"MemorySamples", fmt.Sprint(p.MemorySamples), "needs MaxMemory: it counts samples over that limit"}
	case p.MaxRequests > 0 && p.MaxRequestsJitter > ^uint64(0)-p.MaxRequests:
		return &FieldError{"MaxRequestsJitter", fmt.Sprint(p.MaxRequestsJitter), "overflows with MaxRequests"}
	case p.MaxAge > 0 && p.MaxAgeJitter > time.Duration(1<<63-1)-p.MaxAge:
		return &FieldError{"MaxAgeJitter", p.MaxAgeJitter.String(), "overflows with MaxAge"}
	}
	return nil
}

// Reason says why a worker is recycled.
type Reason uint8

// The reasons.
const (
	Requests Reason = iota + 1 // it served its MaxRequests
	Age                        // it reached its MaxAge
	Memory                     // its resident set stayed over MaxMemory
	Runaway                    // a handler ran past the request timeout and cannot be stopped
)

// String is the reason as logs and metrics label it: "requests", "age",
// "memory" or "runaway request".
func (r Reason) String() string {
	switch r {
	case Requests:
		return "requests"
	case Age:
		return "age"
	case Memory:
		return "memory"
	case Runaway:
		return "runaway request"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Limits are one worker's drawn limits; 0 is off.
type Limits struct {
	Requests uint64        // requests served
	Age      time.Duration // time served
	Memory   uint64        // resident set, bytes
	Samples  int           // heartbeats in a row over Memory
}

// Usage is what a worker reported in its latest heartbeat, with its age.
type Usage struct {
	Requests uint64        // requests served
	Age      time.Duration // time since the worker started
	RSS      uint64        // bytes; 0 when the worker could not read it
}

// Tracker follows one worker against its limits.
type Tracker struct {
	lim  Limits
	over int // heartbeats in a row over Memory
}

// Track draws a worker's limits.
func (p Policy) Track() *Tracker {
	draw := p.Rand
	if draw == nil {
		draw = rand.Uint64N
	}
	jitter := func(n uint64) uint64 {
		if n == 0 {
			return 0
		}
		if n == ^uint64(0) {
			return draw(n) // [0, n): the inclusive bound would overflow
		}
		return draw(n + 1)
	}
	lim := Limits{Memory: p.MaxMemory, Samples: p.MemorySamples}
	if p.MaxRequests > 0 {
		lim.Requests = p.MaxRequests + jitter(p.MaxRequestsJitter)
	}
	if p.MaxAge > 0 {
		lim.Age = p.MaxAge + time.Duration(jitter(uint64(p.MaxAgeJitter)))
	}
	if lim.Memory > 0 && lim.Samples == 0 {
		lim.Samples = DefaultMemorySamples
	}
	return &Tracker{lim: lim}
}

// Limits are the worker's drawn limits.
func (t *Tracker) Limits() Limits { return t.lim }

// Due is a reached limit: why, the value that reached it, and the limit.
// Requests count requests; Age and Runaway are nanoseconds (a runaway
// request's duration and the request timeout); Memory is bytes.
type Due struct {
	Reason Reason // which limit
	Value  uint64 // what reached it
	Limit  uint64 // the limit
}

// String gives the value and the limit as a person reads them:
// "20034 requests, limit 20000", "1h0m2s, limit 1h0m0s",
// "812.0 MiB, limit 800.0 MiB".
func (d Due) String() string {
	switch d.Reason {
	case Requests:
		return fmt.Sprintf("%d requests, limit %d", d.Value, d.Limit)
	case Age, Runaway:
		return fmt.Sprintf("%v, limit %v", time.Duration(d.Value), time.Duration(d.Limit))
	case Memory:
		return fmt.Sprintf("%.1f MiB, limit %.1f MiB", float64(d.Value)/(1<<20), float64(d.Limit)/(1<<20))
	}
	return fmt.Sprintf("%d, limit %d", d.Value, d.Limit)
}

// Check takes one heartbeat's usage and reports whether a limit is
// reached. Call it once per heartbeat: the memory limit counts heartbeats
// in a row.
func (t *Tracker) Check(u Usage) (Due, bool) {
	if t.lim.Memory > 0 && u.RSS > t.lim.Memory {
		t.over++
	} else {
		t.over = 0
	}
	switch {
	case t.lim.Requests > 0 && u.Requests >= t.lim.Requests:
		return Due{Requests, u.Requests, t.lim.Requests}, true
	case t.lim.Age > 0 && u.Age >= t.lim.Age:
		return Due{Age, uint64(u.Age), uint64(t.lim.Age)}, true
	case t.lim.Memory > 0 && t.over >= t.lim.Samples:
		return Due{Memory, u.RSS, t.lim.Memory}, true
	}
	return Due{}, false
}
