package prefork

import (
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// orphanGrace is how long, in single-process mode as PID 1, a child stays
// a zombie before the process reaps it. Every child is this process's
// own there, orphans and the program's os/exec commands alike, and a
// command's exit status belongs to its Wait: a zombie older than this is
// taken for an orphan nobody will wait for.
const orphanGrace = 5 * time.Second

// startSingleReaper, in a single process that is PID 1 (a container's
// init), reaps the zombies among its children that nobody waited for
// within orphanGrace: the orphans the kernel hands it. It looks with
// WNOWAIT, which leaves a zombie in place, and reaps one pid at a time,
// never with wait(-1).
func (w *workerRole) startSingleReaper() (stop func()) {
	if os.Getpid() != 1 {
		return func() {}
	}
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGCHLD)
	quit := make(chan struct{})
	t := time.NewTicker(time.Second)
	w.wg.Go(func() {
		seen := map[int]time.Time{} // zombies, and when first seen
		for {
			w.reapOld(seen, time.Now())
			select {
			case <-sigc:
			case <-t.C:
			case <-quit:
				return
			}
		}
	})
	return func() { t.Stop(); signal.Stop(sigc); close(quit) }
}

// reapOld reaps the zombie children first seen at least orphanGrace before
// now, and notes the new ones.
func (w *workerRole) reapOld(seen map[int]time.Time, now time.Time) {
	kids := map[int]bool{}
	for _, pid := range children(os.Getpid()) {
		var info unix.Siginfo
		if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil); err != nil || info.Signo == 0 {
			continue // running, or waited for meanwhile
		}
		kids[pid] = true
		first, ok := seen[pid]
		if !ok {
			seen[pid] = now
			continue
		}
		if now.Sub(first) < orphanGrace {
			continue
		}
		var ws unix.WaitStatus
		if n, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err == nil && n == pid {
			w.log.Info("reaped an orphan", "pid", pid, "status", waitStatus(ws))
		}
		delete(seen, pid)
	}
	for pid := range seen {
		if !kids[pid] {
			delete(seen, pid) // waited for by its owner
		}
	}
}
