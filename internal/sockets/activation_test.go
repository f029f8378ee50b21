package sockets

import (
	"net"
	"strconv"
	"testing"
)

func TestActivationIgnoresOtherPids(t *testing.T) {
	env := map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "1"}
	got, err := Activation(func(k string) string { return env[k] }, 2)
	if got != nil || err != nil {
		t.Fatalf("Activation for another pid = %v, %v", got, err)
	}
	env["LISTEN_PID"], env["LISTEN_FDS"] = "2", "many"
	if _, err := Activation(func(k string) string { return env[k] }, 2); err == nil {
		t.Fatal("LISTEN_FDS=many accepted")
	}
}

func TestMatch(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	act := Activated{Listener: ln}
	for addr, want := range map[string]bool{
		"127.0.0.1:" + port: true,
		"localhost:" + port: true,
		"127.0.0.2:" + port: false,
		":" + port:          false,
		"127.0.0.1:1":       false,
	} {
		a, err := Parse(addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := act.Match(a); got != want {
			t.Errorf("Match(%s) = %v, want %v", addr, got, want)
		}
	}
	named := Activated{Listener: ln, Name: "web"}
	if a, _ := Parse("127.0.0.2:80"); named.Match(a) {
		t.Error("name web matched another address")
	}
}
