package chaos

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Action is one fault the harness can inject into a target.
type Action string

// The fault actions. Worker actions pick a child process of the target's
// current master.
const (
	ActKill9 Action = "kill9" // SIGKILL one worker, round robin
	ActHUP   Action = "hup"   // SIGHUP the master: rolling reload
	ActUSR2  Action = "usr2"  // SIGUSR2 the master: upgrade to a new master
	ActTTIN  Action = "ttin"  // SIGTTIN the master: one worker more
	ActTTOU  Action = "ttou"  // SIGTTOU the master: one worker fewer
	ActStop  Action = "stop"  // SIGSTOP one worker, SIGCONT at the end of the run
	ActTerm  Action = "term"  // SIGTERM the master: graceful shutdown
)

// Actions lists every valid Action.
var Actions = []Action{ActKill9, ActHUP, ActUSR2, ActTTIN, ActTTOU, ActStop, ActTerm}

// Fault is one scheduled action, At after the start of the load.
type Fault struct {
	At     time.Duration
	Action Action
}

// String renders the fault as the schedule syntax accepts it.
func (f Fault) String() string {
	return fmt.Sprintf("at=%s action=%s", f.At, f.Action)
}

// MaxFaults bounds a schedule, so a typo like count=1e9 cannot make an
// unbounded run.
const MaxFaults = 10000

// ParseFaults parses a fault schedule: entries separated by ';', each a
// list of key=value words separated by spaces. An entry is either one
// fault,
//
//	at=3s action=hup
//
// or a repeated one,
//
//	every=1.5s from=2s count=10 action=kill9
//
// (from defaults to every). Durations use time.ParseDuration syntax. The
// result is sorted by time; faults at the same time keep their order.
func ParseFaults(s string) ([]Fault, error) {
	var out []Fault
	for i, entry := range strings.Split(s, ";") {
		if strings.TrimSpace(entry) == "" {
			continue
		}
		fs, err := parseEntry(entry)
		if err != nil {
			return nil, fmt.Errorf("fault entry %d %q: %w", i+1, strings.TrimSpace(entry), err)
		}
		if len(out)+len(fs) > MaxFaults {
			return nil, fmt.Errorf("more than %d faults", MaxFaults)
		}
		out = append(out, fs...)
	}
	slices.SortStableFunc(out, func(a, b Fault) int {
		return cmp.Compare(a.At, b.At)
	})
	return out, nil
}

// parseEntry parses one ';'-separated entry.
func parseEntry(entry string) ([]Fault, error) {
	kv := make(map[string]string)
	for _, w := range strings.Fields(entry) {
		k, v, ok := strings.Cut(w, "=")
		if !ok || v == "" {
			return nil, fmt.Errorf("%q is not key=value", w)
		}
		if _, dup := kv[k]; dup {
			return nil, fmt.Errorf("key %q given twice", k)
		}
		kv[k] = v
	}
	act, err := parseAction(kv["action"])
	if err != nil {
		return nil, err
	}
	delete(kv, "action")
	if at, ok := kv["at"]; ok {
		delete(kv, "at")
		if err := noneLeft(kv); err != nil {
			return nil, err
		}
		d, err := parseOffset("at", at)
		if err != nil {
			return nil, err
		}
		return []Fault{{At: d, Action: act}}, nil
	}
	return parseRepeat(kv, act)
}

// parseRepeat parses the every/from/count form.
func parseRepeat(kv map[string]string, act Action) ([]Fault, error) {
	ev, ok := kv["every"]
	if !ok {
		return nil, fmt.Errorf("need at= or every=")
	}
	every, err := parseOffset("every", ev)
	if err != nil {
		return nil, err
	}
	if every <= 0 {
		return nil, fmt.Errorf("every must be > 0")
	}
	from := every
	if f, ok := kv["from"]; ok {
		if from, err = parseOffset("from", f); err != nil {
			return nil, err
		}
	}
	cs, ok := kv["count"]
	if !ok {
		return nil, fmt.Errorf("every= needs count=")
	}
	count, err := strconv.Atoi(cs)
	if err != nil || count < 1 || count > MaxFaults {
		return nil, fmt.Errorf("count must be an integer in [1, %d]", MaxFaults)
	}
	for _, k := range []string{"every", "from", "count"} {
		delete(kv, k)
	}
	if err := noneLeft(kv); err != nil {
		return nil, err
	}
	out := make([]Fault, count)
	for i := range out {
		out[i] = Fault{At: from + time.Duration(i)*every, Action: act}
	}
	return out, nil
}

// parseOffset parses a non-negative duration of at most one day.
func parseOffset(key, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	if d < 0 || d > 24*time.Hour {
		return 0, fmt.Errorf("%s=%s out of range [0, 24h]", key, v)
	}
	return d, nil
}

// parseAction validates an action name.
func parseAction(s string) (Action, error) {
	if s == "" {
		return "", fmt.Errorf("missing action=")
	}
	a := Action(strings.ToLower(s))
	if !slices.Contains(Actions, a) {
		return "", fmt.Errorf("unknown action %q (want one of %v)", s, Actions)
	}
	return a, nil
}

// noneLeft reports keys that no form accepts.
func noneLeft(kv map[string]string) error {
	if len(kv) == 0 {
		return nil
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return fmt.Errorf("unexpected keys %v", keys)
}

// Scenario is a predefined fault schedule with the run length it needs.
type Scenario struct {
	Name     string
	Faults   string        // schedule in ParseFaults syntax
	Duration time.Duration // default run length
	Targets  string        // default target list
	Doc      string
	// Timeout and DialTimeout, when not 0, are the scenario's request
	// deadline and connect bound (the -timeout and -dial-timeout flags
	// override them).
	Timeout     time.Duration
	DialTimeout time.Duration
	// Recycle, when set, runs each target twice per round: recycling
	// its workers with these limits, and without (the baseline).
	Recycle *Recycle
}

// AllTargets is the default target list.
const AllTargets = "gracefork,nethttp,fasthttp,gunicorn"

// Scenarios are the schedules -scenario selects. The faulted ones start at
// 4 s, so the steady baseline (after the 1 s warm-up) is 3 s long, and the
// runs last 2.5 s past the last fault so the recovery after it can be
// measured. The smoke stays short for CI. The stop scenario TERMs the
// master at 3 s and keeps the load on for 3 s more, so that what clients
// meet after the drain is seen: refused dials, resets, timeouts. Its
// connect bound (750 ms) is below Linux's first SYN retransmission (1 s),
// so a dial into a full backlog, whose SYN is dropped, is a dial timeout;
// its request deadline (2 s) lets a request written into a backlog that
// nobody accepts time out before the end of the run. The recycle scenario
// has no fault: the targets retire their own workers; 10 s of load leave
// 9 s after the warm-up.
var Scenarios = []Scenario{
	{Name: "steady", Duration: 15 * time.Second, Targets: AllTargets,
		Doc: "no faults: baseline throughput and latency"},
	{Name: "reload", Faults: "every=1.5s from=4s count=10 action=hup",
		Duration: 20 * time.Second, Targets: AllTargets,
		Doc: "10 HUP rolling reloads in 15 s"},
	{Name: "crash", Faults: "every=1.5s from=4s count=10 action=kill9",
		Duration: 20 * time.Second, Targets: AllTargets,
		Doc: "10 SIGKILLs of one worker (round robin) in 15 s"},
	{Name: "upgrade", Faults: "every=3s from=4s count=5 action=usr2",
		Duration: 18500 * time.Millisecond, Targets: AllTargets,
		Doc: "5 USR2 master upgrades in 15 s"},
	{Name: "scale", Faults: "every=1.5s from=4s count=10 action=ttin; every=1.5s from=4.75s count=10 action=ttou",
		Duration: 20 * time.Second, Targets: AllTargets,
		Doc: "10 TTIN/TTOU pairs (one worker more, then one fewer)"},
	{Name: "stop", Faults: "at=3s action=term",
		Duration: 6 * time.Second, Targets: AllTargets,
		Timeout: 2 * time.Second, DialTimeout: 750 * time.Millisecond,
		Doc: "SIGTERM to the master at 3 s; the load goes on to 6 s: lost on accepted connections vs refused vs timed out"},
	{Name: "recycle", Duration: 10 * time.Second, Targets: "gracefork,gunicorn",
		Recycle: &Recycle{MaxRequests: 20000, Jitter: 2000},
		Doc:     "workers retire after 20000 requests + a draw from [0, 2000] (Gunicorn's --max-requests, --max-requests-jitter), each run next to the same load without recycling"},
	{Name: "stop-single", Faults: "at=3s action=term",
		Duration: 6 * time.Second, Targets: "gracefork-single,gracefork-single-delay,nethttp,uvicorn",
		Timeout: 2 * time.Second, DialTimeout: 750 * time.Millisecond,
		Doc: "one process per pod: SIGTERM at 3 s to gracefork's single-process mode (without and with a 2 s shutdown delay), net/http doing Shutdown, uvicorn alone; the load goes on to 6 s"},
	{Name: "smoke", Faults: "at=1.5s action=hup; at=2.75s action=hup",
		Duration: 4 * time.Second, Targets: "gracefork",
		Doc: "CI smoke: 2 HUP reloads in 4 s, gracefork only"},
}

// LookupScenario returns the scenario called name.
func LookupScenario(name string) (Scenario, error) {
	for _, s := range Scenarios {
		if s.Name == name {
			return s, nil
		}
	}
	names := make([]string, len(Scenarios))
	for i, s := range Scenarios {
		names[i] = s.Name
	}
	return Scenario{}, fmt.Errorf("unknown scenario %q (want one of %s)", name, strings.Join(names, ", "))
}
