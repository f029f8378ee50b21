package prefork_test

import (
	"crypto/tls"
	"errors"
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
	"github.com/gracefork/gracefork/signals"
)

// Bad options are refused before any socket or process: the spawner here
// fails the test if it is ever asked for a worker.
func TestNewMasterRejectsBadOptions(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cases := []struct {
		name  string
		opts  prefork.Options
		field string
		says  string
	}{
		{"negative workers", prefork.Options{Addr: ":0", Workers: -1}, "Workers = -1", "must not be negative"},
		{"no address", prefork.Options{}, `Addr = ""`, "no address"},
		{"empty in Addrs", prefork.Options{Addrs: []string{"127.0.0.1:0", ""}}, `Addrs[1] = ""`, "empty address"},
		{"no port", prefork.Options{Addr: "localhost"}, `Addr = "localhost"`, "missing port"},
		{"bad port", prefork.Options{Addr: "127.0.0.1:99999"}, `Addr = "127.0.0.1:99999"`, "0 to 65535"},
		{"repeat", prefork.Options{Addr: "127.0.0.1:1", Addrs: []string{"127.0.0.1:1"}}, "Addrs[0]", "repeats Options.Addr"},
		{"in use", prefork.Options{Addr: busy.Addr().String()}, `Addr = "` + busy.Addr().String() + `"`, "address already in use"},
		{"unix dir", prefork.Options{Addr: "unix:/no/such/dir/x.sock"}, `Addr = "unix:/no/such/dir/x.sock"`, "no such file or directory"},
		{"graceful", prefork.Options{Addr: ":0", GracefulTimeout: -time.Second}, "GracefulTimeout = -1000000000", "must not be negative"},
		{"boot", prefork.Options{Addr: ":0", BootTimeout: -1}, "BootTimeout = -1", "must not be negative"},
		{"drain idle", prefork.Options{Addr: ":0", DrainIdle: -1}, "DrainIdle = -1", "must not be negative"},
		{"max boot", prefork.Options{Addr: ":0", MaxBootFailures: -2}, "MaxBootFailures = -2", "must not be negative"},
		{"signals", prefork.Options{Addr: ":0", Signals: signals.Map{syscall.SIGHUP: signals.Reload}}, "Signals", "no signal maps to shutdown"},
		{"tls", prefork.Options{Addr: ":0", Server: &http.Server{TLSConfig: &tls.Config{}}}, "Server.TLSConfig", "cannot serve TLS"},
		{"pidfile", prefork.Options{Addr: ":0", PIDFile: "/no/such/dir/x.pid"}, "PIDFile", "directory does not exist"},
		{"upgrade", prefork.Options{Addr: ":0", UpgradeTimeout: -1}, "UpgradeTimeout = -1", "must not be negative"},
		{"surge", prefork.Options{Addr: ":0", MaxSurge: -1}, "MaxSurge = -1", "must not be negative"},
		{"heartbeat", prefork.Options{Addr: ":0", HeartbeatTimeout: time.Second}, "HeartbeatTimeout = 1000000000", "at least 2s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.opts.Spawner = refuseSpawner{t}
			_, err := prefork.NewMaster(c.opts)
			var oe *prefork.OptionError
			if !errors.As(err, &oe) {
				t.Fatalf("NewMaster = %v, want *OptionError", err)
			}
			if !strings.Contains(err.Error(), "Options."+c.field) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("error %q should name %q and say %q", err, c.field, c.says)
			}
		})
	}
}

func TestAddressInUseUnwraps(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, err = prefork.NewMaster(prefork.Options{Addrs: []string{"127.0.0.1:0", busy.Addr().String()}})
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("NewMaster = %v, want EADDRINUSE", err)
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
	m, err := prefork.NewMaster(prefork.Options{Addr: "unix:" + path, Workers: 1, Spawner: sp, OnEvent: ev.Record, Clock: preforktest.NewClock()})
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
	if _, err := prefork.NewMaster(prefork.Options{Addr: "unix:" + path}); err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("second master on a live socket: %v", err)
	}

	done := make(chan error, 1)
	go func() { done <- m.Run() }()
	w := sp.Next(t)
	w.Ready()
	m.Shutdown()
	w.WaitStop(t)
	w.Exit(0)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file left after exit: %v", err)
	}
}

func TestNewMasterInWorkerRole(t *testing.T) {
	if prefork.IsWorker() || prefork.WorkerID() != -1 {
		t.Fatalf("test process reads as a worker: %v %d", prefork.IsWorker(), prefork.WorkerID())
	}
}
