package preforktest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork"
)

// Events records a master's events; pass its Record as Options.OnEvent.
// The zero value is ready to use.
type Events struct {
	mu      sync.Mutex
	all     []prefork.Event
	taken   []bool // returned by Wait already
	changed chan struct{}
}

// Record appends e. It never blocks the master for long.
func (r *Events) Record(e prefork.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, e)
	r.taken = append(r.taken, false)
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
}

// All returns every event so far.
func (r *Events) All() []prefork.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]prefork.Event(nil), r.all...)
}

// Wait returns the earliest event of the kind that satisfies match (nil
// matches any) and that Wait has not returned before, waiting for it if
// need be. Each event is returned once, so waits may come in any order.
func (r *Events) Wait(t testing.TB, kind prefork.EventKind, match func(prefork.Event) bool) prefork.Event {
	t.Helper()
	deadline := time.After(Patience)
	for {
		r.mu.Lock()
		for i, e := range r.all {
			if !r.taken[i] && e.Kind == kind && (match == nil || match(e)) {
				r.taken[i] = true
				r.mu.Unlock()
				return e
			}
		}
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("preforktest: no %q event within %v; events:\n%s", kind, Patience, r)
		}
	}
}

// String lists the events, one a line.
func (r *Events) String() string {
	var b strings.Builder
	for _, e := range r.All() {
		fmt.Fprintf(&b, "\t%s slot=%d gen=%d pid=%d delay=%v exit=%v err=%v\n", e.Kind, e.Slot, e.Generation, e.Pid, e.Delay, e.Exit, e.Err)
	}
	return b.String()
}
