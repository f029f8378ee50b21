package prefork

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/gracefork/gracefork/signals"
)

// EventKind says what happened in the master.
type EventKind int

// The events, each logged as one line with the message in its String.
const (
	EventListening        EventKind = iota + 1 // a socket is bound: Addr
	EventSpawned                               // a worker started: Slot, Generation, Pid
	EventReady                                 // a worker serves: Slot, Generation, Pid, Delay (boot time)
	EventExited                                // a worker ended: Exit, Expected
	EventRestartScheduled                      // a slot restarts after Delay
	EventBootTimeout                           // a worker was not ready within BootTimeout
	EventGivingUp                              // too many failed boots: Err
	EventAction                                // an action was requested: Action
	EventDraining                              // a worker was told to drain
	EventKilled                                // a worker outlived its deadline and was killed
	EventSpawnFailed                           // the Spawner failed: Err
	EventProtocolError                         // a worker broke the control protocol: Err
	EventStopped                               // every worker is gone; Run returns
	EventReloadStarted                         // a rolling reload began: Workers
	EventReloadQueued                          // a reload was asked for during one: one more pass follows
	EventReloadDone                            // every slot was replaced: Workers
	EventReloadFailed                          // a new worker did not boot; the old ones serve on: Slot, Exit, Err
	EventScaled                                // the worker count changed: Workers
	EventServing                               // every slot had a ready worker for the first time: Workers
	EventUpgradeStarted                        // a new master is starting from the binary on disk
	EventUpgradeFailed                         // it failed; this master serves on: Err
	EventUpgraded                              // the new master (Pid, if it said) is ready; this one drains and exits
	EventPredecessorGone                       // the master this one replaced has exited: Err if it misbehaved
	EventUpgradeRefused                        // an upgrade cannot start now: Err says why
	EventHung                                  // a serving worker sent no heartbeat for Delay and was killed
	EventDegraded                              // a slot cannot be refilled; Workers serve on and it retries after Delay: Slot, Err
	EventRestored                              // a degraded slot has a ready worker again: Slot, Generation, Pid
	EventUpgradeCancelled                      // a stop came during an upgrade; the new master was killed: Err
	EventStopForwarded                         // a stop (Action) asked after a handover went on to the new master (Pid); Err if it could not
	EventStoppedAccepting                      // at a stop, a worker closed its listeners; it drains once every worker has
)

var eventNames = [...]string{
	EventListening:        "listening",
	EventSpawned:          "spawned",
	EventReady:            "ready",
	EventExited:           "exited",
	EventRestartScheduled: "restart scheduled",
	EventBootTimeout:      "boot timeout",
	EventGivingUp:         "giving up",
	EventAction:           "action",
	EventDraining:         "draining",
	EventKilled:           "killed",
	EventSpawnFailed:      "spawn failed",
	EventProtocolError:    "protocol error",
	EventStopped:          "stopped",
	EventReloadStarted:    "reload started",
	EventReloadQueued:     "reload queued",
	EventReloadDone:       "reload done",
	EventReloadFailed:     "reload failed",
	EventScaled:           "scaled",
	EventServing:          "serving",
	EventUpgradeStarted:   "upgrade started",
	EventUpgradeFailed:    "upgrade failed",
	EventUpgraded:         "upgraded",
	EventPredecessorGone:  "previous master gone",
	EventUpgradeRefused:   "upgrade refused",
	EventHung:             "hung",
	EventDegraded:         "degraded",
	EventRestored:         "restored",
	EventUpgradeCancelled: "upgrade cancelled by the stop",
	EventStopForwarded:    "stop forwarded to the new master",
	EventStoppedAccepting: "stopped accepting",
}

// String is the event's log message.
func (k EventKind) String() string {
	if k > 0 && int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "unknown"
}

// Event is something that happened in the master. Only the fields its Kind
// names are set.
type Event struct {
	Kind       EventKind
	Time       time.Time
	Slot       int
	Generation int
	Pid        int
	Addr       string
	Exit       Exit
	Expected   bool // the master asked the worker to stop
	Delay      time.Duration
	Action     signals.Action
	Workers    int    // the worker count, for reload and scale events
	From       string // for EventListening: "bound", "inherited" (upgrade) or "activated" (systemd)
	Err        error
}

func (m *master) emit(e Event) {
	e.Time = m.clock.Now()
	m.log(e)
	if m.cfg.OnEvent != nil {
		m.cfg.OnEvent(e)
	}
}

func (m *master) log(e Event) {
	level := slog.LevelInfo
	attrs := make([]slog.Attr, 0, 6)
	switch e.Kind {
	case EventListening, EventAction, EventStopped, EventReloadStarted, EventReloadQueued, EventReloadDone, EventScaled,
		EventServing, EventUpgradeStarted, EventUpgradeFailed, EventUpgraded, EventPredecessorGone, EventUpgradeRefused,
		EventUpgradeCancelled, EventStopForwarded:
		// The master's own events carry its pid: two masters log at once
		// during an upgrade.
		attrs = append(attrs, slog.Int("pid", os.Getpid()))
	default:
		attrs = append(attrs, slog.Int("slot", e.Slot))
		if e.Generation != 0 {
			attrs = append(attrs, slog.Int("gen", e.Generation))
		}
		if e.Pid != 0 {
			attrs = append(attrs, slog.Int("pid", e.Pid))
		}
	}
	switch e.Kind {
	case EventReloadStarted, EventReloadDone, EventScaled, EventServing:
		attrs = append(attrs, slog.Int("workers", e.Workers))
	case EventReloadFailed:
		level = slog.LevelError
		attrs = append(attrs, slog.String("err", e.Err.Error()))
	case EventListening:
		attrs = append(attrs, slog.String("addr", e.Addr), slog.String("from", e.From))
	case EventReady:
		attrs = append(attrs, slog.Duration("boot", e.Delay))
	case EventExited:
		attrs = append(attrs, slog.String("status", e.Exit.String()), slog.Bool("expected", e.Expected))
		if !e.Expected {
			level = slog.LevelWarn
			if len(e.Exit.Stderr) > 0 {
				attrs = append(attrs, slog.String("stderr", strings.Join(e.Exit.Stderr, "\n")))
			}
		}
	case EventRestartScheduled:
		attrs = append(attrs, slog.Duration("in", e.Delay))
	case EventAction:
		attrs = append(attrs, slog.String("action", e.Action.String()))
	case EventBootTimeout, EventKilled, EventHung:
		level = slog.LevelWarn
		attrs = append(attrs, slog.Duration("after", e.Delay))
	case EventUpgraded:
		if e.Pid != 0 {
			attrs = append(attrs, slog.Int("new_master", e.Pid))
		}
	case EventUpgradeCancelled:
		level = slog.LevelWarn
		attrs = append(attrs, slog.String("err", e.Err.Error()))
	case EventStopForwarded:
		attrs = append(attrs, slog.String("action", e.Action.String()), slog.Int("new_master", e.Pid))
		if e.Err != nil {
			level = slog.LevelError
			attrs = append(attrs, slog.String("err", e.Err.Error()))
		}
	case EventPredecessorGone:
		if e.Err != nil {
			attrs = append(attrs, slog.String("err", e.Err.Error()))
		}
	case EventUpgradeRefused:
		level = slog.LevelWarn
		attrs = append(attrs, slog.String("err", e.Err.Error()))
	case EventDegraded:
		level = slog.LevelError
		attrs = append(attrs, slog.Int("serving", e.Workers), slog.Duration("retry_in", e.Delay), slog.String("err", e.Err.Error()))
	case EventGivingUp, EventSpawnFailed, EventProtocolError, EventUpgradeFailed:
		level = slog.LevelError
		attrs = append(attrs, slog.String("err", e.Err.Error()))
	}
	m.cfg.Logger.LogAttrs(context.Background(), level, e.Kind.String(), attrs...)
}
