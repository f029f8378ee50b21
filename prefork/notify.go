package prefork

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/gracefork/gracefork/internal/sdnotify"
)

// setupWatchdog turns systemd's watchdog on when it is meant for this
// master: WATCHDOG_PID is its own pid, or, in a master started by an
// upgrade, the old master's, whose environment it inherited and whose
// place it takes. It then names itself in WATCHDOG_PID, so that the master
// it starts at the next upgrade sees "my parent" in turn.
func (m *master) setupWatchdog() error {
	pids := []int{os.Getpid()}
	if m.hasParent() {
		pids = append(pids, os.Getppid())
	}
	var err error
	if m.watchdog, err = sdnotify.WatchdogInterval(os.Getenv, pids...); err != nil || m.watchdog == 0 {
		return err
	}
	return os.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
}

// pingWatchdog pings now and every m.watchdog, until this master has
// handed over to a new one, which pings from then on.
func (m *master) pingWatchdog() {
	if m.handedOver {
		return
	}
	m.sdNotify(sdnotify.Watchdog())
	m.watchdogTimer = m.after(m.watchdog, m.pingWatchdog)
}

func (m *master) sdNotify(msg string) {
	if err := m.notify.Send(msg); err != nil {
		m.emit(Event{Kind: EventNotifyFailed, Detail: msg, Err: err})
	}
}

// sendStatus tells systemd (STATUS=, shown by systemctl status) whether
// every slot can be filled.
func (m *master) sendStatus() {
	var failing []string
	for _, s := range m.slots {
		if s.degraded {
			failing = append(failing, fmt.Sprint(s.id))
		}
	}
	if len(failing) == 0 {
		m.sdNotify(sdnotify.Status(fmt.Sprintf("serving with %d workers", len(m.slots))))
		return
	}
	m.sdNotify(sdnotify.Status(fmt.Sprintf("degraded: worker slot %s cannot start a worker, retrying every %v; serving with %d of %d workers",
		strings.Join(failing, ", "), maxBackoff, m.serving(), len(m.slots))))
}
