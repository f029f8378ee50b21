package prefork

import (
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// workerPids are the processes the ExecSpawner started and waits for
// itself. As PID 1 the master reaps every other child (orphans the kernel
// hands it), and must never take a worker's exit status: os.Process.Wait
// would then fail and the crash go unexplained.
var workerPids = struct {
	sync.Mutex
	pids map[int]bool
	wake chan struct{} // a pid left the set: rescan, its reuse may be a zombie
}{pids: map[int]bool{}, wake: make(chan struct{}, 1)}

// startWorker runs start, which starts a process and returns its pid, and
// registers the pid under the lock the reaper holds while it reaps, so a
// worker that dies at once is never taken for an orphan.
func startWorker(start func() (int, error)) (int, error) {
	workerPids.Lock()
	defer workerPids.Unlock()
	pid, err := start()
	if err == nil {
		workerPids.pids[pid] = true
	}
	return pid, err
}

// workerWaited forgets pid once its exit status is collected.
func workerWaited(pid int) {
	workerPids.Lock()
	delete(workerPids.pids, pid)
	workerPids.Unlock()
	select {
	case workerPids.wake <- struct{}{}:
	default:
	}
}

// startReaper, in a master that is PID 1 (a container's init), reaps the
// orphans the kernel reparents to it, on every SIGCHLD; elsewhere it does
// nothing. Orphans are found in /proc (the children of this process that
// are not workers) and waited for one pid at a time with WNOHANG, never
// with wait(-1), which would take the workers' statuses too.
func (m *master) startReaper() (stop func()) {
	if os.Getpid() != 1 {
		return func() {}
	}
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGCHLD)
	quit := make(chan struct{})
	m.wg.Go(func() {
		for {
			m.reapOrphans()
			select {
			case <-sigc:
			case <-workerPids.wake:
			case <-quit:
				return
			}
		}
	})
	return func() { signal.Stop(sigc); close(quit) }
}

// reapOrphans waits for every child of this process that has exited and
// is not a worker. The registry stays locked throughout, so no worker can start
// (and die) between the scan and the wait.
func (m *master) reapOrphans() {
	// Posted once the registry is unlocked: the loop may wait for it to
	// start a worker.
	for _, ev := range reap(func() []int { return children(os.Getpid()) }) {
		m.post(ev)
	}
}

// reap waits, without blocking, for each child kids lists that is not a
// registered worker. kids is called with the registry locked.
func reap(kids func() []int) (reaped []orphanEvent) {
	workerPids.Lock()
	defer workerPids.Unlock()
	for _, pid := range kids() {
		if workerPids.pids[pid] {
			continue
		}
		var ws unix.WaitStatus
		if n, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err == nil && n == pid {
			reaped = append(reaped, orphanEvent{pid, waitStatus(ws)})
		}
	}
	return reaped
}

func waitStatus(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "signal: " + ws.Signal().String()
	}
	return "exit status " + strconv.Itoa(ws.ExitStatus())
}

// children lists the children of ppid. Not only the zombies: the SIGCHLD
// of an exit comes a moment before /proc shows the process as a zombie,
// whereas wait4 waits for that moment.
func children(ppid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	want := strconv.Itoa(ppid)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// "pid (comm) state ppid …": comm may hold spaces and parentheses.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == want {
			out = append(out, pid)
		}
	}
	return out
}
