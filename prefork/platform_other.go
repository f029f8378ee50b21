//go:build !unix

package prefork

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
)

// supported fails, and New chooses the single-process mode: workers inherit their listening sockets and their
// control channel by descriptor number, and the master drives them with
// unix signals.
func supported() error {
	return fmt.Errorf("%w: on %s the master cannot hand its listening sockets to worker processes; New serves in single-process mode there", ErrUnsupported, runtime.GOOS)
}

// sigWINCH is nil: there is no window-resize signal.
var sigWINCH os.Signal

// notifyMasterOnly does nothing: none of the master-only signals exist.
func notifyMasterOnly(chan<- os.Signal) {}

func isTerminal(int) bool { return false }

func processGone(int) bool { return false }

func dupCloexec(uintptr) (int, error) { return -1, errors.ErrUnsupported }

func workerSysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }

// runTerminalWaiter does nothing: there is no upgrade here.
func runTerminalWaiter() {}

// awaitSuccessorInTerminal returns at once: there is no upgrade here.
func (m *master) awaitSuccessorInTerminal() {}

// interactive is false: there is no SIGWINCH to ignore, nor a terminal
// waiter.
func interactive() bool { return false }
