//go:build unix

package prefork_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// selfSigned writes a certificate for 127.0.0.1 and returns its files and
// a pool that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gracefork test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// HTTP/2 clients multiplex every request on one connection, which never
// goes idle under load: a draining worker must send GOAWAY at once, or the
// connection stays until the deadline cuts its streams. Reloads under
// HTTP/2 load lose nothing.
func TestE2EHTTP2ReloadLosesNothing(t *testing.T) {
	http2ReloadLosesNothing(t)
}

// The same with HTTP/2 the program configured itself (Server.TLSNextProto):
// the worker uses it as is, and its connections get GOAWAY with their
// first answer in the drain.
func TestE2EHTTP2UserTLSNextProtoReloadLosesNothing(t *testing.T) {
	http2ReloadLosesNothing(t, "TEST_USER_H2=1")
}

func http2ReloadLosesNothing(t *testing.T, env ...string) {
	cert, key, pool := selfSigned(t)
	p := startMaster(t, append(env, "TEST_WORKERS=2", "TEST_GRACEFUL_S=20", "TEST_TLS_CERT="+cert, "TEST_TLS_KEY="+key)...)
	var at int
	url := "https://" + p.addr(&at) + "/"
	p.ready(&at, 2)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	defer client.CloseIdleConnections()

	var mu sync.Mutex
	var ok, h2 int
	var failed []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(url)
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				mu.Lock()
				if err != nil {
					failed = append(failed, err.Error())
				} else {
					ok++
					if resp.ProtoMajor == 2 {
						h2++
					}
				}
				mu.Unlock()
			}
		})
	}
	for range 3 {
		p.signal(syscall.SIGHUP)
		// Each old worker leaves as soon as its streams are done, long
		// before the 20 s deadline would cut them.
		at = reloadedAndOldExited(p, at, 2)
	}
	close(stop)
	wg.Wait()
	if len(failed) > 0 || ok == 0 || h2 != ok {
		t.Fatalf("%d ok (%d over HTTP/2), %d failed: %v", ok, h2, len(failed), failed[:min(5, len(failed))])
	}
	if out := p.output(); strings.Contains(out, "drain cut short") {
		t.Fatalf("a drain ran into its deadline:\n%s", out)
	}
	t.Logf("%d requests over HTTP/2, 0 failed", ok)
	p.signal(syscall.SIGTERM)
	p.wait()
}

// clientLoad is load from an http.Client, for protocols strictLoad does not
// speak (TLS, h2c): conns goroutines send requests made by newReq until
// finish, and count answers and failures.
type clientLoad struct {
	stop chan struct{}
	wg   sync.WaitGroup

	tally
	mu     sync.Mutex
	failed []string
}

func startClientLoad(c *http.Client, conns int, newReq func() *http.Request) *clientLoad {
	l := &clientLoad{stop: make(chan struct{})}
	for range conns {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				resp, err := c.Do(newReq())
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					l.mu.Lock()
					l.failed = append(l.failed, err.Error())
					l.mu.Unlock()
				} else {
					l.answered()
				}
			}
		})
	}
	return l
}

func (l *clientLoad) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failed) > 0 || l.count() == 0 {
		t.Errorf("%d answered, %d failed; first: %v", l.count(), len(l.failed), l.failed[:min(5, len(l.failed))])
	}
	t.Logf("%d requests answered, %d failed", l.count(), len(l.failed))
}

// h2c: HTTP/2 without TLS (Server.Protocols with unencrypted HTTP/2), from
// clients that speak nothing else and POST concurrently on one connection.
// A draining worker sends GOAWAY: its streams finish, new ones go to the
// new workers, and nothing is lost.
func TestE2EH2CReloadLosesNothing(t *testing.T) {
	p := startMaster(t, "TEST_WORKERS=2", "TEST_GRACEFUL_S=10", "TEST_H2C=1")
	var at int
	url := "http://" + p.addr(&at) + "/"
	p.ready(&at, 2)
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: protos}
	defer tr.CloseIdleConnections()
	var h2 atomic.Int64
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := tr.RoundTrip(r)
		if err == nil && resp.ProtoMajor == 2 {
			h2.Add(1)
		}
		return resp, err
	})}
	load := startClientLoad(client, 4, func() *http.Request {
		r, _ := http.NewRequest("POST", url, strings.NewReader(strings.Repeat("x", 4096)))
		return r
	})
	load.waitMore(t, 100)
	p.signal(syscall.SIGHUP)
	at = reloadedAndOldExited(p, at, 2)
	load.waitMore(t, 100)
	load.finish(t)
	if int(h2.Load()) != load.count() {
		t.Fatalf("%d of %d answers over HTTP/2", h2.Load(), load.count())
	}
	if out := p.output(); strings.Contains(out, "drain cut short") {
		t.Fatalf("a drain ran into its deadline:\n%s", out)
	}
	p.signal(syscall.SIGTERM)
	p.wait()
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A connection still in its TLS handshake when its worker starts to drain
// is not yet known to HTTP/2, so the GOAWAY sent at the drain's start
// misses it. It must learn of the drain from its first answer; before, it
// went on taking streams until the deadline cut them.
func TestE2EHTTP2ConnInHandshakeAtDrainGetsGoAway(t *testing.T) {
	cert, key, pool := selfSigned(t)
	p := startMaster(t, "TEST_WORKERS=1", "TEST_GRACEFUL_S=60", "TEST_DRAIN_IDLE_S=60",
		"TEST_LOG_DEBUG=1", "TEST_LOG_CONNS=1", "TEST_TLS_CERT="+cert, "TEST_TLS_KEY="+key)
	var at int
	addr := p.addr(&at)
	old := p.ready(&at, 1)[0]
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	p.waitLog(&at, "conn new", map[string]any{"pid": old}) // accepted; its handshake waits for us
	p.signal(syscall.SIGHUP)
	p.waitLog(&at, "worker sent GOAWAY to its HTTP/2 connections", map[string]any{"pid": old})
	tc := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
	if err := tc.Handshake(); err != nil || tc.ConnectionState().NegotiatedProtocol != "h2" {
		t.Fatalf("handshake: %v, protocol %q", err, tc.ConnectionState().NegotiatedProtocol)
	}
	first := make(chan net.Conn, 1)
	first <- tc
	tr := &http.Transport{
		ForceAttemptHTTP2: true,
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			select {
			case c := <-first:
				return c, nil // the connection that missed the GOAWAY
			default:
				d := tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"h2"}}}
				return d.DialContext(ctx, network, addr)
			}
		},
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	var fromOld int
	for {
		body := get(t, c, "https://"+addr+"/")
		if !strings.Contains(body, fmt.Sprintf("pid=%d", old)) {
			break
		}
		if fromOld++; fromOld == 1000 {
			t.Fatalf("the draining worker answered %d requests on a connection without GOAWAY", fromOld)
		}
	}
	if fromOld == 0 {
		t.Fatal("the first request did not go to the draining worker: the test did not set up the race")
	}
	t.Logf("%d answers from the draining worker, then the new one", fromOld)
	p.waitLog(&at, "exited", map[string]any{"pid": old, "expected": true, "status": "exit status 0"})
	if out := p.output(); strings.Contains(out, "drain cut short") {
		t.Fatalf("a drain ran into its deadline:\n%s", out)
	}
	p.signal(syscall.SIGTERM)
	p.wait()
}

// reloadedAndOldExited waits, from the master's output at position at,
// for "reload done" and for n old workers' clean exits, and returns the
// position past both. Two cursors: the first old worker drains as soon as
// its replacement is ready, so its exit may come before the "reload done"
// that the last replacement's readiness brings.
func reloadedAndOldExited(p *proc, at, n int) int {
	p.t.Helper()
	exits := at
	p.waitLog(&at, "reload done", nil)
	for range n {
		p.waitLog(&exits, "exited", map[string]any{"expected": true, "status": "exit status 0"})
	}
	return max(at, exits)
}
