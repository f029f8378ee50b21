package prefork

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A Spawner starts worker processes for the master. The default, an
// *ExecSpawner, re-executes the running binary; preforktest.Spawner runs
// fake workers inside a test.
type Spawner interface {
	// Spawn starts a worker as spec describes. The files in spec belong to
	// the master: Spawn must not keep them after it returns (a child
	// process has its own copies; a fake can dup them).
	Spawn(spec WorkerSpec) (Process, error)
}

// WorkerSpec describes a worker to start.
type WorkerSpec struct {
	// Slot is the worker's slot, 0 to Workers-1; Generation grows with
	// every spawn.
	Slot, Generation int
	// Reload says the worker replaces a serving one in a reload, which
	// is meant to start the code on disk: an ExecSpawner whose binary is
	// gone fails such a spawn instead of starting the running executable.
	Reload bool
	// Control is the worker's end of its control channel, a unix stream
	// socket. An exec'd worker must find it at descriptor 3
	// (internal/handoff.ControlFd).
	Control *os.File
	// Listeners are the listening sockets; an exec'd worker must find them
	// at descriptors 4, 5, … in this order (internal/handoff.ListenerFd).
	Listeners []*os.File
	// Env is the worker's whole environment, marker included.
	Env []string
}

// Process is a started worker as the master sees it.
type Process interface {
	// Pid identifies the process in logs.
	Pid() int
	// Signal sends sig to the process.
	Signal(sig os.Signal) error
	// Wait blocks until the process has exited. The master calls it once.
	Wait() Exit
}

// Exit describes how a worker process ended.
type Exit struct {
	// Code is the exit status, or -1 when a signal ended the process.
	Code int
	// Signal is the signal that ended it, if one did.
	Signal os.Signal
	// Stderr holds the last lines the process wrote to its standard error;
	// with an ExecSpawner, a Go crash dump (a panic, a fatal error, the
	// goroutine stacks of a hung worker's SIGABRT) whole, from its first
	// line, up to 256 KiB.
	Stderr []string
	// Failure is the error the worker reported to the master before it
	// exited (at most 4 KiB of text): why its WorkerInit hook failed, or
	// why a server could not serve. Empty when it reported none. The
	// master sets it; a Spawner's Wait leaves it empty.
	Failure string
}

// String reads like os.ProcessState's: "exit status 2", "signal: killed".
func (e Exit) String() string {
	if e.Signal != nil {
		return "signal: " + e.Signal.String()
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// ExecSpawner starts each worker by executing a binary, by default the one
// this process runs, with the same arguments.
type ExecSpawner struct {
	// Path is the binary. Each spawn executes what the path names then, so
	// a binary replaced on disk — or a symlink switched to a new release —
	// starts new code. Serve sets it to the path this program was started
	// as (os.Args[0], made absolute, symlinks kept); when empty,
	// os.Executable(), in which symlinks are resolved.
	Path string
	// Args are the arguments after the program name; default os.Args[1:].
	Args []string
	// Stdout and Stderr receive the worker's output; default the master's.
	// The last lines of stderr are kept for Exit.Stderr either way.
	Stdout, Stderr io.Writer
	// TailLines is how many lines of stderr Exit keeps; default 20. A Go
	// crash dump is kept whole besides, up to 256 KiB (see Exit.Stderr).
	TailLines int
	// Logger, if set, turns the worker's stderr into records: each line
	// one record ("worker output", with the worker's slot and pid), a Go
	// crash dump from its first line to the end one record ("worker crash
	// output", level ERROR). Lines that are records already (a JSON
	// object; slog's text format) go to Stderr as they are. Serve sets it
	// to Options.Logger when one is given.
	Logger *slog.Logger

	// self: Path names this program (the master's own spawner), so the
	// running executable may stand in for it when it is gone.
	self bool
	// binaryGone reports when it does: an event of the master's.
	binaryGone func(binary, running string)
}

var _ Spawner = (*ExecSpawner)(nil)

// Spawn starts the worker in a process group of its own, so a Ctrl-C in a
// terminal reaches only the master, which stops the workers in order. On
// Linux the worker gets SIGTERM if the master dies, even while it boots.
//
// It starts the process with syscall.StartProcess and raw descriptors, not
// os/exec: os.StartProcess calls (*os.File).Fd on every inherited file, and
// Fd clears O_NONBLOCK — a flag of the socket shared by every worker, which
// would leave the serving workers in blocking accepts that a drain cannot
// interrupt.
func (s *ExecSpawner) Spawn(spec WorkerSpec) (Process, error) {
	path, err := s.path(spec.Reload)
	if err != nil {
		return nil, err
	}
	args := s.Args
	if args == nil {
		args = os.Args[1:]
	}
	stderr := orDefault(s.Stderr, os.Stderr)
	var records *outputRecords
	if s.Logger != nil {
		records = &outputRecords{raw: stderr}
		stderr = records
	}
	p := &execProcess{tail: &tailWriter{max: cmp.Or(max(s.TailLines, 0), 20), w: stderr}}
	files, err := p.stdio(orDefault(s.Stdout, os.Stdout))
	defer closeAll(files)
	if err != nil {
		p.closeReaders()
		return nil, err
	}
	fds := make([]uintptr, 0, 4+len(spec.Listeners))
	for _, f := range append(files, append([]*os.File{spec.Control}, spec.Listeners...)...) {
		fd, err := rawFd(f)
		if err != nil {
			p.closeReaders()
			return nil, fmt.Errorf("prefork: start worker: %w", err)
		}
		fds = append(fds, fd)
	}
	pid, err := startWorker(func() (int, error) {
		pid, _, err := syscall.StartProcess(path, append([]string{path}, args...), &syscall.ProcAttr{
			Env: spec.Env, Files: fds, Sys: workerSysProcAttr(),
		})
		return pid, err
	})
	runtime.KeepAlive(spec)
	if err != nil {
		p.closeReaders()
		return nil, fmt.Errorf("prefork: start worker %s: %w", path, err)
	}
	p.proc, _ = os.FindProcess(pid) // cannot fail on Unix
	if records != nil {
		records.log = s.Logger.With("slot", spec.Slot, "pid", pid)
		p.pipes[len(p.pipes)-1].end = records.end
	}
	p.copyOutput()
	return p, nil
}

// invokedAs is the path this program was started as, absolute but with its
// symlinks kept, so that "current -> releases/v2" deploys reload into v2.
// Empty when it cannot be found; the spawner then uses os.Executable.
func invokedAs() string {
	p := os.Args[0]
	if !strings.Contains(p, "/") {
		lp, err := exec.LookPath(p)
		if err != nil {
			return ""
		}
		p = lp
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return ""
	}
	if st, err := os.Stat(abs); err != nil || st.IsDir() {
		return ""
	}
	return abs
}

// path is the binary to execute. When this program's file is gone —
// deleted by a deploy, or the temporary build of `go run` — a restart
// (reload false) runs the executable this process runs, where the system
// offers one (Linux: /proc/self/exe), with a warning: a slot that cannot be
// refilled must not cost capacity. A reload is meant to start new code, so
// it fails instead, and the old workers serve on.
func (s *ExecSpawner) path(reload bool) (string, error) {
	p, self := s.Path, s.self
	if p == "" {
		var err error
		if p, err = os.Executable(); err != nil {
			return "", fmt.Errorf("prefork: cannot find this binary to start workers: %w", err)
		}
		self = true
	}
	if _, err := os.Stat(p); !self || !errors.Is(err, fs.ErrNotExist) {
		return p, nil // there, unreadable, or not ours: StartProcess reports it
	}
	if reload {
		return "", fmt.Errorf("prefork: reload: the binary %s is gone; a reload starts the code on disk, so the old workers serve on (deploy the binary, then reload again)", p)
	}
	if runningExecutable == "" {
		return p, nil
	}
	if s.binaryGone != nil {
		s.binaryGone(p, runningExecutable)
	}
	return runningExecutable, nil
}

func orDefault(w io.Writer, def *os.File) io.Writer {
	if w != nil {
		return w
	}
	return def
}

// rawFd returns f's descriptor without Fd's side effect on O_NONBLOCK.
func rawFd(f *os.File) (uintptr, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var fd uintptr
	if err := rc.Control(func(p uintptr) { fd = p }); err != nil {
		return 0, err
	}
	return fd, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

type execProcess struct {
	proc   *os.Process
	tail   *tailWriter
	pipes  []outPipe // the child's output we copy
	copies sync.WaitGroup
}

type outPipe struct {
	r   *os.File // our end
	dst io.Writer
	end func() // if set, called when the output has ended
}

// stdio returns the child's stdin, stdout and stderr: /dev/null; stdout
// itself when it is a file, or a pipe we copy from; a pipe into the tail.
func (p *execProcess) stdio(stdout io.Writer) ([]*os.File, error) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	files := []*os.File{null}
	out, ok := stdout.(*os.File)
	if !ok {
		r, w, err := os.Pipe()
		if err != nil {
			return files, err
		}
		p.pipes = append(p.pipes, outPipe{r: r, dst: stdout})
		files = append(files, w)
	} else {
		dup, err := dupFile(out)
		if err != nil {
			return files, err
		}
		files = append(files, dup)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return files, err
	}
	p.pipes = append(p.pipes, outPipe{r: r, dst: p.tail})
	return append(files, w), nil
}

// dupFile gives the child its own reference to a file we must not close.
func dupFile(f *os.File) (*os.File, error) {
	fd, err := rawFd(f)
	if err != nil {
		return nil, err
	}
	nfd, err := dupCloexec(fd)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(nfd), f.Name()), nil
}

func (p *execProcess) copyOutput() {
	for _, o := range p.pipes {
		p.copies.Go(func() {
			io.Copy(o.dst, o.r)
			if o.end != nil {
				o.end()
			}
		})
	}
}

func (p *execProcess) closeReaders() {
	for _, o := range p.pipes {
		o.r.Close()
	}
}

func (p *execProcess) Pid() int { return p.proc.Pid }

func (p *execProcess) Signal(sig os.Signal) error {
	err := p.proc.Signal(sig)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// Wait reaps the process, then gives its output a moment to drain: a
// grandchild that keeps the pipes open must not stall the master.
func (p *execProcess) Wait() Exit {
	st, err := p.proc.Wait()
	workerWaited(p.proc.Pid)
	done := make(chan struct{})
	go func() { p.copies.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		p.closeReaders()
		<-done
	}
	p.closeReaders()
	if err != nil {
		return Exit{Code: -1, Stderr: append(p.tail.lines(), "wait: "+err.Error())}
	}
	e := Exit{Code: st.ExitCode(), Stderr: p.tail.lines()}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		e.Signal = ws.Signal()
	}
	return e
}

// maxDump bounds the part of a Go crash dump a worker's Exit keeps:
// every goroutine's stack of a busy server is hundreds of kilobytes, and
// the master keeps one Exit per exited worker in memory until it is logged.
const maxDump = 256 << 10

// tailWriter passes a worker's stderr through and keeps its last lines for
// Exit.Stderr — and a Go crash dump whole, from its first line on (see
// dumpStart), up to dumpMax bytes: the "exited" record then carries every
// goroutine's stack of a panic, of a runtime fatal error, or of a hung
// worker's SIGABRT, where 20 lines would keep only the last goroutines.
//
// A dump past dumpMax is cut, with a note, and the last max lines are kept
// after the note: the end of the output is never lost, whatever started
// the dump. A dump start that comes once the dump in progress was cut
// begins a new dump: a log line that happened to look like one does not
// hide a real crash that follows much later.
type tailWriter struct {
	w       io.Writer
	max     int // lines kept outside a dump, and after a cut one
	dumpMax int // bytes of a dump kept; 0 means maxDump
	mu      sync.Mutex
	buf     []string // the last lines; while a dump is kept, those before it
	dump    []string // the dump, from its first line; nil if none
	size    int      // bytes in dump
	past    int      // lines of the dump past dumpMax
	after   []string // the last max of those
	part    []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.w.Write(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.part = append(t.part, p...)
	for {
		i := bytes.IndexByte(t.part, '\n')
		if i < 0 {
			break
		}
		t.push(string(t.part[:i]))
		t.part = t.part[i+1:]
	}
	if len(t.part) > 4096 { // a runaway line without newline
		t.push(string(t.part))
		t.part = nil
	}
	return len(p), nil
}

func (t *tailWriter) push(line string) {
	line = strings.TrimRight(line, "\r")
	switch {
	case dumpStart(line) && (t.dump == nil || t.past > 0):
		if t.dump != nil {
			t.buf = t.after // the cut dump's last lines lead to the new one
		}
		t.dump, t.size, t.past, t.after = []string{line}, len(line)+1, 0, nil
	case t.dump == nil:
		t.buf = keepLast(append(t.buf, line), t.max)
	case t.past == 0 && t.size+len(line)+1 <= cmp.Or(t.dumpMax, maxDump):
		t.dump = append(t.dump, line)
		t.size += len(line) + 1
	default:
		t.past++
		t.after = keepLast(append(t.after, line), t.max)
	}
}

func keepLast(lines []string, n int) []string {
	if len(lines) > n {
		return lines[len(lines)-n:]
	}
	return lines
}

// dumpStart reports whether a line begins a Go crash dump: an unrecovered
// panic, a runtime fatal error, or a deadly signal ("SIGABRT: abort",
// "SIGQUIT: quit", "SIGSEGV: segmentation violation").
func dumpStart(line string) bool {
	if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") {
		return true
	}
	name, _, ok := strings.Cut(line, ": ")
	if !ok || len(name) < 5 || !strings.HasPrefix(name, "SIG") {
		return false
	}
	for _, c := range name[3:] {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func (t *tailWriter) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := append(append([]string(nil), t.buf...), t.dump...)
	if cut := t.past - len(t.after); cut > 0 {
		out = append(out, fmt.Sprintf("[... %d lines cut: Exit.Stderr keeps %d KiB of a crash dump; every line was passed on as it came ...]",
			cut, cmp.Or(t.dumpMax, maxDump)>>10))
	}
	out = append(out, t.after...)
	if len(t.part) > 0 {
		out = append(out, string(t.part))
	}
	return out
}
