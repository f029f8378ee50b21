package prefork

import (
	"fmt"
	"os"

	"github.com/gracefork/gracefork/internal/sdnotify"
)

// maybeAnnounce tells the world the master serves, once every slot has a
// ready worker at start: tableflip's Ready (which lets an old master go),
// the PID file, systemd's READY=1 (with MAINPID after an upgrade).
func (m *master) maybeAnnounce() {
	if m.announced || m.stopping || m.settling || !m.allReady() {
		return
	}
	// With ReusePort, the slot sockets first; a closing that ends at once
	// calls maybeAnnounce from within, which settling makes wait.
	m.settling = true
	settled := m.settleSlots()
	m.settling = false
	if !settled {
		return
	}
	m.announced = true
	if m.parentReport != nil {
		// Before Ready: the old master reads it once Upgrade returns.
		fmt.Fprintf(m.parentReport, "%s%d\n", readyLine, os.Getpid())
		m.parentReport.Close()
		m.parentReport = nil
	}
	if m.upg != nil {
		if err := m.upg.Ready(); err != nil {
			m.emit(Event{Kind: EventTableflipReadyFailed, Err: err})
		}
	}
	if m.cfg.PIDFile != "" {
		if err := writePIDFile(m.cfg.PIDFile); err != nil {
			m.emit(Event{Kind: EventPIDFileFailed, Path: m.cfg.PIDFile, Err: err})
		}
	}
	msg := sdnotify.Ready()
	if m.hasParent() {
		msg = sdnotify.ReadyAs(os.Getpid())
	}
	m.sdNotify(msg)
	if m.watchdog > 0 {
		m.pingWatchdog()
	}
	m.emit(Event{Kind: EventServing, Workers: len(m.slots)})
	m.hookReady()
}

func (m *master) allReady() bool {
	for _, s := range m.slots {
		if s.w == nil || !s.w.ready {
			return false
		}
	}
	return len(m.slots) > 0
}
