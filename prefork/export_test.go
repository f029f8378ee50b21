package prefork

import "fmt"

// SetUpgradeFunc makes m's upgrades call f instead of starting a new
// binary, so tests drive the upgrade state machine without processes: f
// returns nil once "the new master is ready", or why it failed.
func SetUpgradeFunc(m *Master, f func() error) {
	m.upgradeFn = func() (string, error) { return "", f() }
}

// SetUpgradeReportFunc is SetUpgradeFunc for an f that also returns what
// "the new master" wrote into the report pipe.
func SetUpgradeReportFunc(m *Master, f func() (string, error)) { m.upgradeFn = f }

// ReadyReport is what a new master that is ready writes into the report
// pipe.
func ReadyReport(pid int) string { return fmt.Sprintf("%s%d\n", readyLine, pid) }

// ChildPids lists the processes whose parent is pid.
var ChildPids = childPids

// Queued reports how many events wait in m's loop queue, so a test that
// holds the loop knows what it has lined up behind it.
func Queued(m *Master) int { return len(m.events) }
