package chaos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Target names.
const (
	TGracefork = "gracefork"
	TNetHTTP   = "nethttp"
	TFastHTTP  = "fasthttp"
	TGunicorn  = "gunicorn"
	// Single processes, for the stop-single scenario: gracefork's
	// single-process mode without and with a 2 s shutdown delay, and
	// uvicorn alone (what one worker per pod runs).
	TGraceforkSingle      = "gracefork-single"
	TGraceforkSingleDelay = "gracefork-single-delay"
	TUvicorn              = "uvicorn"
	// gracefork's multi-process mode with a 2 s shutdown delay.
	TGraceforkDelay = "gracefork-delay"
	// gracefork whose workers each have every core (GOMAXPROCS set in
	// their environment), not GOMAXPROCS/workers: the split's baseline.
	TGraceforkAllCores = "gracefork-allcores"
	// gracefork with a listening socket per worker (-reuse-port, Linux).
	TGraceforkReusePort = "gracefork-reuseport"
)

// TargetNames lists the known targets.
var TargetNames = []string{TGracefork, TNetHTTP, TFastHTTP, TGunicorn, TGraceforkSingle, TGraceforkSingleDelay, TUvicorn, TGraceforkDelay, TGraceforkAllCores, TGraceforkReusePort}

// SingleShutdownDelay is gracefork-single-delay's and gracefork-delay's
// -shutdown-delay.
const SingleShutdownDelay = 2 * time.Second

// ErrSkipped wraps the reason a target cannot run on this machine.
var ErrSkipped = errors.New("skipped")

// BuildEnv says where things are and where built binaries go.
type BuildEnv struct {
	Repo string // repository root (holds examples/ and bench/)
	Tmp  string // scratch directory for binaries and apps
	// LogDir receives the targets' output, <target>.log ("" = Tmp).
	LogDir string
	// Python is the interpreter that runs gunicorn ("" = /usr/bin/python3).
	Python string
}

// Target is a server under test: how to build it, start it and which
// faults it supports.
type Target struct {
	Name string
	// Prefork is true for targets made of a master and worker processes.
	Prefork bool
	// unsupported maps an action to why the target cannot do it.
	unsupported map[Action]string
	build       func(ctx context.Context, env BuildEnv) (*launcher, error)
	// recycleArgs, if set, are the command-line flags that make the
	// target's workers retire after a number of requests; nil when the
	// target cannot.
	recycleArgs func(r Recycle) []string
	// replacements counts, in the target's log, the workers it replaced
	// because of those flags; nil when its log does not tell.
	replacements func(log []byte, workers int) int
	// readyz, if set, is the target's readiness path: after the term
	// action the harness polls it to time when it begins to fail.
	readyz string
}

// launcher starts a built target.
type launcher struct {
	// command returns the target's command line, with extra flags of
	// the run (recycleArgs) in their place.
	command func(addr string, workers int, extra []string) *exec.Cmd
	// readyTimeout bounds the wait for the first answer.
	readyTimeout time.Duration
	// pidFile, if set, names the file in which the target keeps its
	// current master's pid (gracefork's -pidfile, rewritten by each new
	// master after an upgrade).
	pidFile func(addr string) string
}

// LookupTarget returns the target called name.
func LookupTarget(name string) (*Target, error) {
	switch name {
	case TGracefork:
		return &Target{Name: name, Prefork: true, build: buildGracefork, readyz: "/readyz",
			recycleArgs: graceforkRecycleArgs, replacements: graceforkReplacements}, nil
	case TGraceforkDelay:
		return &Target{Name: name, Prefork: true, readyz: "/readyz", build: graceforkVariant(func(cmd *exec.Cmd) {
			cmd.Args = append(cmd.Args, "-shutdown-delay", SingleShutdownDelay.String())
		})}, nil
	case TGraceforkReusePort:
		return &Target{Name: name, Prefork: true, readyz: "/readyz", recycleArgs: graceforkRecycleArgs, replacements: graceforkReplacements,
			build: graceforkVariant(func(cmd *exec.Cmd) { cmd.Args = append(cmd.Args, "-reuse-port") })}, nil
	case TGraceforkAllCores:
		return &Target{Name: name, Prefork: true, readyz: "/readyz", build: graceforkVariant(func(cmd *exec.Cmd) {
			cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(runtime.NumCPU()))
		})}, nil
	case TNetHTTP:
		why := "not supported by nethttp (single process, no workers, no signal handling)"
		return &Target{Name: name, build: buildNetHTTP, unsupported: map[Action]string{
			ActKill9: why, ActStop: why, ActHUP: why, ActUSR2: why, ActTTIN: why, ActTTOU: why,
		}}, nil
	case TFastHTTP:
		why := "not supported by fasthttp (prefork handles no signals: Go's default action would kill the master)"
		return &Target{Name: name, Prefork: true, build: buildFastHTTP, unsupported: map[Action]string{
			ActHUP: why, ActUSR2: why, ActTTIN: why, ActTTOU: why,
		}}, nil
	case TGunicorn:
		return &Target{Name: name, Prefork: true, build: buildGunicorn,
			recycleArgs: gunicornRecycleArgs, replacements: gunicornReplacements}, nil
	case TGraceforkSingle, TGraceforkSingleDelay:
		why := "not supported in single-process mode (no workers)"
		delay := time.Duration(0)
		if name == TGraceforkSingleDelay {
			delay = SingleShutdownDelay
		}
		return &Target{Name: name, readyz: "/readyz", build: func(ctx context.Context, env BuildEnv) (*launcher, error) {
			return buildGraceforkSingle(ctx, env, delay)
		}, unsupported: map[Action]string{ActKill9: why, ActStop: why, ActHUP: why, ActUSR2: why, ActTTIN: why, ActTTOU: why}}, nil
	case TUvicorn:
		why := "not supported by uvicorn alone (single process)"
		return &Target{Name: name, build: buildUvicorn, unsupported: map[Action]string{
			ActKill9: why, ActStop: why, ActHUP: why, ActUSR2: why, ActTTIN: why, ActTTOU: why,
		}}, nil
	}
	return nil, fmt.Errorf("unknown target %q (want one of %s)", name, strings.Join(TargetNames, ", "))
}

// Supports returns "" when the target can do a, or why it cannot.
func (t *Target) Supports(a Action) string {
	return t.unsupported[a]
}

// goBuild runs go build -o out pkg in dir.
func goBuild(ctx context.Context, dir, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s in %s: %w\n%s", pkg, dir, err, b)
	}
	return nil
}

// buildGracefork builds the repository's examples/hello.
func buildGracefork(ctx context.Context, env BuildEnv) (*launcher, error) {
	main := filepath.Join(env.Repo, "examples", "hello", "main.go")
	if _, err := os.Stat(main); err != nil {
		return nil, fmt.Errorf("%w: %s does not exist yet", ErrSkipped, main)
	}
	bin := filepath.Join(env.Tmp, "hello")
	if err := goBuild(ctx, env.Repo, bin, "./examples/hello"); err != nil {
		return nil, fmt.Errorf("%w: cannot build examples/hello: %v", ErrSkipped, err)
	}
	// The master writes its pid to -pidfile once it serves, and each new
	// master of a USR2 upgrade rewrites it: the harness follows upgrades
	// with it. One file per address, so concurrent instances do not share.
	pidFile := func(addr string) string {
		return filepath.Join(env.Tmp, "gracefork-"+strings.NewReplacer(":", "_", "/", "_").Replace(addr)+".pid")
	}
	return &launcher{readyTimeout: 20 * time.Second, pidFile: pidFile, command: func(addr string, workers int, extra []string) *exec.Cmd {
		args := []string{"-addr", addr, "-workers", strconv.Itoa(workers), "-graceful-timeout", "10s", "-pidfile", pidFile(addr)}
		return exec.Command(bin, append(args, extra...)...)
	}}, nil
}

// graceforkVariant builds examples/hello, whose commands adjust changes.
func graceforkVariant(adjust func(*exec.Cmd)) func(context.Context, BuildEnv) (*launcher, error) {
	return func(ctx context.Context, env BuildEnv) (*launcher, error) {
		l, err := buildGracefork(ctx, env)
		if err != nil {
			return nil, err
		}
		multi := l.command
		l.command = func(addr string, workers int, extra []string) *exec.Cmd {
			cmd := multi(addr, workers, extra)
			adjust(cmd)
			return cmd
		}
		return l, nil
	}
}

// buildGraceforkSingle builds examples/hello and runs it in single-process
// mode (GRACEFORK_SINGLE_PROCESS=1, as a container would set it) with the
// given shutdown delay.
func buildGraceforkSingle(ctx context.Context, env BuildEnv, delay time.Duration) (*launcher, error) {
	l, err := buildGracefork(ctx, env)
	if err != nil {
		return nil, err
	}
	multi := l.command
	l.command = func(addr string, _ int, extra []string) *exec.Cmd {
		cmd := multi(addr, 1, append([]string{"-shutdown-delay", delay.String()}, extra...))
		cmd.Env = append(os.Environ(), "GRACEFORK_SINGLE_PROCESS=1")
		return cmd
	}
	return l, nil
}

// buildUvicorn writes the gunicorn target's ASGI app and runs it with
// uvicorn alone, one process, as one worker per pod would.
func buildUvicorn(ctx context.Context, env BuildEnv) (*launcher, error) {
	py := cmp.Or(env.Python, "/usr/bin/python3")
	check := exec.CommandContext(ctx, py, "-c", "import uvicorn")
	if b, err := check.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%w: uvicorn: install Debian's python3-uvicorn (%s: %s)", ErrSkipped, py, strings.TrimSpace(string(b)))
	}
	dir := filepath.Join(env.Tmp, "uvicorn-app")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte(asgiApp), 0o644); err != nil {
		return nil, err
	}
	return &launcher{readyTimeout: 30 * time.Second, command: func(addr string, _ int, extra []string) *exec.Cmd {
		host, port, _ := net.SplitHostPort(addr)
		args := append([]string{"-m", "uvicorn", "--host", host, "--port", port, "--no-access-log"}, extra...)
		cmd := exec.Command(py, append(args, "app:app")...)
		cmd.Dir = dir
		return cmd
	}}, nil
}

// buildNetHTTP builds bench/cmd/nethttp-target.
func buildNetHTTP(ctx context.Context, env BuildEnv) (*launcher, error) {
	bin := filepath.Join(env.Tmp, "nethttp-target")
	if err := goBuild(ctx, filepath.Join(env.Repo, "bench"), bin, "./cmd/nethttp-target"); err != nil {
		return nil, err
	}
	return &launcher{readyTimeout: 10 * time.Second, command: func(addr string, _ int, extra []string) *exec.Cmd {
		return exec.Command(bin, append([]string{"-addr", addr}, extra...)...)
	}}, nil
}

// buildFastHTTP builds bench/cmd/fasthttp-target.
func buildFastHTTP(ctx context.Context, env BuildEnv) (*launcher, error) {
	bin := filepath.Join(env.Tmp, "fasthttp-target")
	if err := goBuild(ctx, filepath.Join(env.Repo, "bench"), bin, "./cmd/fasthttp-target"); err != nil {
		return nil, err
	}
	return &launcher{readyTimeout: 10 * time.Second, command: func(addr string, workers int, extra []string) *exec.Cmd {
		return exec.Command(bin, append([]string{"-addr", addr, "-workers", strconv.Itoa(workers)}, extra...)...)
	}}, nil
}

// asgiApp is the gunicorn target's application.
const asgiApp = `import os

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = ("hello from worker=? pid=%d\n" % os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
`

// GunicornMissing is printed when the gunicorn target cannot run.
const GunicornMissing = "gunicorn: skipped (install Debian packages gunicorn python3-uvicorn)"

// buildGunicorn writes the ASGI app and checks that gunicorn and uvicorn
// are installed for Debian's python3.
func buildGunicorn(ctx context.Context, env BuildEnv) (*launcher, error) {
	py := env.Python
	if py == "" {
		py = "/usr/bin/python3"
	}
	gunicorn, err := exec.LookPath("gunicorn")
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrSkipped, GunicornMissing)
	}
	check := exec.CommandContext(ctx, py, "-c", "import gunicorn, uvicorn")
	if b, err := check.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%w: %s (%s: %s)", ErrSkipped, GunicornMissing, py, strings.TrimSpace(string(b)))
	}
	dir := filepath.Join(env.Tmp, "gunicorn-app")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte(asgiApp), 0o644); err != nil {
		return nil, err
	}
	return &launcher{readyTimeout: 30 * time.Second, command: func(addr string, workers int, extra []string) *exec.Cmd {
		// Run the gunicorn script with Debian's interpreter explicitly, so
		// a pyenv python3 earlier on PATH is not used.
		args := []string{gunicorn, "-k", "uvicorn.workers.UvicornWorker",
			"-w", strconv.Itoa(workers), "-b", addr, "--chdir", dir, "--graceful-timeout", "10"}
		args = append(append(args, extra...), "app:app")
		cmd := exec.Command(py, args...)
		cmd.Dir = dir
		return cmd
	}}, nil
}

// FreePort returns a loopback address with a port that was free a moment
// ago.
func FreePort() (string, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// WaitReady polls GET http://addr/ until it answers 200, the process
// exits (exited is closed), or timeout passes.
func WaitReady(ctx context.Context, addr string, timeout time.Duration, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		select {
		case <-exited:
			return fmt.Errorf("target exited before it answered on %s", addr)
		case <-ctx.Done():
			return fmt.Errorf("target did not answer on %s within %s: %v", addr, timeout, last)
		case <-tick.C:
		}
	}
}

// waitChildren polls until master has at least n children or timeout.
func waitChildren(ctx context.Context, master, n int, timeout time.Duration) ([]int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var kids []int
		if t, err := ScanProcs(); err == nil {
			kids = t.Children(master)
		}
		if len(kids) >= n {
			return kids, nil
		}
		select {
		case <-ctx.Done():
			return kids, fmt.Errorf("master %d has %d children, want %d", master, len(kids), n)
		case <-tick.C:
		}
	}
}

// startProcess starts cmd in its own process group, killed if the harness
// thread that started it dies, with output appended to logPath.
func startProcess(cmd *exec.Cmd, logPath string) (*os.File, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, err
	}
	return logf, nil
}
