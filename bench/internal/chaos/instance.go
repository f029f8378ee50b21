package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Instance is a running target: its process group, its current master
// (which changes after an upgrade) and every pid it ever had.
type Instance struct {
	Target  *Target
	Addr    string
	Workers int
	LogPath string
	// Pids holds every pid that answered a request or was seen in the
	// target's process tree.
	Pids *PIDSet
	// OldMasterSignal is sent to gunicorn's old master at the end of its
	// upgrade procedure (SIGQUIT, as gunicorn documents, or SIGTERM).
	OldMasterSignal syscall.Signal
	// PIDFile, if not empty, is where the target keeps its current
	// master's pid (gracefork's -pidfile); upgrades are followed with it.
	PIDFile string

	cmd    *exec.Cmd
	logf   *os.File
	pgid   int
	exited chan struct{} // closed when the started process was reaped
	// exitedAt and exitStatus are set before exited is closed.
	exitedAt   time.Time
	exitStatus string

	mu         sync.Mutex
	master     int
	masterST   uint64
	targeted   map[int]bool // workers already hit by kill9/stop in this round
	stopped    []int        // SIGSTOPped workers, to SIGCONT
	killed     []int        // SIGKILLed workers (Killed)
	answeredBy map[int]bool // pids that served a request
	termAt     time.Time    // when the term action signalled termMaster
	termMaster int
	// readyzFail is how long after the SIGTERM the target's readiness
	// path first answered anything but 200 (or was refused); readyzDone
	// is closed once that is known or the poll gave up.
	readyzFail time.Duration
	readyzDone chan struct{}
}

// live lists the started instances, so a signal handler can kill them all.
var live = struct {
	sync.Mutex
	m map[*Instance]bool
}{m: make(map[*Instance]bool)}

// start launches the built target on addr with workers workers and the
// extra flags, waits until it answers, and records its process tree.
func (t *Target) start(ctx context.Context, l *launcher, addr string, workers int, extra []string, logPath string) (*Instance, error) {
	var pidFile string
	if l.pidFile != nil {
		pidFile = l.pidFile(addr)
		_ = os.Remove(pidFile) // a stale file from an earlier instance on this port
	}
	cmd := l.command(addr, workers, extra)
	logf, err := startProcess(cmd, logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", t.Name, err)
	}
	in := &Instance{
		Target: t, Addr: addr, Workers: workers, LogPath: logPath, Pids: NewPIDSet(),
		OldMasterSignal: syscall.SIGQUIT, PIDFile: pidFile,
		cmd: cmd, logf: logf, pgid: cmd.Process.Pid, exited: make(chan struct{}),
		master: cmd.Process.Pid, targeted: make(map[int]bool), answeredBy: make(map[int]bool),
	}
	if p, err := ReadProc(in.master); err == nil {
		in.masterST = p.StartTime
	}
	in.Pids.Add(in.master)
	live.Lock()
	live.m[in] = true
	live.Unlock()
	go func() {
		_ = cmd.Wait()
		in.exitedAt = time.Now()
		in.exitStatus = cmd.ProcessState.String()
		close(in.exited)
	}()
	if err := WaitReady(ctx, addr, l.readyTimeout, in.exited); err != nil {
		in.Kill()
		return nil, fmt.Errorf("%s: %w (log: %s)", t.Name, err, logPath)
	}
	if t.Prefork {
		if _, err := waitChildren(ctx, in.master, workers, 10*time.Second); err != nil {
			in.Kill()
			return nil, fmt.Errorf("%s: %w (log: %s)", t.Name, err, logPath)
		}
	}
	in.Observe()
	return in, nil
}

// Master returns the current master pid.
func (in *Instance) Master() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.master
}

// MasterAlive reports whether the current master still runs.
func (in *Instance) MasterAlive() bool {
	in.mu.Lock()
	m, st := in.master, in.masterST
	in.mu.Unlock()
	if m == in.cmd.Process.Pid {
		select {
		case <-in.exited:
			return false
		default:
		}
	}
	return Alive(m, st)
}

// setMaster records a new master after an upgrade.
func (in *Instance) setMaster(pid int) {
	var st uint64
	if p, err := ReadProc(pid); err == nil {
		st = p.StartTime
	}
	in.mu.Lock()
	in.master, in.masterST = pid, st
	in.mu.Unlock()
	in.Pids.Add(pid)
}

// WorkerPids returns the current master's children.
func (in *Instance) WorkerPids() []int {
	t, err := ScanProcs()
	if err != nil {
		return nil
	}
	return t.Children(in.Master())
}

// Observe records every process of the target's tree: the harness's
// descendants (the harness runs one target at a time) and the target's
// process group.
func (in *Instance) Observe() {
	t, err := ScanProcs()
	if err != nil {
		return
	}
	for _, pid := range in.tree(t) {
		in.Pids.Add(pid)
	}
}

// tree returns the live pids of the target: descendants of the harness
// and members of the target's process group.
func (in *Instance) tree(t ProcTable) []int {
	pids := append(t.Descendants(os.Getpid()), t.InGroup(in.pgid)...)
	slices.Sort(pids)
	return slices.Compact(pids)
}

// Watch calls Observe every interval until ctx ends, and reaps zombies
// reparented to the harness.
func (in *Instance) Watch(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			in.Observe()
			ReapZombies(in.owns)
		}
	}
}

// owns reports whether pid is waited for by the instance's exec.Cmd.
func (in *Instance) owns(pid int) bool {
	return pid == in.cmd.Process.Pid
}

// pickWorker chooses a worker for kill9/stop: the lowest pid not yet hit
// in this round, so consecutive faults hit different workers.
func (in *Instance) pickWorker() (int, error) {
	kids := in.WorkerPids()
	master, alive := in.Master(), in.MasterAlive()
	in.mu.Lock()
	defer in.mu.Unlock()
	kids = slices.DeleteFunc(kids, func(p int) bool { return slices.Contains(in.stopped, p) })
	switch {
	case len(kids) > 0:
	case !alive:
		return 0, fmt.Errorf("no worker: master pid=%d has exited", master)
	default:
		return 0, fmt.Errorf("master pid=%d has no running worker", master)
	}
	for _, k := range kids {
		if !in.targeted[k] {
			in.targeted[k] = true
			return k, nil
		}
	}
	clear(in.targeted)
	in.targeted[kids[0]] = true
	return kids[0], nil
}

// signalMaster sends sig to the current master.
func (in *Instance) signalMaster(sig syscall.Signal) (string, error) {
	m := in.Master()
	if err := syscall.Kill(m, sig); err != nil {
		return "", fmt.Errorf("%s to master %d: %w", SigName(sig), m, err)
	}
	return fmt.Sprintf("sent %s to master pid=%d", SigName(sig), m), nil
}

// SigName returns the conventional name of sig, such as "SIGHUP".
func SigName(sig syscall.Signal) string {
	names := map[syscall.Signal]string{
		syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT",
		syscall.SIGKILL: "SIGKILL", syscall.SIGUSR2: "SIGUSR2", syscall.SIGTERM: "SIGTERM",
		syscall.SIGSTOP: "SIGSTOP", syscall.SIGCONT: "SIGCONT", syscall.SIGTTIN: "SIGTTIN",
		syscall.SIGTTOU: "SIGTTOU", syscall.SIGWINCH: "SIGWINCH",
	}
	if n, ok := names[sig]; ok {
		return n
	}
	return sig.String()
}

// Inject performs action a and describes what it did. ErrUnsupported is
// returned for actions the target cannot do. Actions whose effect is only
// known by observation (usr2 on gracefork) watch until observeUntil (at
// least 1 s, at most 10 s), normally the time of the next fault.
func (in *Instance) Inject(ctx context.Context, a Action, observeUntil time.Time) (string, error) {
	if why := in.Target.Supports(a); why != "" {
		return why, ErrUnsupported
	}
	switch a {
	case ActKill9, ActStop:
		return in.hitWorker(a)
	case ActHUP:
		return in.signalMaster(syscall.SIGHUP)
	case ActTTIN:
		return in.signalMaster(syscall.SIGTTIN)
	case ActTTOU:
		return in.signalMaster(syscall.SIGTTOU)
	case ActTerm:
		t := time.Now()
		msg, err := in.signalMaster(syscall.SIGTERM)
		if err == nil {
			in.mu.Lock()
			if in.termAt.IsZero() {
				in.termAt, in.termMaster = t, in.master
				if in.Target.readyz != "" {
					in.readyzDone = make(chan struct{})
					go in.pollReadyz(t)
				}
			}
			in.mu.Unlock()
		}
		return msg, err
	case ActUSR2:
		if in.Target.Name == TGunicorn {
			return in.gunicornUpgrade(ctx)
		}
		return in.observedUpgrade(ctx, observeUntil)
	}
	return "", fmt.Errorf("unknown action %q", a)
}

// pollReadyz asks the readiness path on fresh connections, as an
// orchestrator's probe does, until it fails, for at most 5 s after the
// SIGTERM sent at t.
func (in *Instance) pollReadyz(t time.Time) {
	defer close(in.readyzDone)
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: time.Second}
	for time.Since(t) < 5*time.Second {
		resp, err := client.Get("http://" + in.Addr + in.Target.readyz)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if err != nil || resp.StatusCode != http.StatusOK {
			in.mu.Lock()
			in.readyzFail = time.Since(t)
			in.mu.Unlock()
			return
		}
		time.Sleep(2 * time.Millisecond) // a poll interval, not a synchronisation
	}
}

// ReadyzFailedAfter returns how long after the SIGTERM the readiness path
// began to fail; ok is false when it was not polled or never failed.
func (in *Instance) ReadyzFailedAfter() (time.Duration, bool) {
	in.mu.Lock()
	done := in.readyzDone
	in.mu.Unlock()
	if done == nil {
		return 0, false
	}
	<-done
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.readyzFail, in.readyzFail > 0
}

// ErrUnsupported marks an action the target cannot do.
var ErrUnsupported = errors.New("not supported")

// hitWorker SIGKILLs or SIGSTOPs one worker.
func (in *Instance) hitWorker(a Action) (string, error) {
	w, err := in.pickWorker()
	if err != nil {
		return "", err
	}
	sig := syscall.SIGKILL
	if a == ActStop {
		sig = syscall.SIGSTOP
	}
	if err := syscall.Kill(w, sig); err != nil {
		return "", fmt.Errorf("%s to worker %d: %w", SigName(sig), w, err)
	}
	if a == ActStop {
		in.mu.Lock()
		in.stopped = append(in.stopped, w)
		in.mu.Unlock()
		return fmt.Sprintf("stopped worker pid=%d", w), nil
	}
	in.mu.Lock()
	in.killed = append(in.killed, w)
	in.mu.Unlock()
	return fmt.Sprintf("killed worker pid=%d", w), nil
}

// Killed returns the workers the kill9 action SIGKILLed, in order.
func (in *Instance) Killed() []int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.killed)
}

// ResumeStopped sends SIGCONT to every worker stopped by the stop action.
func (in *Instance) ResumeStopped() []int {
	in.mu.Lock()
	s := in.stopped
	in.stopped = nil
	in.mu.Unlock()
	for _, p := range s {
		_ = syscall.Kill(p, syscall.SIGCONT)
	}
	return s
}

// findNewMaster looks for a child of old that has children of its own:
// the new master of an upgrade (it is started by the old master, and
// starts its own workers). Only children of old are considered, so a
// previous master still draining its workers is never mistaken for it.
func (in *Instance) findNewMaster(old int) int {
	t, err := ScanProcs()
	if err != nil {
		return 0
	}
	for _, pid := range t.Children(old) {
		if len(t.Children(pid)) > 0 {
			return pid
		}
	}
	return 0
}

// pidFromFile returns the live pid named by the target's PID file, or 0.
func (in *Instance) pidFromFile() int {
	if in.PIDFile == "" {
		return 0
	}
	b, err := os.ReadFile(in.PIDFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !Alive(pid, 0) {
		return 0
	}
	return pid
}

// observedUpgrade sends USR2 and watches for a new master, since whether
// the target supports upgrades is only known by observation. With a PID
// file (gracefork) the new master is the pid the file names once it
// differs from the old one: it is written when every new worker is ready.
// Without one, it is a child of the old master with children of its own.
// It then checks, within the same window, that a new worker answered and
// that the old master and its workers exited; later signals go to the new
// master.
func (in *Instance) observedUpgrade(ctx context.Context, observeUntil time.Time) (string, error) {
	old := in.Master()
	var oldKids []int
	if t, err := ScanProcs(); err == nil {
		oldKids = t.Children(old)
	}
	if _, err := in.signalMaster(syscall.SIGUSR2); err != nil {
		return "", err
	}
	start := time.Now()
	window := min(max(time.Until(observeUntil), time.Second), 10*time.Second)
	deadline := start.Add(window)
	var newMaster int
	how := "child of the old master with workers"
	if in.PIDFile != "" {
		how = "named by the PID file"
	}
	_ = pollUntil(ctx, deadline, func() bool {
		if in.PIDFile != "" {
			if p := in.pidFromFile(); p != 0 && p != old {
				newMaster = p
			}
		} else {
			newMaster = in.findNewMaster(old)
		}
		return newMaster != 0 || !Alive(old, 0)
	})
	found := time.Since(start).Seconds()
	if newMaster == 0 {
		if !in.MasterAlive() {
			return fmt.Sprintf("sent SIGUSR2 to master pid=%d: master exited and no new master appeared", old), nil
		}
		return fmt.Sprintf("sent SIGUSR2 to master pid=%d: no new master within %.2fs, old master still serving: USR2 upgrade looks not supported",
			old, found), nil
	}
	in.mu.Lock()
	oldMasterST := in.masterST
	in.mu.Unlock()
	ppid := -1
	if p, err := ReadProc(newMaster); err == nil {
		ppid = p.PPID
	}
	in.setMaster(newMaster)
	var newKids []int
	if t, err := ScanProcs(); err == nil {
		newKids = t.Children(newMaster)
	}
	for _, k := range newKids {
		in.Pids.Add(k)
	}
	msg := fmt.Sprintf("sent SIGUSR2 to master pid=%d: new master pid=%d (%s; its parent then: pid=%d) after %.2fs, workers %v",
		old, newMaster, how, ppid, found, newKids)

	// The rest of the window: a new worker answers, the old generation goes.
	var answered []int
	oldGone, kidsGone := -1.0, -1.0
	_ = pollUntil(ctx, deadline, func() bool {
		answered = slices.DeleteFunc(slices.Clone(newKids), func(p int) bool { return !in.answered(p) })
		if oldGone < 0 && !Alive(old, oldMasterST) {
			oldGone = time.Since(start).Seconds()
		}
		if kidsGone < 0 && !slices.ContainsFunc(oldKids, func(p int) bool { return Alive(p, 0) }) {
			kidsGone = time.Since(start).Seconds()
		}
		return len(answered) > 0 && oldGone >= 0 && kidsGone >= 0
	})
	if len(answered) > 0 {
		msg += fmt.Sprintf("; new workers answered: %v", answered)
	} else {
		msg += "; NO new worker answered within the window"
	}
	if oldGone >= 0 {
		msg += fmt.Sprintf("; old master exited after %.2fs", oldGone)
	} else {
		msg += fmt.Sprintf("; old master pid=%d STILL ALIVE after %.2fs", old, window.Seconds())
	}
	if kidsGone >= 0 {
		msg += fmt.Sprintf(", old workers %v gone after %.2fs", oldKids, kidsGone)
	} else {
		var alive []int
		for _, p := range oldKids {
			if Alive(p, 0) {
				alive = append(alive, p)
			}
		}
		msg += fmt.Sprintf(", old workers %v STILL ALIVE after %.2fs", alive, window.Seconds())
	}
	return msg, nil
}

// gunicornUpgrade is gunicorn's documented upgrade procedure: USR2 to the
// old master, which forks and execs a new master with new workers; once
// they serve, WINCH to the old master (it only stops its workers on WINCH
// when daemonized, so in the foreground this is logged and ignored) and
// then QUIT (or TERM, see OldMasterSignal) to the old master, which stops
// its own workers and exits. The new master notices it was orphaned and
// promotes itself.
func (in *Instance) gunicornUpgrade(ctx context.Context) (string, error) {
	old := in.Master()
	if _, err := in.signalMaster(syscall.SIGUSR2); err != nil {
		return "", err
	}
	var newMaster int
	var newKids []int
	err := pollUntil(ctx, time.Now().Add(30*time.Second), func() bool {
		t, err := ScanProcs()
		if err != nil {
			return false
		}
		for _, c := range t.Children(old) {
			if kids := t.Children(c); len(kids) >= in.Workers {
				newMaster, newKids = c, kids
				return true
			}
		}
		return false
	})
	if newMaster == 0 {
		return "", fmt.Errorf("USR2 to master pid=%d: no new master with %d workers: %v", old, in.Workers, err)
	}
	for _, k := range newKids {
		in.Pids.Add(k)
	}
	// Wait until the new workers have booted: uvicorn logs "Application
	// startup complete" per worker. Bounded, and a request answered by a
	// new worker counts too.
	booted := func(pid int) bool { return in.answered(pid) || in.logged(pid, "Application startup complete") }
	bootErr := pollUntil(ctx, time.Now().Add(15*time.Second), func() bool {
		return !slices.ContainsFunc(newKids, func(p int) bool { return !booted(p) })
	})
	_ = syscall.Kill(old, syscall.SIGWINCH)
	_ = syscall.Kill(old, in.OldMasterSignal)
	in.setMaster(newMaster)
	msg := fmt.Sprintf("USR2 to pid=%d; new master pid=%d workers %v booted; SIGWINCH+%s to old master", old, newMaster, newKids, SigName(in.OldMasterSignal))
	if bootErr != nil {
		msg = fmt.Sprintf("USR2 to pid=%d; new master pid=%d workers %v NOT seen booted within 15s; SIGWINCH+%s to old master", old, newMaster, newKids, SigName(in.OldMasterSignal))
	}
	// The next upgrade needs the old master gone: until then the new one
	// ignores USR2 ("Parent exists").
	t0 := time.Now()
	exitErr := pollUntil(ctx, t0.Add(15*time.Second), func() bool { return !Alive(old, 0) || in.oldExited(old) })
	switch {
	case exitErr == nil:
		msg += fmt.Sprintf("; old master exited after %.2fs", time.Since(t0).Seconds())
	case ctx.Err() != nil:
		msg += "; the run ended before the old master exited"
	default:
		msg += "; old master still alive after 15s"
	}
	return msg, nil
}

// logged reports whether the target's log has a line with "[pid]" and
// text, as gunicorn writes them.
func (in *Instance) logged(pid int, text string) bool {
	b, err := os.ReadFile(in.LogPath)
	if err != nil {
		return false
	}
	tag := "[" + strconv.Itoa(pid) + "]"
	for line := range strings.Lines(string(b)) {
		if strings.Contains(line, tag) && strings.Contains(line, text) {
			return true
		}
	}
	return false
}

// Answered records that pid served a request; it is the load's OnPID
// callback.
func (in *Instance) Answered(pid int) {
	in.mu.Lock()
	in.answeredBy[pid] = true
	in.mu.Unlock()
	in.Pids.Add(pid)
}

// answered reports whether pid served a request.
func (in *Instance) answered(pid int) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	_, ok := in.answeredBy[pid]
	return ok
}

// oldExited reports whether old is the started process and it was reaped.
func (in *Instance) oldExited(old int) bool {
	if old != in.cmd.Process.Pid {
		return false
	}
	select {
	case <-in.exited:
		return true
	default:
		return false
	}
}

// pollUntil calls cond every 20 ms until it is true (nil), ctx ends or the
// deadline passes (an error).
func pollUntil(ctx context.Context, deadline time.Time, cond func() bool) error {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Termed returns when the term action first signalled the master, and
// which pid that was; the zero time if it never did.
func (in *Instance) Termed() (time.Time, int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.termAt, in.termMaster
}

// StartedExit returns when the started process (the first master) was
// reaped and its exit status, or ok false if it still runs.
func (in *Instance) StartedExit() (at time.Time, status string, ok bool) {
	select {
	case <-in.exited:
		return in.exitedAt, in.exitStatus, true
	default:
		return time.Time{}, "", false
	}
}

// AwaitExit waits up to grace for the master to exit without signalling
// it (it was already told to stop), then kills the group if it did not.
func (in *Instance) AwaitExit(grace time.Duration) error {
	in.ResumeStopped()
	err := pollUntil(context.Background(), time.Now().Add(grace), func() bool {
		ReapZombies(in.owns)
		return !in.MasterAlive()
	})
	if err != nil {
		m := in.Master()
		in.Kill()
		return fmt.Errorf("master pid=%d still alive %s after the end of the run: killed", m, grace)
	}
	return nil
}

// Stop ends the target: SIGCONT to stopped workers, SIGTERM to the
// master, and a wait of at most grace for it to exit. It returns how long
// the master took, or an error if it had to be killed.
func (in *Instance) Stop(grace time.Duration) (time.Duration, error) {
	in.ResumeStopped()
	start := time.Now()
	if !in.MasterAlive() {
		return 0, nil
	}
	_ = syscall.Kill(in.Master(), syscall.SIGTERM)
	err := pollUntil(context.Background(), start.Add(grace), func() bool {
		ReapZombies(in.owns)
		return !in.MasterAlive()
	})
	if err != nil {
		in.Kill()
		return time.Since(start), fmt.Errorf("master pid=%d still alive %s after SIGTERM: killed", in.Master(), grace)
	}
	return time.Since(start), nil
}

// Leftovers waits up to grace for every process the target ever had to
// exit and returns those still alive, with their command lines.
func (in *Instance) Leftovers(grace time.Duration) map[int]string {
	var alive []int
	_ = pollUntil(context.Background(), time.Now().Add(grace), func() bool {
		ReapZombies(in.owns)
		t, err := ScanProcs()
		if err != nil {
			return false
		}
		alive = in.Pids.AliveNow()
		alive = append(alive, in.tree(t)...)
		slices.Sort(alive)
		alive = slices.Compact(alive)
		return len(alive) == 0
	})
	out := make(map[int]string, len(alive))
	for _, p := range alive {
		out[p] = Cmdline(p)
	}
	return out
}

// Kill SIGKILLs the target's process group, every known pid and the
// harness's descendants, then waits briefly for them to be reaped. It is
// safe to call more than once.
func (in *Instance) Kill() {
	in.ResumeStopped()
	_ = syscall.Kill(-in.pgid, syscall.SIGKILL)
	for _, p := range in.Pids.AliveNow() {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	if t, err := ScanProcs(); err == nil {
		for _, p := range in.tree(t) {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
	_ = pollUntil(context.Background(), time.Now().Add(2*time.Second), func() bool {
		ReapZombies(in.owns)
		return len(in.Pids.AliveNow()) == 0
	})
	in.release()
}

// release closes the log and forgets the instance.
func (in *Instance) release() {
	live.Lock()
	delete(live.m, in)
	live.Unlock()
	select {
	case <-in.exited:
		_ = in.logf.Close()
	default:
	}
}

// KillAll kills every started instance that was not released; the signal
// handler of the chaos command calls it.
func KillAll() {
	live.Lock()
	ins := make([]*Instance, 0, len(live.m))
	for in := range live.m {
		ins = append(ins, in)
	}
	live.Unlock()
	for _, in := range ins {
		in.Kill()
	}
}
