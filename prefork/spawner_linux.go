package prefork

import "syscall"

// workerSysProcAttr puts a worker in a process group of its own and sends
// it SIGTERM when the master dies. SIGTERM, not SIGKILL: a worker still
// booting has no handler for it yet and dies at once, where it would
// otherwise live on until it reached Serve; a serving worker drains, as
// it does when its control channel reaches EOF, and its requests in flight
// finish.
//
// Linux sends the signal when the thread that started the worker exits,
// not the process. The master spawns from the goroutine that calls Run,
// which stays until every worker it started has exited; Go ends an OS
// thread only when a goroutine that locked it exits, so the signal can
// fire early only if a goroutine of the program locks the thread a spawn
// ran on and exits without unlocking it. The worker then drains and the
// master replaces it: nothing is lost.
func workerSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
