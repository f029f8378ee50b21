package prefork

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/gracefork/gracefork/recycle"
	"github.com/gracefork/gracefork/signals"
)

// EventKind says what happened in the master.
type EventKind int

// The events. Each is logged as one line whose message is its String, at
// its level, with the fields listed in brackets — the fields of Event it
// sets. One table, kinds, holds all three; TestEventDocsMatchTheTable
// checks these comments against it.
//
// OnEvent sees every line the master logs, in order. Most events come from
// the master's loop, while Run runs. Before it: New emits EventListening,
// EventPerSlotSockets, EventSlotListening and EventUnusedActivation as it
// binds, on its caller's goroutine, and
// EventSocketNotRemoved when it fails or a Server that never ran is
// closed. After the loop: EventSocketNotRemoved, the hook events of the
// hooks Run waits for at the end (EventHookSlow, EventHookPanicked,
// EventHooksAbandoned), EventStopped and the terminal waiter's events
// come from Run's goroutine before it returns.
const (
	EventListening            EventKind = iota + 1 // a socket is bound: "bound", "inherited" (upgrade), "activated" (systemd) or "passed" (fd://N) [Addr, From]
	EventSpawned                                   // a worker started [Slot, Generation, Pid]
	EventReady                                     // a worker serves; Delay is its boot time [Slot, Generation, Pid, Delay]
	EventExited                                    // a worker ended; Expected: the master asked it to; Exit.Failure: the error it reported, if any [Slot, Generation, Pid, Exit, Expected]
	EventRestartScheduled                          // a slot restarts after Delay [Slot, Delay]
	EventBootTimeout                               // a worker was not ready within BootTimeout [Slot, Generation, Pid, Delay]
	EventGivingUp                                  // too many failed boots: Run returns Err [Slot, Err]
	EventAction                                    // an action was requested [Action]
	EventDraining                                  // a worker was told to drain [Slot, Generation, Pid]
	EventKilled                                    // a worker outlived its deadline, Delay, and was killed [Slot, Generation, Pid, Delay]
	EventSpawnFailed                               // the Spawner failed [Slot, Generation, Err]
	EventProtocolError                             // a worker broke the control protocol and is killed [Slot, Generation, Pid, Err]
	EventStopped                                   // every worker is gone; Run returns []
	EventReloadStarted                             // a rolling reload began [Workers]
	EventReloadQueued                              // a reload was asked for during one: one more pass follows []
	EventReloadDone                                // every slot was replaced [Workers]
	EventReloadFailed                              // a new worker did not boot; the old ones serve on [Slot, Exit, Err]
	EventScaled                                    // the worker count changed [Workers]
	EventServing                                   // every slot had a ready worker for the first time [Workers]
	EventUpgradeStarted                            // a new master is starting from the binary on disk []
	EventUpgradeFailed                             // it failed; this master serves on [Err]
	EventUpgraded                                  // the new master (Pid, if it said) is ready; this one drains and exits [Pid]
	EventPredecessorGone                           // the master this one replaced has exited; Err if it misbehaved [Err]
	EventUpgradeRefused                            // an upgrade cannot start now: Err says why [Err]
	EventHung                                      // a serving worker sent no heartbeat for Delay: sent SIGABRT for a stack dump (its exit's stderr), SIGKILL if still alive 2 s later [Slot, Generation, Pid, Delay]
	EventDegraded                                  // a slot cannot be refilled; Workers serve on and it retries after Delay [Slot, Workers, Delay, Err]
	EventRestored                                  // a degraded slot has a ready worker again [Slot, Generation, Pid]
	EventUpgradeCancelled                          // a stop came during an upgrade; the new master was killed [Err]
	EventStopForwarded                             // a stop (Action) asked after a handover went on to the new master (Pid); Err if it could not [Action, Pid, Err]
	EventStoppedAccepting                          // at a stop, a worker closed its listeners; it drains once every worker has [Slot, Generation, Pid]
	EventUnusedActivation                          // systemd passed a socket no Options address names (Detail: its name); closed [Addr, Detail]
	EventSocketNotRemoved                          // a unix socket file this master created could not be removed [Path, Err]
	EventSignalIgnored                             // SIGWINCH (stop-workers) came while the master runs in a terminal, where a resize sends it []
	EventDrainForced                               // at a stop, the workers in Detail did not say they stopped accepting within Delay; drained anyway [Delay, Detail]
	EventRemoveRefused                             // remove-worker with one worker left: stop-workers stops the last []
	EventNoLogFile                                 // reopen-logs without Options.LogFile []
	EventLogReopened                               // Options.LogFile was reopened [Path]
	EventLogReopenFailed                           // it could not be; the master writes to the old file [Path, Err]
	EventUnknownMessage                            // a worker sent a message of a type this master does not know (Detail), skipped [Slot, Generation, Pid, Detail]
	EventMisdirectedMessage                        // a worker sent a message meant for workers (Detail), skipped [Slot, Generation, Pid, Detail]
	EventTableflipReadyFailed                      // tableflip's Ready failed [Err]
	EventPIDFileFailed                             // the PID file could not be written [Path, Err]
	EventNotifyFailed                              // a message (Detail) to systemd's notify socket failed [Detail, Err]
	EventBinaryGone                                // the binary (Path) is gone; a worker starts from the running executable (Detail) [Path, Detail]
	EventOrphanReaped                              // the master, PID 1, reaped a process that was not a worker [Pid, Detail]
	EventSuccessorUnknown                          // after an upgrade in a terminal, the new master is not the only child (Detail): no waiter, exit [Detail]
	EventWaitingForSuccessor                       // after an upgrade in a terminal, this process stays as a waiter for the new master (Pid) [Pid]
	EventWaiterFailed                              // it could not become the waiter; it exits [Err]
	EventRecycleDue                                // a worker reached a recycle limit (Reason; Detail: the value and the limit); it serves on until its replacement is ready [Slot, Generation, Pid, Reason, Detail]
	EventRecycling                                 // a recycle began: a replacement (Generation, Pid) boots for Slot [Slot, Generation, Pid, Reason]
	EventRecycled                                  // the replacement (Generation, Pid) is ready; the worker it replaces drains [Slot, Generation, Pid, Reason]
	EventRecycleFailed                             // the replacement did not boot; the old worker serves on and the recycle is retried after Delay [Slot, Delay, Err]
	EventMetricsRejected                           // a worker's metrics snapshot was malformed (Err) and left out [Slot, Generation, Pid, Err]
	EventMetricsError                              // gathering or serving the metrics failed (Err); what could be gathered was served [Err]
	EventMetricsSettled                            // an exited worker's metrics were "folded" into its slot (it left as asked) or "dropped" (a crash), as Detail says [Slot, Generation, Pid, Detail]
	EventShutdownDelay                             // a graceful stop began: readiness fails, and the workers serve on for Delay before they drain [Delay]
	EventActionRefused                             // an action (Action) was refused, for the reason in Detail: it came during the shutdown delay, or, with ReusePort, it would change the worker count during an upgrade [Action, Detail]
	EventChangeDetected                            // with ReloadOnChange, the executable or a ReloadWatch path changed (Detail: which); a reload follows [Detail]
	EventMetricsImported                           // after a binary upgrade, the old master's totals were added to this master's (Detail: their size), or could not be (Err): its counts start over [Detail, Err]
	EventHookSlow                                  // a master hook (Detail: its name) has run for Delay (SlowHookAfter) and runs on; the hooks queued after it wait [Detail, Delay]
	EventHookPanicked                              // a master hook (Detail) panicked: Err has the value and the stack; the master and the next hooks go on [Detail, Err]
	EventHooksAbandoned                            // at the master's end, Run stopped waiting for the hooks after Delay (HooksExitWait); Detail says which was running and how many were not run [Delay, Detail]
	EventPerSlotSockets                            // with ReusePort, what the kernel does with the connections queued in a slot socket that closes (Detail: net.ipv4.tcp_migrate_req), or why it cannot be told (Err) [Detail, Err]
	EventSlotListening                             // with ReusePort, a slot's own socket (Addr) listens: Detail is "bound", "inherited" (upgrade) or "listening again" (scale-up, a degraded slot restored) [Slot, Addr, Detail]
	EventSlotClosed                                // with ReusePort, a slot's own socket (Addr) stopped listening, for the reason in Detail; Err counts the connections its queue held, reset [Slot, Addr, Detail, Err]
)

// kindSpec describes a kind once: its log message (String), its level,
// and the Event fields it sets, in log order.
type kindSpec struct {
	name  string
	level slog.Level
	// worse is the level when the event reports trouble — an unexpected
	// exit, or its optional Err set; 0 when it has none.
	worse slog.Level
	// master: the master's own event, logged with the master's pid (two
	// masters log at once during an upgrade).
	master bool
	fields []field
}

// field is an Event field a kind sets, and its log key ("": not logged).
type field struct {
	name string // "Slot", "Err", ...; "Exit.Stderr" is the stderr of an unexpected exit
	key  string
	opt  bool // logged only when set
}

// Short constructors for the table.
func f(name, key string) field   { return field{name: name, key: key} }
func opt(name, key string) field { return field{name: name, key: key, opt: true} }

var (
	slotF = f("Slot", "slot")
	genF  = opt("Generation", "gen")
	pidF  = opt("Pid", "pid")
	errF  = f("Err", "err")
	who   = []field{slotF, genF, pidF} // a worker's event
)

func with(base []field, more ...field) []field { return append(base[:len(base):len(base)], more...) }

const (
	warn  = slog.LevelWarn
	errL  = slog.LevelError
	debug = slog.LevelDebug
)

// kinds is the one table of event kinds.
var kinds = [...]kindSpec{
	EventListening:            {name: "listening", master: true, fields: []field{f("Addr", "addr"), f("From", "from")}},
	EventSpawned:              {name: "spawned", fields: who},
	EventReady:                {name: "ready", fields: with(who, f("Delay", "boot"))},
	EventExited:               {name: "exited", worse: warn, fields: with(who, f("Exit", "status"), f("Expected", "expected"), opt("Exit.Failure", "failure"), opt("Exit.Stderr", "stderr"))},
	EventRestartScheduled:     {name: "restart scheduled", fields: []field{slotF, f("Delay", "in")}},
	EventBootTimeout:          {name: "boot timeout", level: warn, fields: with(who, f("Delay", "after"))},
	EventGivingUp:             {name: "giving up", level: errL, fields: []field{slotF, errF}},
	EventAction:               {name: "action", master: true, fields: []field{f("Action", "action")}},
	EventDraining:             {name: "draining", fields: who},
	EventKilled:               {name: "killed", level: warn, fields: with(who, f("Delay", "after"))},
	EventSpawnFailed:          {name: "spawn failed", level: errL, fields: []field{slotF, genF, errF}},
	EventProtocolError:        {name: "protocol error", level: errL, fields: with(who, errF)},
	EventStopped:              {name: "stopped", master: true},
	EventReloadStarted:        {name: "reload started", master: true, fields: []field{f("Workers", "workers")}},
	EventReloadQueued:         {name: "reload queued", master: true},
	EventReloadDone:           {name: "reload done", master: true, fields: []field{f("Workers", "workers")}},
	EventReloadFailed:         {name: "reload failed", level: errL, fields: []field{slotF, f("Exit", ""), errF}},
	EventScaled:               {name: "scaled", master: true, fields: []field{f("Workers", "workers")}},
	EventServing:              {name: "serving", master: true, fields: []field{f("Workers", "workers")}},
	EventUpgradeStarted:       {name: "upgrade started", master: true},
	EventUpgradeFailed:        {name: "upgrade failed", level: errL, master: true, fields: []field{errF}},
	EventUpgraded:             {name: "upgraded", master: true, fields: []field{opt("Pid", "new_master")}},
	EventPredecessorGone:      {name: "previous master gone", master: true, fields: []field{opt("Err", "err")}},
	EventUpgradeRefused:       {name: "upgrade refused", level: warn, master: true, fields: []field{errF}},
	EventHung:                 {name: "hung", level: warn, fields: with(who, f("Delay", "after"))},
	EventDegraded:             {name: "degraded", level: errL, fields: []field{slotF, f("Workers", "serving"), f("Delay", "retry_in"), errF}},
	EventRestored:             {name: "restored", fields: who},
	EventUpgradeCancelled:     {name: "upgrade cancelled by the stop", level: warn, master: true, fields: []field{errF}},
	EventStopForwarded:        {name: "stop forwarded to the new master", worse: errL, master: true, fields: []field{f("Action", "action"), f("Pid", "new_master"), opt("Err", "err")}},
	EventStoppedAccepting:     {name: "stopped accepting", fields: who},
	EventUnusedActivation:     {name: "socket activation passed a socket no Options address names; closing it", level: warn, master: true, fields: []field{f("Addr", "addr"), f("Detail", "name")}},
	EventSocketNotRemoved:     {name: "cannot remove the unix socket", level: warn, master: true, fields: []field{f("Path", "path"), errF}},
	EventSignalIgnored:        {name: "SIGWINCH ignored: the master runs in a terminal, where a window resize sends it; run detached, or call Server.Scale(0)", master: true},
	EventDrainForced:          {name: "stop: draining although workers did not say they stopped accepting", level: warn, master: true, fields: []field{f("Delay", "after"), f("Detail", "workers")}},
	EventRemoveRefused:        {name: "remove-worker refused: one worker is the minimum; use stop-workers to stop them all", level: warn, master: true},
	EventNoLogFile:            {name: "reopen-logs: no Options.LogFile to reopen", master: true},
	EventLogReopened:          {name: "log file reopened", master: true, fields: []field{f("Path", "file")}},
	EventLogReopenFailed:      {name: "reopen-logs failed; still writing to the old file", level: errL, master: true, fields: []field{f("Path", "file"), errF}},
	EventUnknownMessage:       {name: "master ignores an unknown control message", level: warn, fields: with(who, f("Detail", "type"))},
	EventMisdirectedMessage:   {name: "master ignores a control message that is not for it", level: warn, fields: with(who, f("Detail", "type"))},
	EventTableflipReadyFailed: {name: "tableflip ready", level: errL, master: true, fields: []field{errF}},
	EventPIDFileFailed:        {name: "cannot write the PID file", level: errL, master: true, fields: []field{f("Path", "file"), errF}},
	EventNotifyFailed:         {name: "sd_notify failed", level: warn, master: true, fields: []field{f("Detail", "msg"), errF}},
	EventBinaryGone:           {name: "the binary is gone; the worker starts from the executable this master runs", level: warn, master: true, fields: []field{f("Path", "binary"), f("Detail", "running")}},
	EventOrphanReaped:         {name: "reaped an orphan", level: debug, fields: []field{f("Pid", "pid"), f("Detail", "status")}},
	EventSuccessorUnknown:     {name: "after the upgrade, cannot tell the new master among this process's children; exiting", level: warn, master: true, fields: []field{f("Detail", "children")}},
	EventWaitingForSuccessor:  {name: "upgraded in a terminal: this process stays, so Ctrl-C still reaches the new master; it waits for it", master: true, fields: []field{f("Pid", "new_master")}},
	EventWaiterFailed:         {name: "cannot wait for the new master; exiting", level: errL, master: true, fields: []field{errF}},
	EventRecycleDue:           {name: "recycle due", fields: with(who, f("Reason", "reason"), f("Detail", "value"))},
	EventRecycling:            {name: "recycling", fields: with(who, f("Reason", "reason"))},
	EventRecycled:             {name: "recycled", fields: with(who, f("Reason", "reason"))},
	EventRecycleFailed:        {name: "recycle failed", level: errL, fields: []field{slotF, f("Delay", "retry_in"), errF}},
	EventMetricsRejected:      {name: "master rejects a worker's metrics snapshot", level: warn, fields: with(who, errF)},
	EventMetricsError:         {name: "metrics", level: warn, master: true, fields: []field{errF}},
	EventMetricsSettled:       {name: "worker metrics settled", level: debug, fields: with(who, f("Detail", "counts"))},
	EventShutdownDelay:        {name: "stopping: readiness fails, serving on for the shutdown delay", master: true, fields: []field{f("Delay", "delay")}},
	EventActionRefused:        {name: "action refused", level: warn, master: true, fields: []field{f("Action", "action"), f("Detail", "why")}},
	EventChangeDetected:       {name: "change detected: reloading", master: true, fields: []field{f("Detail", "paths")}},
	EventMetricsImported:      {name: "metrics continue the old master's totals", worse: warn, master: true, fields: []field{opt("Detail", "size"), opt("Err", "err")}},
	EventHookSlow:             {name: "hook slow", level: warn, master: true, fields: []field{f("Detail", "hook"), f("Delay", "running_for")}},
	EventHookPanicked:         {name: "hook panicked", level: errL, master: true, fields: []field{f("Detail", "hook"), errF}},
	EventHooksAbandoned:       {name: "hooks abandoned: Run returns without them", level: warn, master: true, fields: []field{f("Delay", "after"), f("Detail", "hooks")}},
	EventPerSlotSockets:       {name: "per-slot sockets", worse: warn, master: true, fields: []field{opt("Detail", "queued_at_close"), opt("Err", "err")}},
	EventSlotListening:        {name: "slot socket listening", master: true, fields: []field{slotF, f("Addr", "addr"), f("Detail", "how")}},
	EventSlotClosed:           {name: "slot socket closed", worse: warn, master: true, fields: []field{slotF, f("Addr", "addr"), f("Detail", "why"), opt("Err", "err")}},
}

func (k EventKind) spec() *kindSpec {
	if k > 0 && int(k) < len(kinds) {
		return &kinds[k]
	}
	return &kindSpec{name: "unknown"}
}

// String is the event's log message.
func (k EventKind) String() string { return k.spec().name }

// Event is something that happened in the master. Only the fields its Kind
// names are set.
type Event struct {
	Kind       EventKind      // what happened
	Time       time.Time      // when the master saw it
	Slot       int            // the worker's slot
	Generation int            // the worker's generation (see WorkerStatus)
	Pid        int            // the worker's process id; the new master's for EventUpgraded and the like, an orphan's for EventOrphanReaped
	Addr       string         // a listening address
	Exit       Exit           // how a worker ended
	Expected   bool           // the master asked the worker to stop (never one it killed: at BootTimeout, hung, ...)
	Delay      time.Duration  // a backoff before the next spawn, or a duration the kind names
	Action     signals.Action // the action a signal or an API call asked for
	Workers    int            // the worker count, for reload and scale events
	From       string         // for EventListening: "bound", "inherited" (upgrade), "activated" (systemd) or "passed" (fd://N)
	Path       string         // a file: the log file, the PID file, a unix socket, the binary
	Detail     string         // what else the kind's comment says it carries
	Reason     recycle.Reason // why a worker is recycled
	Err        error          // what went wrong, for the kinds that fail
}

// emit logs e and hands it to OnEvent.
func (m *master) emit(e Event) {
	e.Time = m.clock.Now()
	if m.mx != nil {
		m.mx.own.observe(e)
	}
	m.cfg.Logger.LogAttrs(context.Background(), e.level(), e.Kind.String(), e.attrs()...)
	if m.cfg.OnEvent != nil {
		m.cfg.OnEvent(e)
	}
}

// level is the kind's level, or its worse one when e reports trouble.
func (e Event) level() slog.Level {
	k := e.Kind.spec()
	if k.worse != 0 && ((e.Kind == EventExited && !e.Expected) || (e.Kind != EventExited && e.Err != nil)) {
		return k.worse
	}
	return k.level
}

// attrs are the log line's attributes, from the table.
func (e Event) attrs() []slog.Attr {
	k := e.Kind.spec()
	attrs := make([]slog.Attr, 0, len(k.fields)+1)
	if k.master {
		attrs = append(attrs, slog.Int("pid", os.Getpid()))
	}
	for _, f := range k.fields {
		if v, set := e.value(f.name); f.key != "" && (set || !f.opt) {
			attrs = append(attrs, slog.Attr{Key: f.key, Value: v})
		}
	}
	return attrs
}

// value is the named field's log value, and whether it is set.
func (e Event) value(name string) (slog.Value, bool) {
	switch name {
	case "Slot":
		return slog.IntValue(e.Slot), true
	case "Generation":
		return slog.IntValue(e.Generation), e.Generation != 0
	case "Pid":
		return slog.IntValue(e.Pid), e.Pid != 0
	case "Workers":
		return slog.IntValue(e.Workers), true
	case "Delay":
		return slog.DurationValue(e.Delay), true
	case "Expected":
		return slog.BoolValue(e.Expected), true
	case "Exit":
		return slog.StringValue(e.Exit.String()), true
	case "Exit.Failure":
		return slog.StringValue(e.Exit.Failure), e.Exit.Failure != ""
	case "Exit.Stderr":
		return slog.StringValue(strings.Join(e.Exit.Stderr, "\n")), !e.Expected && len(e.Exit.Stderr) > 0
	case "Action":
		return slog.StringValue(e.Action.String()), true
	case "Err":
		return slog.StringValue(fmt.Sprint(e.Err)), e.Err != nil
	case "Reason":
		return slog.StringValue(e.Reason.String()), e.Reason != 0
	}
	v := map[string]string{"Addr": e.Addr, "From": e.From, "Path": e.Path, "Detail": e.Detail}[name]
	return slog.StringValue(v), v != ""
}
