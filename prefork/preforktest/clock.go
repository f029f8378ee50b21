package preforktest

import (
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork"
)

// Clock is a prefork.Clock that moves only when Advance is called.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*timer
	changed chan struct{} // closed and replaced whenever timers change
}

var _ prefork.Clock = (*Clock)(nil)

// NewClock returns a Clock that reads 2000-01-01 00:00 UTC.
func NewClock() *Clock {
	return &Clock{now: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), changed: make(chan struct{})}
}

type timer struct {
	c    *Clock
	when time.Time
	f    func()
}

// Now implements prefork.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc implements prefork.Clock; f runs during the Advance that
// reaches its time.
func (c *Clock) AfterFunc(d time.Duration, f func()) prefork.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{c: c, when: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	c.notify()
	return t
}

func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, o := range t.c.timers {
		if o == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			t.c.notify()
			return true
		}
	}
	return false
}

func (c *Clock) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Advance moves the clock by d and runs, in time order, every timer that
// falls due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*timer
	keep := c.timers[:0]
	for _, t := range c.timers {
		if t.when.After(c.now) {
			keep = append(keep, t)
		} else {
			due = append(due, t)
		}
	}
	c.timers = keep
	c.notify()
	c.mu.Unlock()
	sort.SliceStable(due, func(i, j int) bool { return due[i].when.Before(due[j].when) })
	for _, t := range due {
		t.f()
	}
}

// Pending returns the durations from now of the timers not yet run, soonest first.
func (c *Clock) Pending() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Duration, len(c.timers))
	for i, t := range c.timers {
		out[i] = t.when.Sub(c.now)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// WaitTimer waits until a timer is pending exactly d from now, so that a
// test advances the clock only once the master has armed what it expects.
func (c *Clock) WaitTimer(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.After(Patience)
	for {
		c.mu.Lock()
		for _, tm := range c.timers {
			if tm.when.Sub(c.now) == d {
				c.mu.Unlock()
				return
			}
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("preforktest: no timer of %v armed within %v; pending: %v", d, Patience, c.Pending())
		}
	}
}
