package prefork

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudflare/tableflip"
	"github.com/gracefork/gracefork/internal/handoff"
	"github.com/gracefork/gracefork/internal/sockets"
	"github.com/gracefork/gracefork/signals"
)

// reportFile is the name under which an old master hands its new master a
// pipe: a new master that fails before it is ready writes why into it, so
// the old master can log the reason next to the exit status.
const reportFile = "gracefork-upgrade-report"

// predecessorEvent: the master that started this one has exited (or
// exec'd into a waiter, closing its side of tableflip's pipe).
type predecessorEvent struct{ err error }

// watchPredecessor reports when the old master has gone; until then this
// master cannot upgrade in turn.
func (m *master) watchPredecessor(ctx context.Context) {
	if !m.hasParent() {
		return
	}
	m.waitingParent = true
	m.wg.Go(func() {
		if err := m.upg.WaitForParent(ctx); ctx.Err() == nil {
			m.post(predecessorEvent{err})
		}
	})
}

func (m *master) onPredecessorGone(ev predecessorEvent) {
	m.waitingParent = false
	m.emit(Event{Kind: EventPredecessorGone, Err: ev.err})
}

// upgradeEvent is the end of an upgrade attempt.
type upgradeEvent struct {
	err       error
	detail    string // what the new master reported, if anything
	successor int    // the new master's pid, when it took over and said so
}

// readyLine starts what a new master writes into the report pipe when it
// is ready: its pid, so that the old master can pass on a stop it gets
// after the handover.
const readyLine = "gracefork ready pid="

// parseReport splits what a new master wrote: its pid if it was ready,
// and the rest, which says why it failed.
func parseReport(s string) (pid int, detail string) {
	if rest, ok := strings.CutPrefix(s, readyLine); ok {
		line, more, _ := strings.Cut(rest, "\n")
		if n, err := strconv.Atoi(line); err == nil && n > 0 {
			return n, strings.TrimSpace(more)
		}
	}
	return 0, s
}

// setupUpgrader takes this process's tableflip Upgrader, and, in a new
// master started by an upgrade, the pipe to report failure through.
func (m *master) setupUpgrader() error {
	upg, err := takeUpgrader(m.cfg.UpgradeTimeout)
	if err != nil {
		return fmt.Errorf("prefork: %w", err)
	}
	m.upg = upg
	if upg != nil {
		m.upgradeFn = func() (string, error) {
			err := upg.Upgrade()
			return readReport(m.report), err // set by prepareReport before the upgrade began
		}
	}
	if upg != nil && upg.HasParent() {
		m.parentReport, _ = upg.Fds.File(reportFile)
		m.takeMetricsImport()
	}
	return nil
}

// tellParent reports a failure to start to the old master, if there is one.
func (m *master) tellParent(err error) {
	if m.parentReport == nil || err == nil {
		return
	}
	m.parentReport.WriteString(err.Error())
	m.parentReport.Close()
	m.parentReport = nil
}

// reportToParent tells an old master why this new one cannot even be set
// up (invalid options in the new binary), before any master exists.
func reportToParent(err error) {
	if os.Getenv(tableflipParentEnv) == "" {
		return
	}
	upg, _ := takeUpgrader(DefaultUpgradeTimeout)
	if upg == nil {
		return
	}
	defer upg.Stop()
	if f, _ := upg.Fds.File(reportFile); f != nil {
		f.WriteString(err.Error())
		f.Close()
	}
}

// tableflipParentEnv is set by tableflip in a process started by Upgrade.
const tableflipParentEnv = handoff.TableflipParentEnv

func (m *master) hasParent() bool { return m.upg != nil && m.upg.HasParent() }

// startUpgrade starts the binary on disk as a new master that inherits
// every socket. This master drains and exits once the new one — and all its
// workers — are ready; if the new one fails, nothing changes here. reply,
// if not nil, gets the outcome.
func (m *master) startUpgrade(reply chan error) {
	refuse := func(why string) {
		m.emit(Event{Kind: EventUpgradeRefused, Err: errors.New(why)})
		answer(reply, fmt.Errorf("%w: %s", ErrUpgradeRefused, why))
	}
	switch {
	case m.upgradeFn == nil:
		refuse("another master in this process owns tableflip's upgrader")
		return
	case m.upgrading:
		refuse("an upgrade is in progress")
		return
	case !m.announced:
		refuse("the workers are not all ready yet")
		return
	case m.waitingParent:
		refuse("the previous master has not exited yet")
		return
	case m.closingSlots():
		refuse("a scale-down is still closing a slot's socket")
		return
	case os.Getpid() == 1:
		refuse("this master is PID 1 (a container's init): the container would end with it; restart the container with the new binary instead")
		return
	}
	if err := m.prepareReport(); err != nil {
		m.emit(Event{Kind: EventUpgradeFailed, Err: err})
		answer(reply, err)
		return
	}
	if err := m.prepareMetricsExport(); err != nil {
		m.emit(Event{Kind: EventUpgradeFailed, Err: err})
		answer(reply, err)
		return
	}
	m.upgrading = true
	m.pauseRecycle()
	if reply != nil {
		m.upgradeWait = append(m.upgradeWait, reply)
	}
	m.emit(Event{Kind: EventUpgradeStarted})
	upgrade := m.upgradeFn
	m.wg.Go(func() {
		report, err := upgrade()
		ev := upgradeEvent{err: err}
		ev.successor, ev.detail = parseReport(report)
		m.post(ev)
	})
}

// prepareReport makes, once, the pipe a new master reports failure into.
func (m *master) prepareReport() error {
	if m.upg == nil {
		return nil // a test's upgrade function: no new process to hear from
	}
	if m.report != nil {
		readReport(m.report) // what an earlier attempt left
		return nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("prefork: upgrade: %w", err)
	}
	defer w.Close()
	if err := m.upg.AddFile(reportFile, w); err != nil {
		r.Close()
		return fmt.Errorf("prefork: upgrade: %w", err)
	}
	m.report = r
	return nil
}

// readReport reads what a failed new master wrote. It has exited, so its
// words are in the pipe already; tableflip keeps a write end open here, so
// the read is bounded instead of waiting for EOF.
func readReport(r *os.File) string {
	if r == nil {
		return ""
	}
	r.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var b strings.Builder
	buf := make([]byte, 4096)
	for b.Len() < 64<<10 {
		n, err := r.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return strings.TrimSpace(b.String())
}

// onUpgrade ends an upgrade attempt: the new master took over, or failed,
// or was killed by a stop; the Upgrade calls waiting learn which.
func (m *master) onUpgrade(ev upgradeEvent) {
	m.upgrading = false
	wait := m.upgradeWait
	m.upgradeWait = nil
	err := m.upgradeOutcome(ev)
	if err == nil {
		m.handOver(ev.successor) // logged before Upgrade returns
	} else {
		m.repause()
		m.advanceRecycle() // the recycles that waited for the upgrade
	}
	for _, c := range wait {
		c <- err
	}
}

// upgradeOutcome reports a failed upgrade and returns its error, or nil
// when the new master took over.
func (m *master) upgradeOutcome(ev upgradeEvent) error {
	switch {
	case ev.err != nil && m.stopping:
		// closeSockets stopped tableflip, which killed the new master.
		m.emit(Event{Kind: EventUpgradeCancelled, Err: ev.err})
		return fmt.Errorf("prefork: upgrade cancelled by the stop: %w", ev.err)
	case ev.err != nil:
		err := fmt.Errorf("prefork: upgrade failed, this master and its workers serve on: %w", ev.err)
		if ev.detail != "" {
			err = fmt.Errorf("%w; the new master said: %s", err, ev.detail)
		}
		m.emit(Event{Kind: EventUpgradeFailed, Err: err})
		return err
	}
	return nil
}

// handOver makes this master leave to the new one, which is ready.
func (m *master) handOver(successor int) {
	m.handedOver = true
	m.successor = successor
	m.emit(Event{Kind: EventUpgraded, Pid: successor})
	for w := range m.workers {
		m.mx.own.leaving(w.gen, causeUpgrade)
	}
	if srv := m.metricsSrv; srv != nil {
		// The new master answers on the metrics socket from now on.
		m.metricsSrv = nil
		m.wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			srv.Shutdown(ctx)
			srv.Close()
		})
	}
	if m.stopping {
		// The new master became ready just as this one began to stop: it
		// serves now, so a stop that was asked for goes on to it.
		switch {
		case m.asked && m.quitting:
			m.forwardStop(signals.Quit)
		case m.asked:
			m.forwardStop(signals.Shutdown)
		}
		return
	}
	m.stop(true, nil)
}

// forwardStop passes a stop asked of this master, after it handed over, on
// to the new master: whoever stops the service may know only the old pid
// (a PID file read earlier, a script), and a stop must stop the service,
// not one generation of it. The signal sent is the one this master's
// Options.Signals maps to the action.
func (m *master) forwardStop(a signals.Action) {
	ev := Event{Kind: EventStopForwarded, Action: a, Pid: m.successor}
	var sig os.Signal
	for _, s := range m.cfg.Signals.Signals() {
		if m.cfg.Signals[s] == a {
			sig = s
			break
		}
	}
	switch {
	case m.successor == 0:
		ev.Err = errors.New("the new master did not say its pid (an older gracefork); stop it yourself")
	case sig == nil:
		ev.Err = fmt.Errorf("no signal maps to %v in Options.Signals; stop the new master yourself", a)
	default:
		if p, err := os.FindProcess(m.successor); err != nil {
			ev.Err = err
		} else if err := p.Signal(sig); err != nil {
			ev.Err = fmt.Errorf("%v to pid %d: %w", sig, m.successor, err)
		}
	}
	m.emit(ev)
}

// tableflip allows one Upgrader per process: flip records that this
// process's has been taken.
var flip struct {
	sync.Mutex
	taken bool
}

// takeUpgrader hands the process's single tableflip Upgrader to the first
// master; later masters in the same process (only tests make several) get
// nil and bind their own sockets.
func takeUpgrader(timeout time.Duration) (*tableflip.Upgrader, error) {
	flip.Lock()
	defer flip.Unlock()
	if flip.taken {
		return nil, nil
	}
	upg, err := tableflip.New(tableflip.Options{UpgradeTimeout: timeout, ListenConfig: sockets.ListenConfig()})
	if err != nil {
		return nil, err
	}
	flip.taken = true
	return upg, nil
}
