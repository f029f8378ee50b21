package prefork_test

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork"
	"github.com/gracefork/gracefork/prefork/preforktest"
	"github.com/gracefork/gracefork/recycle"
	"github.com/gracefork/gracefork/signals"
)

// Bad options are refused before any socket or process: the spawner here
// fails the test if it is ever asked for a worker.
func TestNewRejectsBadOptions(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	inUse := busy.Addr().String()
	const p = "prefork: Options."
	cases := []struct {
		name string
		opts prefork.Options
		want string // the whole message
	}{
		{"negative workers", prefork.Options{Addr: ":0", Workers: -1}, p + "Workers = -1: must not be negative"},
		{"too many workers", prefork.Options{Addr: ":0", Workers: 100000}, p + "Workers = 100000: must be at most 1024 (MaxWorkers): each worker is a whole process, and more workers than cores gain nothing"},
		{"no address", prefork.Options{}, p + `Addr = "": no address to listen on (set Addr, Addrs or Listeners)`},
		{"empty in Addrs", prefork.Options{Addrs: []string{"127.0.0.1:0", ""}}, p + `Addrs[1] = "": empty address`},
		{"no port", prefork.Options{Addr: "localhost"}, p + `Addr = "localhost": missing port in address; write "host:port", such as ":8080" or "127.0.0.1:8080"`},
		{"unix path without unix:", prefork.Options{Addr: "/run/app.sock"}, p + `Addr = "/run/app.sock": missing port in address; for a unix socket write "unix:/run/app.sock"`},
		{"bad port", prefork.Options{Addr: "127.0.0.1:99999"}, p + `Addr = "127.0.0.1:99999": port "99999" is not a number from 0 to 65535`},
		{"repeat", prefork.Options{Addr: "127.0.0.1:1", Addrs: []string{"127.0.0.1:1"}}, p + `Addrs[0] = "127.0.0.1:1": repeats Options.Addr`},
		// The bind error's own wording is bind.go's: only its ends are checked.
		{"in use", prefork.Options{Addr: inUse}, p + `Addr = "` + inUse + `": …listen tcp ` + inUse + `: bind: address already in use`},
		{"unix dir", prefork.Options{Addr: "unix:/no/such/dir/x.sock"}, p + `Addr = "unix:/no/such/dir/x.sock": directory /no/such/dir: no such file or directory`},
		{"graceful", prefork.Options{Addr: ":0", GracefulTimeout: -time.Second}, p + "GracefulTimeout = -1s: must not be negative"},
		{"boot", prefork.Options{Addr: ":0", BootTimeout: -1}, p + "BootTimeout = -1ns: must not be negative"},
		{"boot too short", prefork.Options{Addr: ":0", BootTimeout: time.Nanosecond}, p + "BootTimeout = 1ns: must be at least 1s (MinBootTimeout): starting processes and the Go runtime takes longer than that on a busy machine"},
		{"drain idle", prefork.Options{Addr: ":0", DrainIdle: -1}, p + "DrainIdle = -1ns: must not be negative"},
		{"max boot", prefork.Options{Addr: ":0", MaxBootFailures: -2}, p + "MaxBootFailures = -2: must not be negative"},
		{"signals", prefork.Options{Addr: ":0", Signals: signals.Map{syscall.SIGHUP: signals.Reload}}, p + "Signals = {SIGHUP: reload}: signals: no signal maps to shutdown or quit"},
		{"uncatchable", prefork.Options{Addr: ":0", Signals: signals.Map{syscall.SIGKILL: signals.Shutdown}}, p + "Signals = {SIGKILL: shutdown}: signals: SIGKILL cannot be caught, so it cannot mean shutdown"},
		{"tls", prefork.Options{Addr: ":0", Server: &http.Server{TLSConfig: &tls.Config{}}}, p + "Server.TLSConfig = a tls.Config without a certificate: set Certificates, GetCertificate or GetConfigForClient: a worker cannot serve TLS without one"},
		{"pidfile", prefork.Options{Addr: ":0", PIDFile: "/no/such/dir/x.pid"}, p + `PIDFile = "/no/such/dir/x.pid": its directory does not exist`},
		{"upgrade", prefork.Options{Addr: ":0", UpgradeTimeout: -1}, p + "UpgradeTimeout = -1ns: must not be negative"},
		{"upgrade too short", prefork.Options{Addr: ":0", UpgradeTimeout: 10 * time.Millisecond}, p + "UpgradeTimeout = 10ms: must be at least 1s (MinBootTimeout): starting processes and the Go runtime takes longer than that on a busy machine"},
		{"surge", prefork.Options{Addr: ":0", MaxSurge: -1}, p + "MaxSurge = -1: must not be negative"},
		{"heartbeat", prefork.Options{Addr: ":0", HeartbeatTimeout: time.Second}, p + "HeartbeatTimeout = 1s: must be at least 2s: workers report once a second"},
		{"request timeout", prefork.Options{Addr: ":0", RequestTimeout: -time.Second}, p + "RequestTimeout = -1s: must not be negative"},
		{"listener tls", prefork.Options{Listeners: []prefork.Listener{{Addr: ":0", TLSConfig: &tls.Config{}}}}, p + "Listeners[0].TLSConfig = a tls.Config without a certificate: set Certificates, GetCertificate or GetConfigForClient: a worker cannot serve TLS without one"},
		{"listener tls h2", prefork.Options{Listeners: []prefork.Listener{{Addr: ":0", TLSConfig: &tls.Config{Certificates: []tls.Certificate{{}},
			MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}}}}},
			p + "Listeners[0].TLSConfig = a tls.Config HTTP/2 rejects: http2: TLSConfig.CipherSuites is missing an HTTP/2-required AES_128_GCM_SHA256 cipher (need at least one of TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 or TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)"},
		{"listener repeat", prefork.Options{Addr: "127.0.0.1:1", Listeners: []prefork.Listener{{Addr: "127.0.0.1:1"}}}, p + `Listeners[0].Addr = "127.0.0.1:1": repeats Options.Addr`},
		{"listener bad addr", prefork.Options{Listeners: []prefork.Listener{{Addr: "fd://1"}}}, p + `Listeners[0].Addr = "fd://1": fd://1: want a descriptor number of 3 or more, such as fd://3`},
		{"mode on tcp", prefork.Options{Listeners: []prefork.Listener{{Addr: "127.0.0.1:0", Mode: 0o660}}}, p + "Listeners[0].Mode = 0660: only a unix: address has a file mode and an owner, not 127.0.0.1:0"},
		{"owner on tcp", prefork.Options{Listeners: []prefork.Listener{{Addr: "127.0.0.1:0", Owner: "root"}}}, p + `Listeners[0].Owner = "root": only a unix: address has a file mode and an owner, not 127.0.0.1:0`},
		{"mode too wide", prefork.Options{Listeners: []prefork.Listener{{Addr: "unix:" + os.TempDir() + "/x.sock", Mode: 0o4777}}}, p + "Listeners[0].Mode = 04777: only permission bits (0o777 at most) can be set"},
		{"no such owner", prefork.Options{Listeners: []prefork.Listener{{Addr: "unix:" + os.TempDir() + "/x.sock", Owner: "no-such-user-x"}}}, p + `Listeners[0].Owner = "no-such-user-x": no such user`},
		{"no such group", prefork.Options{Listeners: []prefork.Listener{{Addr: "unix:" + os.TempDir() + "/x.sock", Group: "no-such-group-x"}}}, p + `Listeners[0].Group = "no-such-group-x": no such group`},
		{"recycle age", prefork.Options{Addr: ":0", Recycle: recycle.Policy{MaxAge: -90 * time.Minute}}, p + "Recycle.MaxAge = -1h30m0s: must not be negative"},
		{"recycle jitter alone", prefork.Options{Addr: ":0", Recycle: recycle.Policy{MaxRequestsJitter: 50}}, p + "Recycle.MaxRequestsJitter = 50: needs MaxRequests: it spreads that limit"},
		{"recycle samples alone", prefork.Options{Addr: ":0", Recycle: recycle.Policy{MemorySamples: 3}}, p + "Recycle.MemorySamples = 3: needs MaxMemory: it counts samples over that limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.opts.Spawner = refuseSpawner{t}
			_, err := prefork.New(nil, c.opts)
			var oe *prefork.OptionError
			if !errors.As(err, &oe) {
				t.Fatalf("New = %v, want *OptionError", err)
			}
			head, tail, cut := strings.Cut(c.want, "…")
			if cut && strings.HasPrefix(err.Error(), head) && strings.HasSuffix(err.Error(), tail) {
				return
			}
			if err.Error() != c.want {
				t.Fatalf("error\n%s\nwant\n%s", err, c.want)
			}
			// Validate says the same without binding: only the address
			// in use passes it.
			verr := c.opts.Validate()
			if c.name == "in use" {
				if verr != nil {
					t.Fatalf("Validate bound %s: %v", inUse, verr)
				}
			} else if verr == nil || verr.Error() != err.Error() {
				t.Fatalf("Validate = %v, want New's error", verr)
			}
		})
	}
	if err := (prefork.Options{Addr: "127.0.0.1:0", PIDFile: filepath.Join(t.TempDir(), "x.pid")}).Validate(); err != nil {
		t.Errorf("Validate of good options = %v", err)
	}
}

func TestAddressInUseUnwraps(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, err = prefork.New(nil, prefork.Options{Addrs: []string{"127.0.0.1:0", busy.Addr().String()}})
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("New = %v, want EADDRINUSE", err)
	}
}

type refuseSpawner struct{ t *testing.T }

func (s refuseSpawner) Spawn(prefork.WorkerSpec) (prefork.Process, error) {
	s.t.Error("a worker was spawned for invalid options")
	return nil, errors.New("refused")
}

func TestUnixSocketStaleRemovedAndCleanedUp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.sock")
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close() // a socket file nothing listens on, as a crash leaves it

	sp, ev := preforktest.NewSpawner(), &preforktest.Events{}
	m, err := prefork.New(nil, prefork.Options{Addr: "unix:" + path, Workers: 1, Spawner: sp, OnEvent: ev.Record, Clock: preforktest.NewClock()})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	if got := m.Addrs()[0].String(); got != path {
		t.Fatalf("Addrs = %v", got)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial the new socket: %v", err)
	}
	c.Close()

	// A second master on the live socket is refused.
	if _, err := prefork.New(nil, prefork.Options{Addr: "unix:" + path}); err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("second master on a live socket: %v", err)
	}

	done := make(chan error, 1)
	go func() { done <- m.Run(context.Background()) }()
	w := sp.Next(t)
	w.Ready()
	prefork.Do(m, signals.Shutdown)
	w.WaitStop(t)
	w.Exit(0)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file left after exit: %v", err)
	}
}

func TestTestProcessIsTheMaster(t *testing.T) {
	if prefork.IsWorker() || prefork.WorkerID() != -1 {
		t.Fatalf("test process reads as a worker: %v %d", prefork.IsWorker(), prefork.WorkerID())
	}
}

// LogLevel sets the default logger's level, the one that writes to
// LogFile included: at warn, the master's info records are dropped.
func TestLogLevelOfTheDefaultLogger(t *testing.T) {
	for _, c := range []struct {
		level    slog.Leveler
		wantInfo bool
	}{{nil, true}, {slog.LevelWarn, false}} {
		path := filepath.Join(t.TempDir(), "master.log")
		m, err := prefork.New(nil, prefork.Options{Addr: "127.0.0.1:0", Workers: 1, LogFile: path, LogLevel: c.level,
			Spawner: preforktest.NewSpawner(), Clock: preforktest.NewClock()})
		if err != nil {
			t.Fatal(err)
		}
		m.Close()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(string(b), "level=INFO"); got != c.wantInfo {
			t.Errorf("LogLevel %v: info records written %v, want %v:\n%s", c.level, got, c.wantInfo, b)
		}
	}
}
