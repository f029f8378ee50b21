package prefork

import (
	"os"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The PID-1 reaper takes the exit status of a child nobody waits for, and
// never that of a registered worker: the worker's own Wait must still see
// how it ended. Both children have exited before reap runs, so a reaper
// that ignored the registry would take the worker's status (and its Wait
// would fail with ECHILD).
func TestReapSparesRegisteredWorkers(t *testing.T) {
	worker, err := startWorker(func() (int, error) { return startExit(t, 3) })
	if err != nil {
		t.Fatal(err)
	}
	orphan, err := startExit(t, 5)
	if err != nil {
		t.Fatal(err)
	}
	awaitZombie(t, worker)
	awaitZombie(t, orphan)

	reaped := reap(func() []int { return []int{worker, orphan} })
	if len(reaped) != 1 || reaped[0].pid != orphan || reaped[0].status != "exit status 5" {
		t.Fatalf("reaped %+v, want only the orphan %d with exit status 5", reaped, orphan)
	}
	p, _ := os.FindProcess(worker)
	st, err := p.Wait()
	workerWaited(worker)
	if err != nil || st.ExitCode() != 3 {
		t.Fatalf("the worker's own Wait = %v, %v; want exit status 3", st, err)
	}
}

// startExit starts a process that exits with code at once, unwaited.
func startExit(t *testing.T, code int) (int, error) {
	t.Helper()
	pid, _, err := syscall.StartProcess("/bin/sh", []string{"sh", "-c", "exit " + strconv.Itoa(code)},
		&syscall.ProcAttr{Files: []uintptr{0, 1, 2}})
	return pid, err
}

// awaitZombie blocks until pid has exited, leaving it to be waited for.
func awaitZombie(t *testing.T, pid int) {
	t.Helper()
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			if err != nil {
				t.Fatalf("waitid %d: %v", pid, err)
			}
			return
		}
	}
}
