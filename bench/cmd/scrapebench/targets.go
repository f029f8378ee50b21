package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// buildTarget builds bench/cmd/series-target into dir.
func buildTarget(repo, dir string) (string, error) {
	bin := filepath.Join(dir, "series-target")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join(repo, "bench", "cmd", "series-target")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building series-target: %v\n%s", err, out)
	}
	return bin, nil
}

// freePort returns a loopback address nobody listens on right now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// proc is a started target, in its own process group.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

func start(name string, args []string, dir string, env []string, logPath string) (*proc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), log: lf}
	go func() { cmd.Wait(); close(p.done) }()
	return p, nil
}

// stop sends SIGTERM to the group, then SIGKILL after 15 s.
func (p *proc) stop() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) // anything left behind
	p.log.Close()
}

// waitFor polls until ok says yes, the process dies or 30 s pass.
func waitFor(p *proc, what string, ok func() bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("target exited while waiting for %s (log %s)", what, p.log.Name())
		default:
		}
		if ok() {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("timed out waiting for %s (log %s)", what, p.log.Name())
}

// scrapeClient opens a new connection per scrape, so a recycled worker's
// closed keep-alive connection never shows up as a scrape error.
var scrapeClient = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
}

// scrape fetches url in the text format; it returns the body and the time
// from sending the request to reading the last byte.
func scrape(url string) (string, time.Duration, error) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	t0 := time.Now()
	resp, err := scrapeClient.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	d := time.Since(t0)
	if err != nil {
		return "", 0, err
	}
	if resp.StatusCode != 200 {
		return "", 0, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), d, nil
}

// load drives GET / on conns keep-alive connections until ctx ends.
type load struct {
	answered atomic.Int64 // 200 responses read in full
	failed   atomic.Int64
	pids     sync.Map // pid in the body -> struct{}
	wg       sync.WaitGroup
}

func startLoad(ctx context.Context, addr string, conns int) *load {
	l := &load{}
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, Proxy: nil}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for range conns {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						l.failed.Add(1)
						time.Sleep(5 * time.Millisecond)
					}
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					if ctx.Err() == nil {
						l.failed.Add(1)
					}
					continue
				}
				l.answered.Add(1)
				if i := strings.Index(string(b), "pid="); i >= 0 {
					l.pids.Store(strings.TrimSpace(string(b[i+4:])), struct{}{})
				}
			}
		}()
	}
	go func() { l.wg.Wait(); tr.CloseIdleConnections() }()
	return l
}

func (l *load) distinctPids() int {
	n := 0
	l.pids.Range(func(any, any) bool { n++; return true })
	return n
}

// gunicornApp is the ASGI app: prometheus_client's multiprocess mode as
// its documentation sets it up (PROMETHEUS_MULTIPROC_DIR, a registry with
// a MultiProcessCollector per scrape, mark_process_dead in child_exit).
const gunicornApp = `import os
from prometheus_client import Counter, CollectorRegistry, generate_latest, CONTENT_TYPE_LATEST, multiprocess

REQUESTS = Counter("hello_requests", "Answers given by the hello handler.")
PID = os.getpid()

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif m["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/metrics":
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
        ctype = CONTENT_TYPE_LATEST
    else:
        REQUESTS.inc()
        body = ("hello from pid=%d\n" % os.getpid()).encode()
        ctype = "text/plain"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", ctype.encode())]})
    await send({"type": "http.response.body", "body": body})
`

const gunicornConf = `from prometheus_client import multiprocess

def child_exit(server, worker):
    multiprocess.mark_process_dead(worker.pid)
`

// startGunicorn writes the app into dir/gunicorn and starts it with
// --max-requests; it returns the process and the multiprocess directory.
func startGunicorn(dir, addr string, workers, maxRequests int) (*proc, string, error) {
	gunicorn, err := exec.LookPath("gunicorn")
	if err != nil {
		return nil, "", errors.New("gunicorn not found (install Debian packages gunicorn python3-uvicorn python3-prometheus-client)")
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import prometheus_client, uvicorn").Run(); err != nil {
		return nil, "", errors.New("python3-prometheus-client or python3-uvicorn missing (Debian packages)")
	}
	app := filepath.Join(dir, "gunicorn")
	mp := filepath.Join(app, "multiproc")
	os.RemoveAll(app)
	if err := os.MkdirAll(mp, 0o755); err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(filepath.Join(app, "app.py"), []byte(gunicornApp), 0o644); err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(filepath.Join(app, "conf.py"), []byte(gunicornConf), 0o644); err != nil {
		return nil, "", err
	}
	p, err := start("/usr/bin/python3", []string{gunicorn, "-k", "uvicorn.workers.UvicornWorker",
		"-w", strconv.Itoa(workers), "-b", addr, "--graceful-timeout", "10",
		"--max-requests", strconv.Itoa(maxRequests), "-c", "conf.py", "app:app"},
		app, []string{"PROMETHEUS_MULTIPROC_DIR=" + mp}, filepath.Join(dir, "gunicorn.log"))
	return p, mp, err
}

func countFiles(dir string) int {
	es, _ := os.ReadDir(dir)
	return len(es)
}

// firstLine returns the first line of s, for error messages.
func firstLine(s string) string {
	line, _, _ := bufio.NewReader(strings.NewReader(s)).ReadLine()
	return string(line)
}
