//go:build unix && !linux

package prefork

import "syscall"

// workerSysProcAttr puts a worker in a process group of its own. A worker
// whose master dies notices when its control channel reaches EOF, once it
// serves.
func workerSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
