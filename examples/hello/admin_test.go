//go:build unix

package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The demo's -admin address: a deploy script reloads and learns that it
// worked, and a bad request is refused. The demo is built and run as a
// user would run it: a real master, real workers, real signals.
func TestAdminReloadReportsTheOutcome(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts processes")
	}
	bin := filepath.Join(t.TempDir(), "hello")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	admin := freeAddr(t)
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-admin", admin, "-workers", "2")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	waitLine(t, lines, "admin: serving on "+admin)
	if code, body := post(t, "http://"+admin+"/reload"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("POST /reload = %d %q, want 200 ok", code, body)
	}
	waitLine(t, lines, `msg="reload done"`) // the master did reload
	if code, _ := post(t, "http://"+admin+"/scale?n=many"); code != http.StatusBadRequest {
		t.Fatalf("POST /scale?n=many = %d, want 400", code)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("master after SIGTERM: %v", err)
	}
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitLine(t *testing.T, lines <-chan string, want string) {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the master exited before logging %s", want)
			}
			if strings.Contains(l, want) {
				return
			}
		case <-deadline:
			t.Fatalf("no %s within a minute", want)
		}
	}
}

func post(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
