package prefork

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// markerEnv is the environment variable that makes a process a worker. The
// master sets it for the workers it starts; a worker removes it from its own
// environment as the package initialises, so processes that a handler starts
// never inherit it. Its value is private to gracefork.
const markerEnv = "GRACEFORK_WORKER_7QZ3K9"

// markerVersion changes whenever the marker's fields do.
const markerVersion = "v1"

// spec is what the master tells a worker through the marker.
type spec struct {
	slot, gen int
	ctl       int   // the control socket's fd
	fds       []int // the listeners' fds, in Options order
	procs     int   // GOMAXPROCS to set, 0 to keep
}

func (s spec) encode() string {
	fds := make([]string, len(s.fds))
	for i, fd := range s.fds {
		fds[i] = strconv.Itoa(fd)
	}
	return fmt.Sprintf("%s;slot=%d;gen=%d;ctl=%d;fds=%s;procs=%d",
		markerVersion, s.slot, s.gen, s.ctl, strings.Join(fds, ","), s.procs)
}

// parseSpec reads a marker value. It accepts exactly what encode writes.
func parseSpec(v string) (spec, error) {
	parts := strings.Split(v, ";")
	if parts[0] != markerVersion {
		return spec{}, fmt.Errorf("version %q, this binary reads %q", parts[0], markerVersion)
	}
	want := []string{"slot", "gen", "ctl", "fds", "procs"}
	if len(parts) != len(want)+1 {
		return spec{}, fmt.Errorf("%d fields, want %d", len(parts)-1, len(want))
	}
	var s spec
	ints := []*int{&s.slot, &s.gen, &s.ctl, nil, &s.procs}
	for i, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k != want[i] {
			return spec{}, fmt.Errorf("field %d is %q, want %s=…", i+1, p, want[i])
		}
		if ints[i] == nil {
			fds, err := parseFds(v)
			if err != nil {
				return spec{}, err
			}
			s.fds = fds
			continue
		}
		n, err := parseNonNeg(v)
		if err != nil {
			return spec{}, fmt.Errorf("%s: %w", k, err)
		}
		*ints[i] = n
	}
	if s.ctl < 3 {
		return spec{}, fmt.Errorf("ctl: fd %d is a standard stream", s.ctl)
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
	if err != nil || n < 0 || len(v) > 9 {
		return 0, fmt.Errorf("%q is not a small non-negative number", v)
	}
	return n, nil
}

// The marker is read and removed once, before main runs.
var (
	markerSet bool
	mySpec    spec
	markerErr error
)

func init() { readMarker(os.Getenv, os.Unsetenv) }

func readMarker(getenv func(string) string, unsetenv func(string) error) {
	v := getenv(markerEnv)
	if v == "" {
		return
	}
	markerSet = true
	unsetenv(markerEnv)
	mySpec, markerErr = parseSpec(v)
	if markerErr != nil {
		markerErr = leakedMarker(fmt.Sprintf("%s=%q is malformed: %v", markerEnv, v, markerErr))
		return
	}
	keepInherited(mySpec)
}

// ErrNotWorker is wrapped by the error a process returns when it carries the
// worker marker but was not started by a gracefork master.
var ErrNotWorker = errors.New("not started by a gracefork master")

func leakedMarker(what string) error {
	return fmt.Errorf("prefork: %s; this process is %w. The variable marks worker processes "+
		"and has probably leaked into this environment (a shell, a container spec, a child of a "+
		"worker): unset %s and start the program again", what, ErrNotWorker, markerEnv)
}

// IsWorker reports whether this process is a gracefork worker, that is,
// whether it was started with the worker marker in its environment.
func IsWorker() bool { return markerSet }

// WorkerID returns this worker's slot, from 0 to Workers-1, or -1 in the
// master and in programs that are not gracefork workers. Slots are reused:
// a worker that replaces another gets its slot.
func WorkerID() int {
	if !markerSet || markerErr != nil {
		return -1
	}
	return mySpec.slot
}

// WorkerGeneration returns a number that grows with every worker the master
// starts, or -1 outside a worker.
func WorkerGeneration() int {
	if !markerSet || markerErr != nil {
		return -1
	}
	return mySpec.gen
}
