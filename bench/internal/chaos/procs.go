package chaos

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ProcInfo is the part of /proc/<pid>/stat the harness needs.
type ProcInfo struct {
	PID   int
	PPID  int
	PGID  int
	State byte   // R, S, D, T, Z, ...
	Comm  string // executable name, as the kernel truncates it
	// StartTime is the start time in clock ticks after boot. Together with
	// PID it identifies one process, so a recycled pid is not mistaken for
	// the process that held it before.
	StartTime uint64
}

// ReadProc reads /proc/<pid>/stat.
func ReadProc(pid int) (ProcInfo, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ProcInfo{}, err
	}
	return parseStat(b)
}

// parseStat parses one /proc/<pid>/stat line. The comm field is in
// parentheses and may itself contain spaces and parentheses, so the fields
// after it are found from the last ')'.
func parseStat(b []byte) (ProcInfo, error) {
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return ProcInfo{}, fmt.Errorf("malformed stat %q", b)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:open])))
	if err != nil {
		return ProcInfo{}, fmt.Errorf("malformed stat pid: %w", err)
	}
	f := strings.Fields(string(b[closing+1:]))
	// f[0]=state f[1]=ppid f[2]=pgrp ... f[19]=starttime (field 22 overall).
	if len(f) < 20 || len(f[0]) != 1 {
		return ProcInfo{}, fmt.Errorf("malformed stat %q", b)
	}
	p := ProcInfo{PID: pid, State: f[0][0], Comm: string(b[open+1 : closing])}
	if p.PPID, err = strconv.Atoi(f[1]); err != nil {
		return ProcInfo{}, err
	}
	if p.PGID, err = strconv.Atoi(f[2]); err != nil {
		return ProcInfo{}, err
	}
	if p.StartTime, err = strconv.ParseUint(f[19], 10, 64); err != nil {
		return ProcInfo{}, err
	}
	return p, nil
}

// ProcTable is a snapshot of every process visible in /proc.
type ProcTable map[int]ProcInfo

// ScanProcs takes a snapshot of /proc. Processes that exit while it is
// being read are left out.
func ScanProcs() (ProcTable, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	t := make(ProcTable, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, err := ReadProc(pid); err == nil {
			t[pid] = p
		}
	}
	return t, nil
}

// Children returns the live (non-zombie) children of pid, sorted by pid.
func (t ProcTable) Children(pid int) []int {
	var out []int
	for _, p := range t {
		if p.PPID == pid && p.State != 'Z' {
			out = append(out, p.PID)
		}
	}
	slices.Sort(out)
	return out
}

// Descendants returns every live process whose parent chain leads to pid
// (pid itself excluded), sorted by pid.
func (t ProcTable) Descendants(pid int) []int {
	kids := make(map[int][]int)
	for _, p := range t {
		kids[p.PPID] = append(kids[p.PPID], p.PID)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, k := range kids[cur] {
			if k == pid || slices.Contains(out, k) {
				continue
			}
			queue = append(queue, k)
			if t[k].State != 'Z' {
				out = append(out, k)
			}
		}
	}
	slices.Sort(out)
	return out
}

// InGroup returns the live processes of process group pgid, sorted by pid.
func (t ProcTable) InGroup(pgid int) []int {
	var out []int
	for _, p := range t {
		if p.PGID == pgid && p.State != 'Z' {
			out = append(out, p.PID)
		}
	}
	slices.Sort(out)
	return out
}

// Alive reports whether the process pid that started at startTime still
// runs: kill(pid, 0) succeeds, the pid was not recycled, and it is not a
// zombie. A startTime of 0 skips the recycling check.
func Alive(pid int, startTime uint64) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	p, err := ReadProc(pid)
	if err != nil || p.State == 'Z' {
		return false
	}
	return startTime == 0 || p.StartTime == startTime
}

// Cmdline returns the command line of pid with NULs turned into spaces, or
// its comm when the command line cannot be read.
func Cmdline(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		if p, err := ReadProc(pid); err == nil {
			return "[" + p.Comm + "]"
		}
		return "?"
	}
	return strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
}

// SetChildSubreaper marks the calling process as a child subreaper
// (PR_SET_CHILD_SUBREAPER): processes orphaned below it, such as a new
// master left behind when the old one exits after an upgrade, are
// reparented to the harness instead of init, so they stay in its process
// tree where they can be found, reaped and killed.
func SetChildSubreaper() error {
	const prSetChildSubreaper = 36
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// ReapZombies reaps zombie children of the harness that were reparented to
// it (see SetChildSubreaper), except the pids in owned, which an exec.Cmd
// waits for itself.
func ReapZombies(owned func(pid int) bool) {
	t, err := ScanProcs()
	if err != nil {
		return
	}
	self := os.Getpid()
	for _, p := range t {
		if p.PPID != self || p.State != 'Z' || owned(p.PID) {
			continue
		}
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(p.PID, &ws, syscall.WNOHANG, nil)
	}
}

// PIDSet records every process that belonged to a target at some point:
// pids that answered a request and pids seen in the target's process tree.
// It is safe for concurrent use.
type PIDSet struct {
	mu   sync.Mutex
	seen map[int]uint64 // pid -> start time
	at   map[int]time.Time
}

// NewPIDSet returns an empty set.
func NewPIDSet() *PIDSet {
	return &PIDSet{seen: make(map[int]uint64), at: make(map[int]time.Time)}
}

// Add records pid, reading its start time the first time it is seen.
// It reports whether pid is new.
func (s *PIDSet) Add(pid int) bool {
	if pid <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[pid]; ok {
		return false
	}
	var st uint64
	if p, err := ReadProc(pid); err == nil {
		st = p.StartTime
	}
	s.seen[pid] = st
	s.at[pid] = time.Now()
	return true
}

// Has reports whether pid was recorded.
func (s *PIDSet) Has(pid int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.seen[pid]
	return ok
}

// SeenBetween returns the pids first recorded in [from, to), sorted.
func (s *PIDSet) SeenBetween(from, to time.Time) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for pid, t := range s.at {
		if !t.Before(from) && t.Before(to) {
			out = append(out, pid)
		}
	}
	slices.Sort(out)
	return out
}

// AliveNow returns the recorded pids that still run, sorted.
func (s *PIDSet) AliveNow() []int {
	s.mu.Lock()
	snap := make(map[int]uint64, len(s.seen))
	for k, v := range s.seen {
		snap[k] = v
	}
	s.mu.Unlock()
	var out []int
	for pid, st := range snap {
		if Alive(pid, st) {
			out = append(out, pid)
		}
	}
	slices.Sort(out)
	return out
}

// Len returns the number of recorded pids.
func (s *PIDSet) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}
