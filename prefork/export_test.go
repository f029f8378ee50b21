package prefork

// SetUpgradeFunc makes m's upgrades call f instead of starting a new
// binary, so tests drive the upgrade state machine without processes: f
// returns nil once "the new master is ready", or why it failed.
func SetUpgradeFunc(m *Master, f func() error) { m.upgradeFn = f }

// ChildPids lists the processes whose parent is pid.
var ChildPids = childPids

// Queued reports how many events wait in m's loop queue, so a test that
// holds the loop knows what it has lined up behind it.
func Queued(m *Master) int { return len(m.events) }
