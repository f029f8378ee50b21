package prefork

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
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
	// Control is the worker's end of its control channel, a unix stream
	// socket. An exec'd worker must find it at descriptor 3.
	Control *os.File
	// Listeners are the listening sockets; an exec'd worker must find them
	// at descriptors 4, 5, … in this order.
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
	// Stderr holds the last lines the process wrote to its standard error.
	Stderr []string
}

// String reads like os.ProcessState's: "exit status 2", "signal: killed".
func (e Exit) String() string {
	if e.Signal != nil {
		return "signal: " + e.Signal.String()
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// Success reports whether the process exited with status 0.
func (e Exit) Success() bool { return e.Signal == nil && e.Code == 0 }

// ExecSpawner starts each worker by executing a binary, by default the one
// this process runs, with the same arguments.
type ExecSpawner struct {
	// Path is the binary; default os.Executable(), resolved at each
	// spawn, so a binary replaced on disk starts new code.
	Path string
	// Args are the arguments after the program name; default os.Args[1:].
	Args []string
	// Stdout and Stderr receive the worker's output; default the master's.
	// The last lines of stderr are kept for Exit.Stderr either way.
	Stdout, Stderr io.Writer
	// TailLines is how many lines of stderr Exit keeps; default 20.
	TailLines int
}

var _ Spawner = (*ExecSpawner)(nil)

// Spawn starts the worker in a process group of its own, so a Ctrl-C in a
// terminal reaches only the master, which stops the workers in order.
func (s *ExecSpawner) Spawn(spec WorkerSpec) (Process, error) {
	path, err := s.path()
	if err != nil {
		return nil, err
	}
	args := s.Args
	if args == nil {
		args = os.Args[1:]
	}
	tail := &tailWriter{max: cmp(s.TailLines, 20), w: orDefault(s.Stderr, os.Stderr)}
	cmd := exec.Command(path, args...)
	cmd.Env = spec.Env
	cmd.Stdout = orDefault(s.Stdout, os.Stdout)
	cmd.Stderr = tail
	cmd.ExtraFiles = append([]*os.File{spec.Control}, spec.Listeners...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A grandchild holding the stderr pipe must not stall Wait.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("prefork: start worker %s: %w", path, err)
	}
	return &execProcess{cmd: cmd, tail: tail}, nil
}

func (s *ExecSpawner) path() (string, error) {
	if s.Path != "" {
		return s.Path, nil
	}
	p, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("prefork: cannot find this binary to start workers: %w", err)
	}
	return p, nil
}

func cmp(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func orDefault(w io.Writer, def *os.File) io.Writer {
	if w != nil {
		return w
	}
	return def
}

type execProcess struct {
	cmd  *exec.Cmd
	tail *tailWriter
}

func (p *execProcess) Pid() int { return p.cmd.Process.Pid }

func (p *execProcess) Signal(sig os.Signal) error {
	err := p.cmd.Process.Signal(sig)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

func (p *execProcess) Wait() Exit {
	p.cmd.Wait()
	st := p.cmd.ProcessState
	e := Exit{Code: st.ExitCode(), Stderr: p.tail.lines()}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		e.Signal = ws.Signal()
	}
	return e
}

// tailWriter passes a worker's stderr through and keeps its last lines.
type tailWriter struct {
	w    io.Writer
	max  int
	mu   sync.Mutex
	buf  []string
	part []byte
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
	t.buf = append(t.buf, strings.TrimRight(line, "\r"))
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
}

func (t *tailWriter) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := append([]string(nil), t.buf...)
	if len(t.part) > 0 {
		out = append(out, string(t.part))
	}
	return out
}
