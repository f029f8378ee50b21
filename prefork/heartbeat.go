package prefork

import (
	"time"
)

// heartbeatInterval is how often a worker reports.
const heartbeatInterval = time.Second

// watchHeartbeat (re)arms the kill of a serving worker that falls silent:
// stopped (SIGSTOP), wedged, or swapped out for longer than
// HeartbeatTimeout. The connections it accepted would hang for ever; its
// slot is restarted as after a crash.
func (m *master) watchHeartbeat(w *worker) {
	stopTimer(w.beatTimer)
	w.beatTimer = m.after(m.cfg.HeartbeatTimeout, func() {
		if _, live := m.workers[w]; !live || w.stopping {
			return
		}
		m.emit(Event{Kind: EventHung, Slot: w.slot, Generation: w.gen, Pid: w.proc.Pid(), Delay: m.cfg.HeartbeatTimeout})
		m.kill(w)
	})
}
