//go:build !linux

package prefork

// Reaping orphans as PID 1 is Linux-only (containers); elsewhere these do
// nothing.

func startWorker(start func() (int, error)) (int, error) { return start() }

func workerWaited(int) {}

func (m *master) startReaper() (stop func()) { return func() {} }

func (w *workerRole) startSingleReaper() (stop func()) { return func() {} }
