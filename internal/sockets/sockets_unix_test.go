//go:build unix

package sockets

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDomainByName checks the SO_DOMAIN-less way (macOS) against the
// platform's own, on unix and TCP sockets and on a file.
func TestDomainByName(t *testing.T) {
	a, b, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	ln4, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln4.Close()
	lf, err := File(ln4)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	for _, c := range []struct {
		name string
		f    *os.File
		want int
	}{{"socketpair", a, unix.AF_UNIX}, {"tcp4 listener", lf, unix.AF_INET}} {
		got, err := domainByName(int(c.f.Fd()))
		if err != nil || got != c.want {
			t.Errorf("%s: domainByName = %d, %v; want %d", c.name, got, err, c.want)
		}
		if native, err := socketDomain(int(c.f.Fd())); err != nil || native != got {
			t.Errorf("%s: socketDomain = %d, %v; domainByName %d", c.name, native, err, got)
		}
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	if d, err := domainByName(int(devnull.Fd())); err == nil {
		t.Errorf("domainByName(/dev/null) = %d, nil; want an error", d)
	}
}

// OpenFD serves the passed socket from a close-on-exec copy and closes
// the descriptor it was given; a descriptor that is not a listening
// socket is refused by number.
func TestOpenFD(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	raw, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	raw.Control(func(s uintptr) { fd, err = unix.Dup(int(s)) })
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenFD(Addr{Network: "fd", Address: strconv.Itoa(fd)})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if got.Addr().String() != ln.Addr().String() {
		t.Errorf("OpenFD serves %s, want %s", got.Addr(), ln.Addr())
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
		t.Errorf("fd %d still open after OpenFD (fcntl: %v)", fd, err)
	}

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if _, err := OpenFD(Addr{Network: "fd", Address: strconv.Itoa(int(r.Fd()))}); err == nil {
		t.Errorf("OpenFD took a pipe for a listener")
	}
}

// Listen gives a unix socket's file the mode asked for — narrower and
// wider than the umask's — and the owner; the umask is as it was after.
func TestListenPerm(t *testing.T) {
	before := unix.Umask(0o022)
	defer unix.Umask(before)
	for _, mode := range []os.FileMode{0o600, 0o660, 0o777} {
		path := filepath.Join(t.TempDir(), "s.sock")
		ln, err := Listen(Addr{Network: "unix", Address: path}, Perm{Mode: mode, UID: os.Getuid(), GID: os.Getgid()})
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("mode %v, want %v", st.Mode().Perm(), mode)
		}
		ln.Close()
		if now := unix.Umask(0o022); now != 0o022 {
			t.Errorf("umask left at %#o", now)
		}
	}
}
