//go:build unix

package prefork_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/gracefork/gracefork/prefork/preforktest"
)

// stopLoad is strict keep-alive load, like strictLoad, that tells apart
// what a stop may do to a client from what it must not: a refused dial is
// a clear "not here" (safe to retry elsewhere); a request that fails on a
// connection the kernel accepted, or a dial that does not complete, is a
// loss. Each client ends at its first refusal.
type stopLoad struct {
	addr string
	wg   sync.WaitGroup

	tally
	mu      sync.Mutex
	refused int
	lost    []string
}

func startStopLoad(addr string, conns int) *stopLoad {
	l := &stopLoad{addr: addr}
	for range conns {
		l.wg.Go(l.client)
	}
	return l
}

func (l *stopLoad) client() {
	d := net.Dialer{Timeout: preforktest.Patience}
	for {
		c, err := d.Dial("tcp", l.addr)
		if errors.Is(err, syscall.ECONNREFUSED) {
			l.mu.Lock()
			l.refused++
			l.mu.Unlock()
			return
		}
		if err != nil {
			l.lose("dial: " + err.Error())
			return
		}
		l.serve(c)
		c.Close()
	}
}

// serve sends requests on c until an answer says Connection: close.
func (l *stopLoad) serve(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		_, closeAfter, err := (&strictLoad{}).request(c, br)
		if err != nil {
			l.lose(err.Error())
			return
		}
		l.answered()
		if closeAfter {
			return
		}
	}
}

func (l *stopLoad) lose(why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lost = append(l.lost, why)
}

// SIGTERM under strict keep-alive load: the clients that reconnect during
// the stop are answered or refused, never accepted and then reset. (The
// master used to keep its copy of the socket open until every worker had
// gone: reconnects queued for nobody and were reset at its exit, one per
// client.)
func TestE2EStopUnderLoadResetsNothing(t *testing.T) { stopUnderLoad(t, "TEST_WORKERS=2") }

func stopUnderLoad(t *testing.T, env ...string) {
	p := startMaster(t, env...)
	var at int
	addr := p.addr(&at)
	fds := pidfds(t, p.ready(&at, 2))
	load := startStopLoad(addr, 32)
	load.waitMore(t, 500)
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
	waitGone(t, fds)
	load.wg.Wait() // every client ends at its refusal
	if len(load.lost) > 0 {
		t.Errorf("%d requests lost on accepted connections; first: %v", len(load.lost), load.lost[:min(5, len(load.lost))])
	}
	t.Logf("%d answered, %d clients refused, %d lost", load.count(), load.refused, len(load.lost))
}

// While the last worker drains a long request, a new client is refused at
// once (it can retry elsewhere), not left in the socket's queue to time
// out.
func TestE2EStopRefusesNewClients(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=1")
	var at int
	addr := p.addr(&at)
	p.ready(&at, 1)
	slow := startSlow(t, "http://"+addr+"/slow")
	started := p.waitLog(&at, "slow request started", nil)
	p.signal(syscall.SIGTERM)
	p.waitLog(&at, "worker draining", nil)
	// Until the worker has closed its listener a dial may still reach it,
	// and must then be answered.
	for {
		c, err := net.DialTimeout("tcp", addr, preforktest.Patience)
		if errors.Is(err, syscall.ECONNREFUSED) {
			break
		}
		if err != nil {
			t.Fatalf("dial during the stop: %v, want refused", err)
		}
		_, _, err = (&strictLoad{}).request(c, bufio.NewReader(c))
		c.Close()
		if err != nil {
			t.Fatalf("a connection accepted during the stop was not answered: %v", err)
		}
	}
	slow.finish(t, started["pid"])
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
}

// shortDir is a temporary directory with a path short enough for unix
// sockets (108 bytes).
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func unixClient(path string) *http.Client {
	return &http.Client{Timeout: preforktest.Patience, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
}

func mustExist(t *testing.T, path, when string) {
	t.Helper()
	if st, err := os.Lstat(path); err != nil || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("%s: socket %s: %v", when, path, err)
	}
}

func mustBeGone(t *testing.T, path, when string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s: %s still there (%v)", when, path, err)
	}
}

// A new master that fails after it took the sockets leaves the unix
// socket's path alone: the old master serves on it. The old master, the
// last, removes the path when it stops — before it exits.
func TestE2EFailedUpgradeKeepsUnixSocket(t *testing.T) {
	dir := shortDir(t)
	sock, broken := filepath.Join(dir, "s.sock"), filepath.Join(dir, "broken")
	p := startMaster(t, "TEST_WORKERS=1", "TEST_ADDR=unix:"+sock, "TEST_MAX_BOOT=1", "TEST_BOOT_PANIC_IF="+broken)
	var at int
	p.addr(&at)
	master := pidOf(p.waitLog(&at, "serving", nil))
	c := unixClient(sock)
	get(t, c, "http://x/")
	os.WriteFile(broken, nil, 0o600) // the new master's workers panic at boot
	syscall.Kill(master, syscall.SIGUSR2)
	p.waitLog(&at, "upgrade failed", map[string]any{"pid": master})
	mustExist(t, sock, "after the failed upgrade")
	get(t, c, "http://x/")
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
	mustBeGone(t, sock, "after the stop")
}

// The path of a unix socket gracefork created goes to the new master with
// the socket, and is removed by the last master when it stops, before it
// exits (it once stayed behind in 1 of 6 stops: tableflip unlinked it in
// a goroutine that raced the exit). Several stops, to catch the race.
func TestE2EUnixSocketRemovedAtStop(t *testing.T) {
	dir := shortDir(t)
	for i := range 4 {
		sock := filepath.Join(dir, fmt.Sprintf("s%d.sock", i))
		p := startMaster(t, "TEST_WORKERS=1", "TEST_ADDR=unix:"+sock)
		var at int
		p.addr(&at)
		master := pidOf(p.waitLog(&at, "serving", nil))
		if i == 0 { // ownership passes along an upgrade
			syscall.Kill(master, syscall.SIGUSR2)
			next := p.upgraded(&at, master)
			get(t, unixClient(sock), "http://x/")
			fds := pidfds(t, map[int]int{0: next})
			syscall.Kill(next, syscall.SIGTERM)
			waitGone(t, fds)
			mustBeGone(t, sock, "after the new master's stop")
			continue
		}
		p.signal(syscall.SIGTERM)
		if code := p.wait(); code != 0 {
			t.Fatalf("master exit %d", code)
		}
		mustBeGone(t, sock, fmt.Sprintf("after stop %d", i))
	}
}

// A unix socket systemd passed (socket activation) is systemd's: neither
// a stop nor an upgrade removes its path, so the service starts again on
// the same .socket unit.
func TestE2EActivatedUnixSocketSurvives(t *testing.T) {
	sock := filepath.Join(shortDir(t), "act.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	lf, err := ln.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	ln.Close()
	p := startMasterCmd(t, func(c *exec.Cmd) {
		c.Args = append([]string{"/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`}, c.Args...)
		c.Path = "/bin/sh"
		c.ExtraFiles = []*os.File{lf}
	}, "TEST_WORKERS=1", "TEST_ADDR=unix:"+sock, "LISTEN_FDS=1")
	var at int
	if rec := p.waitLog(&at, "listening", nil); rec["from"] != "activated" {
		t.Fatalf("listening %v, want activated", rec)
	}
	master := pidOf(p.waitLog(&at, "serving", nil))
	syscall.Kill(master, syscall.SIGUSR2)
	next := p.upgraded(&at, master)
	get(t, unixClient(sock), "http://x/")
	fds := pidfds(t, map[int]int{0: next})
	syscall.Kill(next, syscall.SIGTERM)
	waitGone(t, fds)
	mustExist(t, sock, "after the stop")
	// systemd's socket still takes connections for the next start.
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("systemd's socket after the stop: %v", err)
	}
	c.Close()
}

// A busy address fails New with an error that unwraps to
// EADDRINUSE, in a fresh process, whose tableflip upgrader is free (the
// test binary's own is taken by earlier tests).
func TestE2EAddressInUseUnwraps(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	p := startMaster(t, "TEST_ADDR="+busy.Addr().String())
	if code := p.wait(); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	var at int
	if rec := p.waitLog(&at, "serve error", nil); rec["eaddrinuse"] != true {
		t.Fatalf("errors.Is(err, syscall.EADDRINUSE) is false for %q", rec["err"])
	}
}

// newMasterPid returns the child of master that is not one of its workers.
func newMasterPid(t *testing.T, master int, workers map[int]int) int {
	t.Helper()
	for _, c := range childrenOf(t, master) {
		isWorker := false
		for _, w := range workers {
			isWorker = isWorker || w == c
		}
		if !isWorker {
			return c
		}
	}
	t.Fatalf("no new master among the children of %d", master)
	return 0
}

// SIGTERM while the new master boots stops the service: the upgrade is
// cancelled (the new master killed), the old generation drains, and
// nothing serves after; the log says so. (The upgrade used to complete
// while the old master drained, leaving the new generation serving.)
func TestE2ETermDuringUpgradeStopsEverything(t *testing.T) {
	gate := filepath.Join(t.TempDir(), "gate")
	if err := syscall.Mkfifo(gate, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startMaster(t, "TEST_WORKERS=1", "TEST_BOOT_GATE="+gate)
	var at int
	addr := p.addr(&at)
	old := p.ready(&at, 1)
	master := pidOf(p.waitLog(&at, "serving", nil))
	slow := startSlow(t, "http://"+addr+"/slow") // keeps the old generation draining
	started := p.waitLog(&at, "slow request started", nil)
	syscall.Kill(master, syscall.SIGUSR2)
	p.waitLog(&at, "upgrade started", map[string]any{"pid": master})
	gated := pidOf(p.waitLog(&at, "spawned", nil)) // the new master's worker, at the gate
	next := newMasterPid(t, master, old)
	fds := pidfds(t, map[int]int{0: next, 1: gated})
	p.signal(syscall.SIGTERM)
	p.waitLog(&at, "upgrade cancelled by the stop", map[string]any{"pid": master})
	// Let the gated worker through, if it still waits there: it then finds
	// its master gone. On Linux its parent-death signal may have ended it
	// already, and a blocking open would wait for a reader for ever.
	open, err := os.OpenFile(gate, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	switch {
	case err == nil:
		open.Close()
	case !errors.Is(err, syscall.ENXIO): // ENXIO: no reader, the worker is gone
		t.Fatal(err)
	}
	waitGone(t, fds)
	slow.finish(t, started["pid"])
	if code := p.wait(); code != 0 {
		t.Fatalf("old master exit %d", code)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("something still serves after the stop")
	}
}

// SIGTERM to the old master after the handover, while it drains: the
// stop goes on to the new master, so the service stops.
func TestE2ETermAfterHandoverStopsNewMaster(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=1")
	var at int
	addr := p.addr(&at)
	p.ready(&at, 1)
	master := pidOf(p.waitLog(&at, "serving", nil))
	slow := startSlow(t, "http://"+addr+"/slow") // keeps the old master draining
	started := p.waitLog(&at, "slow request started", nil)
	syscall.Kill(master, syscall.SIGUSR2)
	next := p.upgraded(&at, master)
	fds := pidfds(t, map[int]int{0: next})
	p.signal(syscall.SIGTERM)
	rec := p.waitLog(&at, "stop forwarded to the new master", map[string]any{"pid": master})
	if rec["new_master"] != float64(next) || rec["err"] != nil {
		t.Fatalf("forwarded %v, want to %d", rec, next)
	}
	waitGone(t, fds)
	slow.finish(t, started["pid"])
	if code := p.wait(); code != 0 {
		t.Fatalf("old master exit %d", code)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("something still serves after the stop")
	}
}
