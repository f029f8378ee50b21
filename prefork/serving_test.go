//go:build unix

package prefork_test

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
)

// HTTP/2's setup inside ServeTLS rejects a TLS config that has TLS
// 1.0–1.2 cipher suites but no AES-128-GCM one. Such a worker never
// serves: it must not say ready, and Serve fails with its error.
const http2CipherErr = "missing an HTTP/2-required AES_128_GCM_SHA256 cipher"

func TestE2EBootServeSetupErrorFailsServe(t *testing.T) {
	cert, key, _ := selfSigned(t)
	flag := t.TempDir() + "/bad"
	os.WriteFile(flag, nil, 0o600)
	p := startMaster(t, "TEST_WORKERS=1", "TEST_MAX_BOOT=2",
		"TEST_TLS_CERT="+cert, "TEST_TLS_KEY="+key, "TEST_TLS_BAD_IF="+flag)
	if code := p.wait(); code != 1 {
		t.Fatalf("master exit %d, want 1", code)
	}
	var at int
	// The master's (the workers log theirs too): a *BootError quoting the
	// workers' exit status and stderr.
	err := p.waitFor(&at, "serve error", func(rec map[string]any) bool {
		return strings.Contains(fmt.Sprint(rec["err"]), "exit status")
	})["err"].(string)
	for _, want := range []string{"exit status 1", http2CipherErr} {
		if !strings.Contains(err, want) {
			t.Errorf("Serve's error %q does not say %q", err, want)
		}
	}
	if out := p.output(); strings.Contains(out, `"msg":"serving"`) || strings.Contains(out, `"msg":"ready"`) {
		t.Errorf("a worker that cannot serve was taken as ready:\n%s", out)
	}
}

// A reload to workers that fail the same way fails, and the old workers
// serve on, under load, with nothing lost.
func TestE2EReloadToServeSetupErrorKeepsServing(t *testing.T) {
	cert, key, pool := selfSigned(t)
	flag := t.TempDir() + "/bad"
	p := startMaster(t, "TEST_WORKERS=2", "TEST_MAX_BOOT=2",
		"TEST_TLS_CERT="+cert, "TEST_TLS_KEY="+key, "TEST_TLS_BAD_IF="+flag)
	var at int
	url := "https://" + p.addr(&at) + "/"
	old := p.ready(&at, 2)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	load := startClientLoad(c, 8, func() *http.Request {
		r, _ := http.NewRequest("GET", url, nil)
		return r
	})
	load.waitMore(t, 100)
	os.WriteFile(flag, nil, 0o600)
	p.signal(syscall.SIGHUP)
	rec := p.waitLog(&at, "reload failed", nil)
	if err := rec["err"].(string); !strings.Contains(err, http2CipherErr) {
		t.Fatalf("reload failure %q lacks the worker's error", err)
	}
	load.waitMore(t, 200)
	load.finish(t)
	body := get(t, c, url)
	if !strings.Contains(body, fmt.Sprintf("pid=%d", old[0])) && !strings.Contains(body, fmt.Sprintf("pid=%d", old[1])) {
		t.Fatalf("answer %q not from an old worker %v", body, old)
	}
	if out := p.output(); strings.Contains(out, "reload done") || strings.Contains(out, "worker draining") {
		t.Fatalf("the old workers were drained:\n%s", out)
	}
	p.signal(syscall.SIGTERM)
	p.wait()
}

// The worker serves with Options.Server itself: what a copy would drop
// takes effect. SetKeepAlivesEnabled(false) closes every connection after
// its answer.
func TestE2EServerTemplateKeepAlivesOff(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=1", "TEST_NO_KEEPALIVE=1")
	var at int
	url := "http://" + p.addr(&at) + "/"
	p.ready(&at, 1)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !resp.Close {
		t.Fatalf("answer keeps the connection alive: %v", resp.Header)
	}
	p.signal(syscall.SIGTERM)
	p.wait()
}

// Hooks added with RegisterOnShutdown run when a worker drains.
func TestE2EServerTemplateShutdownHookRuns(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=1", "TEST_SHUTDOWN_HOOK=1")
	var at int
	p.addr(&at)
	old := p.ready(&at, 1)[0]
	p.signal(syscall.SIGHUP)
	p.waitLog(&at, "shutdown hook ran", map[string]any{"pid": old})
	p.signal(syscall.SIGTERM)
	p.wait()
}
