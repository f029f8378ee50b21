//go:build unix

package prefork_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// Three addresses with settings of their own — plain HTTP on Addr, TLS
// on a second (Listeners[0]), a unix socket with mode 0600 (Listeners[1])
// — serve side by side through three rolling reloads under load on each:
// HTTP/2 over TLS, plain HTTP/1.1 over TCP and over the unix socket, no
// request lost.
func TestE2EListenersTLSAndUnixReloadUnderLoad(t *testing.T) {
	cert, key, pool := selfSigned(t)
	sock := filepath.Join(t.TempDir(), "s.sock")
	p := startMaster(t, "TEST_WORKERS=2", "TEST_GRACEFUL_S=20", "TEST_TLS_CERT="+cert, "TEST_TLS_KEY="+key,
		"TEST_LISTENER_TLS=1", "TEST_LISTENER_UNIX="+sock, "TEST_LISTENER_UNIX_MODE=600")
	var at int
	plain, secure, unixAddr := p.addr(&at), p.addr(&at), p.addr(&at)
	if unixAddr != "unix:"+sock {
		t.Fatalf("listening on %s, %s, %s", plain, secure, unixAddr)
	}
	p.ready(&at, 2)
	if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket file: %v, %v; want mode 0600", st, err)
	}

	// Each address speaks only what it was given.
	if _, err := tls.Dial("tcp", plain, &tls.Config{RootCAs: pool}); err == nil {
		t.Errorf("a TLS handshake succeeded on the plain address")
	}
	resp, err := http.Get("http://" + secure + "/")
	if err == nil {
		resp.Body.Close()
	}
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain HTTP to the TLS address: %v, %v; want 400", resp, err)
	}

	var h2 atomic.Int64
	tlsTr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	unixTr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	defer tlsTr.CloseIdleConnections()
	defer unixTr.CloseIdleConnections()
	tlsLoad := startClientLoad(&http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := tlsTr.RoundTrip(r)
		if err == nil && resp.ProtoMajor == 2 {
			h2.Add(1)
		}
		return resp, err
	})}, 4, func() *http.Request { r, _ := http.NewRequest("GET", "https://"+secure+"/", nil); return r })
	unixLoad := startClientLoad(&http.Client{Transport: unixTr}, 4, func() *http.Request {
		r, _ := http.NewRequest("GET", "http://unix/", nil)
		return r
	})
	plainLoad := startLoad(plain, 8)
	for range 3 {
		tlsLoad.waitMore(t, 50)
		unixLoad.waitMore(t, 50)
		plainLoad.waitMore(t, 50)
		p.signal(syscall.SIGHUP)
		p.waitLog(&at, "reload done", nil)
	}
	tlsLoad.waitMore(t, 50)
	unixLoad.waitMore(t, 50)
	plainLoad.waitMore(t, 50)
	tlsLoad.finish(t)
	unixLoad.finish(t)
	plainLoad.finish(t)
	if int(h2.Load()) != tlsLoad.count() {
		t.Errorf("%d of %d TLS answers over HTTP/2", h2.Load(), tlsLoad.count())
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file left after the stop: %v", err)
	}
}

// A unix socket's owner and group, given by name, are set as it is bound.
func TestE2EListenerUnixOwner(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("changing a file's owner needs root")
	}
	sock := filepath.Join(t.TempDir(), "s.sock")
	p := startMaster(t, "TEST_WORKERS=1", "TEST_LISTENER_UNIX="+sock, "TEST_LISTENER_UNIX_MODE=660",
		"TEST_LISTENER_UNIX_OWNER=nobody", "TEST_LISTENER_UNIX_GROUP=65534")
	var at int
	p.addr(&at)
	p.addr(&at)
	p.ready(&at, 1)
	st, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	out, _ := exec.Command("id", "-u", "nobody").Output()
	if strings.TrimSpace(string(out)) != strconv.Itoa(int(sys.Uid)) || sys.Gid != 65534 || st.Mode().Perm() != 0o660 {
		t.Errorf("socket owner %d (nobody is %s), group %d, mode %v", sys.Uid, strings.TrimSpace(string(out)), sys.Gid, st.Mode().Perm())
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
}

// fd://3: a socket the parent bound and passed. The master serves it,
// keeps it through a reload and hands it to a new master on an upgrade,
// under load, losing nothing; a connection queued before the start is
// served.
func TestE2EListenerFromParent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()                          // the child's copy keeps the socket open
	early, err := net.Dial("tcp", addr) // queued before any process serves
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	p := startMasterCmd(t, func(c *exec.Cmd) { c.ExtraFiles = []*os.File{f} }, "TEST_WORKERS=2", "TEST_ADDR=fd://3")
	f.Close()
	var at int
	rec := p.waitLog(&at, "listening", map[string]any{"from": "passed"})
	if rec["addr"] != addr {
		t.Fatalf("serving %v, want the passed socket %s", rec["addr"], addr)
	}
	master := pidOf(p.waitLog(&at, "serving", nil))
	if _, err := early.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := http.ReadResponse(bufio.NewReader(early), nil); err != nil {
		t.Fatalf("the connection queued before the start: %v", err)
	}
	load := startLoad(addr, 8)
	load.waitMore(t, 100)
	p.signal(syscall.SIGHUP)
	p.waitLog(&at, "reload done", nil)
	load.waitMore(t, 100)
	syscall.Kill(master, syscall.SIGUSR2)
	next := p.upgraded(&at, master)
	load.waitMore(t, 100)
	load.finish(t)
	syscall.Kill(next, syscall.SIGTERM)
	waitGone(t, pidfds(t, map[int]int{0: next}))
}

// The single-process mode serves Listeners as the workers do: TLS on its
// own address, a unix socket with its mode, a passed socket.
func TestE2ESingleProcessListeners(t *testing.T) {
	cert, key, pool := selfSigned(t)
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	passed := ln.Addr().String()
	ln.Close()
	p := startMasterCmd(t, func(c *exec.Cmd) { c.ExtraFiles = []*os.File{f} }, "GRACEFORK_SINGLE_PROCESS=1", "TEST_ADDR=fd://3",
		"TEST_TLS_CERT="+cert, "TEST_TLS_KEY="+key, "TEST_LISTENER_TLS=1", "TEST_LISTENER_UNIX="+sock, "TEST_LISTENER_UNIX_MODE=640")
	f.Close()
	var at int
	first, secure := p.addr(&at), p.addr(&at)
	p.serving(&at, 0)
	if first != passed {
		t.Errorf("serving %s first, want the passed socket %s", first, passed)
	}
	if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o640 {
		t.Fatalf("socket file: %v, %v; want mode 0640", st, err)
	}
	if code, body, err := probe(passed, "/"); err != nil || code != 200 {
		t.Errorf("GET / on the passed socket: %d %q %v", code, body, err)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	resp, err := c.Get("https://" + secure + "/")
	if err != nil || resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("GET over TLS at %q: %v %v", secure, resp, err)
	}
	resp.Body.Close()
	c.CloseIdleConnections()
	u := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	if resp, err = u.Get("http://unix/"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET over the unix socket: %v %v", resp, err)
	}
	resp.Body.Close()
	u.CloseIdleConnections()
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
