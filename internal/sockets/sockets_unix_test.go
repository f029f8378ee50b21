//go:build unix

package sockets

import (
	"net"
	"os"
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
