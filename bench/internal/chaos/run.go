package chaos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

// RunConfig describes one run: the same load and faults are used for
// every target.
type RunConfig struct {
	Env      BuildEnv
	Workers  int
	Conns    int
	Duration time.Duration
	Requests int64
	Timeout  time.Duration
	// DialTimeout bounds each connect (0: only Timeout).
	DialTimeout time.Duration
	Mode        ClientMode
	Faults      []Fault
	// Warmup is left out of the steady throughput.
	Warmup time.Duration
	// StopGrace bounds the wait for the master after the final SIGTERM.
	StopGrace time.Duration
	// LeftoverGrace is how long processes may outlive their master before
	// they count as left behind.
	LeftoverGrace time.Duration
	// OldMasterSignal ends gunicorn's old master in its upgrade procedure.
	OldMasterSignal syscall.Signal
	// Progress receives a line per fault as it fires.
	Progress io.Writer
	// Recycle, when set, makes this a run of the recycle scenario: the
	// target gets its recycling flags (Recycle.On) or is the baseline
	// (the zero Recycle), and the summary gets its RecycleStats. Targets
	// that cannot recycle are skipped.
	Recycle *Recycle
	// Round numbers the run among -rounds (0: a single round).
	Round int
}

// Run builds, starts, loads and faults one target, then stops it and
// checks that nothing was left behind. A target that cannot run here is
// returned with Skipped set, not as an error.
func Run(ctx context.Context, name string, cfg RunConfig) (*Summary, error) {
	t, err := LookupTarget(name)
	if err != nil {
		return nil, err
	}
	s := &Summary{Target: name, Client: string(cfg.Mode), Conns: cfg.Conns, Workers: cfg.Workers, Round: cfg.Round}
	if !t.Prefork {
		s.Workers = 1
	}
	var extra []string
	if r := cfg.Recycle; r != nil {
		s.Recycle = &RecycleStats{Recycle: *r, LogReplacements: -1}
		if t.recycleArgs == nil {
			s.Skipped = fmt.Sprintf("%s: skipped: it cannot recycle its workers after a number of requests", name)
			return s, nil
		}
		if r.On() {
			extra = t.recycleArgs(*r)
		}
	}
	l, err := t.build(ctx, cfg.Env)
	if errors.Is(err, ErrSkipped) {
		s.Skipped = fmt.Sprintf("%s: %v", name, err)
		if name == TGunicorn {
			s.Skipped = GunicornMissing
		}
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	addr, err := FreePort()
	if err != nil {
		return nil, err
	}
	logDir := cfg.Env.LogDir
	if logDir == "" {
		logDir = cfg.Env.Tmp
	}
	s.LogPath = filepath.Join(logDir, s.FileName()+".log")
	var logFrom int64 // the log is appended to: count only this run's lines
	if fi, err := os.Stat(s.LogPath); err == nil {
		logFrom = fi.Size()
	}
	in, err := t.start(ctx, l, addr, cfg.Workers, extra, s.LogPath)
	if err != nil {
		return nil, err
	}
	defer in.Kill()
	in.OldMasterSignal = cfg.OldMasterSignal

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go in.Watch(watchCtx, 100*time.Millisecond)

	start := time.Now()
	loadCtx, stopLoad := context.WithDeadline(ctx, start.Add(cfg.Duration))
	defer stopLoad()
	var faults []FaultRecord
	var wg sync.WaitGroup
	wg.Go(func() { faults = runSchedule(loadCtx, in, cfg.Faults, start, cfg.Progress) })
	lr, err := RunLoad(loadCtx, LoadConfig{
		Addr: addr, Conns: cfg.Conns, Duration: cfg.Duration, Requests: cfg.Requests,
		Timeout: cfg.Timeout, DialTimeout: cfg.DialTimeout, Mode: cfg.Mode, OnPID: in.Answered,
	}, start)
	// The request budget may end the load early; faults stop with it.
	stopLoad()
	wg.Wait()
	if err != nil {
		return nil, err
	}
	total := min(time.Since(start), cfg.Duration)
	s.Interrupted = ctx.Err() != nil
	stopWatch()
	in.Observe()

	s.MasterExit = stopTarget(ctx, in, cfg.StopGrace, start)
	s.Stop = stopReport(in, start)
	for pid, cmdline := range in.Leftovers(cfg.LeftoverGrace) {
		s.Leftovers = append(s.Leftovers, Leftover{PID: pid, Cmdline: cmdline})
	}
	sortLeftovers(s.Leftovers)

	noteNewPids(faults, in.Pids, start, start.Add(total))
	s.Faults = faults
	s.Unfinished, s.LongestUnfinishedS = lr.Unfinished, lr.LongestUnfinished.Seconds()
	s.ErrorSamples = make(map[string]string)
	for c, e := range lr.Samples {
		s.ErrorSamples[c.String()] = e
	}
	s.Losses.Samples = lr.KindSamples
	s.KilledWorkers = in.Killed()
	s.Summarize(lr.Results, cfg.Warmup, total)
	if cfg.Recycle != nil {
		log, err := os.ReadFile(s.LogPath)
		if err != nil || int64(len(log)) < logFrom {
			log = nil // LogReplacements stays unknown
		} else {
			log = log[logFrom:]
		}
		s.recycleStats(*cfg.Recycle, t, lr.Results, total, log)
	}
	return s, nil
}

// stopTarget SIGTERMs the master and describes how it ended. A master
// that the term action already signalled is not signalled again: it is
// given grace to exit, and its exit is timed from that SIGTERM.
func stopTarget(ctx context.Context, in *Instance, grace time.Duration, start time.Time) string {
	if ctx.Err() != nil {
		grace = min(grace, 2*time.Second) // interrupted: do not linger
	}
	m := in.Master()
	if termAt, termed := in.Termed(); !termAt.IsZero() && termed == m {
		if err := in.AwaitExit(grace); err != nil {
			return err.Error()
		}
		if at, status, ok := in.StartedExit(); ok && m == in.cmd.Process.Pid {
			return fmt.Sprintf("pid=%d exited %.2fs after SIGTERM (sent by the term action at %.2fs; %s)",
				m, at.Sub(termAt).Seconds(), termAt.Sub(start).Seconds(), status)
		}
		return fmt.Sprintf("pid=%d exited after the SIGTERM of the term action at %.2fs", m, termAt.Sub(start).Seconds())
	}
	if !in.MasterAlive() {
		return fmt.Sprintf("pid=%d had already exited before the end of the run", m)
	}
	d, err := in.Stop(grace)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("pid=%d exited %.2fs after SIGTERM", m, d.Seconds())
}

// stopReport describes the term action's SIGTERM, if one was sent: when,
// to which master, and how long that master took to exit (measured when
// it is the started process, which Run has already waited for).
func stopReport(in *Instance, start time.Time) *StopReport {
	termAt, m := in.Termed()
	if termAt.IsZero() {
		return nil
	}
	r := &StopReport{TermAtS: termAt.Sub(start).Seconds(), Master: m, termAfter: termAt.Sub(start)}
	if d, ok := in.ReadyzFailedAfter(); ok {
		ms := float64(d) / float64(time.Millisecond)
		r.ReadyzFailedAfterMS = &ms
	}
	at, status, ok := in.StartedExit()
	switch {
	case m != in.cmd.Process.Pid:
		r.Exit = "not measured: the signalled master is not the started process"
	case !ok:
		r.Exit = "still running"
	default:
		d := at.Sub(termAt).Seconds()
		r.ExitAfterS, r.Exit = &d, status
	}
	return r
}

// runSchedule fires the faults at their times after start until ctx ends,
// printing each as it fires.
func runSchedule(ctx context.Context, in *Instance, faults []Fault, start time.Time, progress io.Writer) []FaultRecord {
	recs := make([]FaultRecord, len(faults))
	for i, f := range faults {
		recs[i] = FaultRecord{Action: f.Action, Scheduled: f.At.Seconds(), Supported: in.Target.Supports(f.Action) == ""}
	}
	for i, f := range faults {
		timer := time.NewTimer(time.Until(start.Add(f.At)))
		select {
		case <-ctx.Done():
			timer.Stop()
			for j := i; j < len(recs); j++ {
				recs[j].Detail = "not fired: the run ended first"
			}
			return recs
		case <-timer.C:
		}
		r := &recs[i]
		r.Fired, r.firedAfter = true, time.Since(start)
		r.At = r.firedAfter.Seconds()
		if progress != nil {
			fmt.Fprintf(progress, "at=%.2fs action=%s target=%s\n", r.At, f.Action, in.Target.Name)
		}
		until, _ := ctx.Deadline()
		if i+1 < len(faults) {
			until = start.Add(faults[i+1].At)
		}
		detail, err := in.Inject(ctx, f.Action, until)
		switch {
		case errors.Is(err, ErrUnsupported):
			r.Detail = fmt.Sprintf("action=%s %s", f.Action, detail)
		case err != nil:
			r.Detail = "error: " + err.Error()
		default:
			r.Detail, r.Injected = detail, true
		}
		if progress != nil {
			fmt.Fprintf(progress, "  -> %s\n", r.Detail)
		}
	}
	return recs
}

// noteNewPids appends to each injected fault's detail the processes that
// first appeared between it and the next fault (or the end of the run):
// the observable effect of a reload, respawn, upgrade or scale-up.
func noteNewPids(recs []FaultRecord, pids *PIDSet, start, end time.Time) {
	for i := range recs {
		r := &recs[i]
		if !r.Injected {
			continue
		}
		to := end
		for _, next := range recs[i+1:] {
			if next.Fired && next.firedAfter > r.firedAfter {
				to = start.Add(next.firedAfter)
				break
			}
		}
		window := to.Sub(start.Add(r.firedAfter)).Seconds()
		if added := pids.SeenBetween(start.Add(r.firedAfter), to); len(added) > 0 {
			r.NewPids = added
			r.Detail += fmt.Sprintf("; new pids within %.2fs: %v", window, added)
		} else {
			r.Detail += fmt.Sprintf("; no new process within %.2fs", window)
		}
	}
}

// sortLeftovers orders leftovers by pid.
func sortLeftovers(ls []Leftover) {
	slices.SortFunc(ls, func(a, b Leftover) int { return cmp.Compare(a.PID, b.PID) })
}
