package prefork_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
	cert, key, pool := selfSigned(t)
	p := startMaster(t, "TEST_WORKERS=2", "TEST_GRACEFUL_S=20", "TEST_TLS_CERT="+cert, "TEST_TLS_KEY="+key)
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
		p.waitLog(&at, "reload done", nil)
		// Each old worker leaves as soon as its streams are done, long
		// before the 20 s deadline would cut them.
		p.waitLog(&at, "exited", map[string]any{"expected": true, "status": "exit status 0"})
		p.waitLog(&at, "exited", map[string]any{"expected": true, "status": "exit status 0"})
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
