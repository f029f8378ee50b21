package prefork

import (
	"fmt"
	"os"

	"github.com/gracefork/gracefork/signals"
)

// SetUpgradeFunc makes s's upgrades call f instead of starting a new
// binary, so tests drive the upgrade state machine without processes: f
// returns nil once "the new master is ready", or why it failed.
func SetUpgradeFunc(s *Server, f func() error) {
	s.m.upgradeFn = func() (string, error) { return "", f() }
}

// SetUpgradeReportFunc is SetUpgradeFunc for an f that also returns what
// "the new master" wrote into the report pipe.
func SetUpgradeReportFunc(s *Server, f func() (string, error)) { s.m.upgradeFn = f }

// ReadyReport is what a new master that is ready writes into the report
// pipe.
func ReadyReport(pid int) string { return fmt.Sprintf("%s%d\n", readyLine, pid) }

// ChildPids lists the processes whose parent is pid.
var ChildPids = childPids

// Queued reports how many events wait in s's loop queue, so a test that
// holds the loop knows what it has lined up behind it.
func Queued(s *Server) int { return len(s.m.events) }

// Do asks s's master for an action as the signal mapped to it would:
// without waiting, and without an outcome.
func Do(s *Server, a signals.Action) { s.m.do(request{a: a}) }

// MarkerEnv is the worker marker's name, for tests that look for it.
const MarkerEnv = markerEnv

// ScrapeWaitsFor reports how many workers the latest scrape still waits
// for, so a test lets its deadline pass only once the others' answers are in.
func ScrapeWaitsFor(s *Server) int {
	mx := s.m.mx
	mx.mu.Lock()
	defer mx.mu.Unlock()
	if sc := mx.scrapes[mx.seq]; sc != nil {
		return len(sc.want)
	}
	return 0
}

// SetMetricsExport makes s's master, once it has handed over to a new
// one, write its metrics totals into w, as into the pipe a real upgrade
// passes on (a test's upgrade function starts no process).
func SetMetricsExport(s *Server, w *os.File) { s.m.mx.upgrade.out = w }

// SetMetricsImport makes s's master, before Run, read an old master's
// totals from r, as a master started by an upgrade does.
func SetMetricsImport(s *Server, r *os.File) { s.m.setMetricsImport(r) }
