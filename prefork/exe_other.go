//go:build !linux

package prefork

// runningExecutable is empty where the system offers no name for the
// running executable: a worker whose binary is gone cannot start.
const runningExecutable = ""
