// Package handoff is the contract between a gracefork master and the
// workers it starts, in one place: the marker variable that makes a
// process a worker and the encoding of its value, the descriptors a worker
// inherits and where (the control channel at [ControlFd], the listeners
// from [FirstListenerFd] on, in the order of the master's addresses), and
// the variables a worker must not inherit from its master.
//
// Importing this package has one effect: on unix, an init function marks
// close-on-exec the sockets that the marker, when present and well formed,
// names (see [MarkInherited]). It reads the environment and changes
// nothing else: no variable is removed, nothing exits. It must run before
// the program's main, which may start a child before it calls Serve: a
// listener inherited by such a child would keep its port open after every
// worker and the master are gone.
package handoff

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Env is the environment variable that makes a process a worker. The
// master sets it for the workers it starts; a worker removes it from its
// own environment when it takes the hand-off, so that the processes its
// handlers start never inherit it. Its value is private to gracefork.
const Env = "GRACEFORK_WORKER_7QZ3K9"

// TableflipParentEnv is set by tableflip in a process started by an
// upgrade; it belongs to that new master, never to its workers.
const TableflipParentEnv = "TABLEFLIP_HAS_PARENT_7DIU3"

// The descriptor layout of a worker process: the control channel (a unix
// stream socket) at ControlFd, the listening sockets at FirstListenerFd,
// FirstListenerFd+1, … in the order of the master's addresses.
const (
	ControlFd       = 3
	FirstListenerFd = 4
)

// ListenerFd is the descriptor of the i-th listener in a worker.
func ListenerFd(i int) int { return FirstListenerFd + i }

// version changes whenever the marker's fields do.
const version = "v1"

// Spec is what the master tells a worker through the marker.
type Spec struct {
	Slot, Gen int
	Ctl       int   // the control socket's descriptor
	Fds       []int // the listeners' descriptors, in the master's address order
	Procs     int   // GOMAXPROCS to set, 0 to keep
}

// NewSpec is the marker for a worker of the given slot and generation that
// inherits listeners listening sockets in the standard layout.
func NewSpec(slot, gen, listeners, procs int) Spec {
	fds := make([]int, listeners)
	for i := range fds {
		fds[i] = ListenerFd(i)
	}
	return Spec{Slot: slot, Gen: gen, Ctl: ControlFd, Fds: fds, Procs: procs}
}

// Encode returns the marker's value for s.
func (s Spec) Encode() string {
	fds := make([]string, len(s.Fds))
	for i, fd := range s.Fds {
		fds[i] = strconv.Itoa(fd)
	}
	return fmt.Sprintf("%s;slot=%d;gen=%d;ctl=%d;fds=%s;procs=%d",
		version, s.Slot, s.Gen, s.Ctl, strings.Join(fds, ","), s.Procs)
}

// EnvEntry is the "KEY=value" entry that hands s to a worker.
func (s Spec) EnvEntry() string { return Env + "=" + s.Encode() }

// Parse reads a marker value. It accepts exactly what Encode writes.
func Parse(v string) (Spec, error) {
	parts := strings.Split(v, ";")
	if parts[0] != version {
		return Spec{}, fmt.Errorf("version %q, this binary reads %q", parts[0], version)
	}
	want := []string{"slot", "gen", "ctl", "fds", "procs"}
	if len(parts) != len(want)+1 {
		return Spec{}, fmt.Errorf("%d fields, want %d", len(parts)-1, len(want))
	}
	var s Spec
	ints := []*int{&s.Slot, &s.Gen, &s.Ctl, nil, &s.Procs}
	for i, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k != want[i] {
			return Spec{}, fmt.Errorf("field %d is %q, want %s=…", i+1, p, want[i])
		}
		if ints[i] == nil {
			fds, err := parseFds(v)
			if err != nil {
				return Spec{}, err
			}
			s.Fds = fds
			continue
		}
		n, err := parseNonNeg(v)
		if err != nil {
			return Spec{}, fmt.Errorf("%s: %w", k, err)
		}
		*ints[i] = n
	}
	if s.Ctl < 3 {
		return Spec{}, fmt.Errorf("ctl: fd %d is a standard stream", s.Ctl)
	}
	// Each descriptor once: the worker takes each over and closes it.
	seen := map[int]bool{s.Ctl: true}
	for _, fd := range s.Fds {
		if seen[fd] {
			return Spec{}, fmt.Errorf("fds: fd %d is named twice", fd)
		}
		seen[fd] = true
	}
	return s, nil
}

func parseFds(v string) ([]int, error) {
	if v == "" {
		return nil, errors.New("fds: no listener")
	}
	var fds []int
	for f := range strings.SplitSeq(v, ",") {
		n, err := parseNonNeg(f)
		if err != nil || n < 3 {
			return nil, fmt.Errorf("fds: %q is not a descriptor above the standard streams", f)
		}
		fds = append(fds, n)
	}
	return fds, nil
}

func parseNonNeg(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || len(v) > 9 || strconv.Itoa(n) != v {
		return 0, fmt.Errorf("%q is not a small non-negative number", v)
	}
	return n, nil
}

// Lookup reads the marker with getenv (os.Getenv in a program). present
// says whether the variable is set at all; err, that it is set but
// malformed.
func Lookup(getenv func(string) string) (s Spec, present bool, err error) {
	v := getenv(Env)
	if v == "" {
		return Spec{}, false, nil
	}
	s, err = Parse(v)
	if err != nil {
		return Spec{}, true, fmt.Errorf("%s=%q is malformed: %w", Env, v, err)
	}
	return s, true, nil
}

// private are the variables that belong to a master alone: a stale marker,
// tableflip's and systemd's hand-over variables.
var private = []string{Env, TableflipParentEnv, "LISTEN_FDS", "LISTEN_PID",
	"LISTEN_FDNAMES", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}

// WorkerEnviron is the environment the workers inherit: env (the master's)
// less the variables that belong to the master alone. The master appends
// each worker's [Spec.EnvEntry].
func WorkerEnviron(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.Contains(private, k)
	})
}

func init() {
	if s, ok, err := Lookup(os.Getenv); ok && err == nil {
		MarkInherited(s)
	}
}
