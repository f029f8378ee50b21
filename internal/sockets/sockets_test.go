package sockets

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

func TestParse(t *testing.T) {
	ok := map[string]Addr{
		"127.0.0.1:8080":   {"tcp", "127.0.0.1:8080"},
		":0":               {"tcp", ":0"},
		"[::1]:9":          {"tcp", "[::1]:9"},
		"localhost:80":     {"tcp", "localhost:80"},
		"unix:/tmp/x.sock": {"unix", "/tmp/x.sock"},
		"fd://3":           {"fd", "3"},
		"fd://17":          {"fd", "17"},
	}
	for in, want := range ok {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	bad := map[string]string{
		"":                                  "empty address",
		"8080":                              `missing port in address; for port 8080 on every address write ":8080"`,
		"localhost":                         `missing port in address; write "host:port", such as ":8080" or "127.0.0.1:8080"`,
		"/run/app.sock":                     `missing port in address; for a unix socket write "unix:/run/app.sock"`,
		"127.0.0.1:http":                    `port "http" is not a number from 0 to 65535`,
		"127.0.0.1:70000":                   `port "70000" is not a number from 0 to 65535`,
		"127.0.0.1:-1":                      `port "-1" is not a number from 0 to 65535`,
		"a b:80":                            `host "a b" is not a host name or IP address`,
		"unix:":                             "unix: address without a path",
		"unix:/no/such/dir/sock":            "directory /no/such/dir: no such file or directory",
		"fd://":                             "fd://: want a descriptor number of 3 or more, such as fd://3",
		"fd://2":                            "fd://2: want a descriptor number of 3 or more, such as fd://3",
		"fd://03":                           "fd://03: want a descriptor number of 3 or more, such as fd://3",
		"fd://x":                            "fd://x: want a descriptor number of 3 or more, such as fd://3",
		"unix:/" + strings.Repeat("x", 120): fmt.Sprintf("unix socket path is 121 bytes long, the limit is %d", maxUnixPath),
	}
	for in, want := range bad {
		_, err := Parse(in)
		if err == nil || err.Error() != want {
			t.Errorf("Parse(%q) = %v, want the error %q", in, err, want)
		}
	}
}

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.sock")
	if err := RemoveStale(path); err != nil {
		t.Fatalf("missing file: %v", err)
	}

	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := RemoveStale(path); !errors.Is(err, ErrInUse) {
		t.Fatalf("live socket: RemoveStale = %v, want ErrInUse", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if err := RemoveStale(path); err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale socket still there: %v", err)
	}

	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, nil, 0o600)
	if err := RemoveStale(plain); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("regular file: RemoveStale = %v", err)
	}
}

func TestListenConfigRefusesSecondBind(t *testing.T) {
	ln, err := ListenConfig().Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = ListenConfig().Listen(t.Context(), "tcp", ln.Addr().String())
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("second bind = %v, want EADDRINUSE", err)
	}
}

func TestChecks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, err := File(ln)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	a, b, err := Pair()
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("no inherited sockets on %s: %v", runtime.GOOS, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()

	if err := CheckListener(int(lf.Fd())); err != nil {
		t.Errorf("listener: %v", err)
	}
	if err := CheckControl(int(a.Fd())); err != nil {
		t.Errorf("pair: %v", err)
	}
	if err := CheckListener(int(a.Fd())); err == nil {
		t.Error("CheckListener accepted a socketpair")
	}
	if err := CheckControl(int(lf.Fd())); err == nil {
		t.Error("CheckControl accepted a TCP listener")
	}
	if err := CheckControl(int(devnull.Fd())); err == nil {
		t.Error("CheckControl accepted /dev/null")
	}
	if err := CheckListener(987); err == nil {
		t.Error("CheckListener accepted a closed fd")
	}
}
