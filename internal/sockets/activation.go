package sockets

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// Activated is a socket passed by the service manager (sd_listen_fds(3)).
type Activated struct {
	Listener net.Listener
	Name     string // from LISTEN_FDNAMES, if given
}

// listenFdsStart is the first descriptor systemd passes.
const listenFdsStart = 3

// Activation returns the listening sockets that LISTEN_FDS and LISTEN_PID
// pass to the process pid, or none when they are unset or meant for
// another process. Each must be a listening stream socket.
func Activation(getenv func(string) string, pid int) ([]Activated, error) {
	fdsVar, pidVar := getenv("LISTEN_FDS"), getenv("LISTEN_PID")
	if fdsVar == "" || pidVar != strconv.Itoa(pid) {
		return nil, nil
	}
	n, err := strconv.Atoi(fdsVar)
	if err != nil || n < 0 || n > 1024 {
		return nil, fmt.Errorf("LISTEN_FDS=%q is not a count of descriptors", fdsVar)
	}
	var names []string
	if v := getenv("LISTEN_FDNAMES"); v != "" {
		names = strings.Split(v, ":")
	}
	out := make([]Activated, 0, n)
	for i := range n {
		fd := listenFdsStart + i
		if err := CheckListener(fd); err != nil {
			closeActivated(out)
			return nil, fmt.Errorf("LISTEN_FDS: %w", err)
		}
		f := os.NewFile(uintptr(fd), "activated")
		ln, err := net.FileListener(f)
		f.Close() // FileListener holds its own close-on-exec duplicate
		if err != nil {
			closeActivated(out)
			return nil, fmt.Errorf("LISTEN_FDS: fd %d: %w", fd, err)
		}
		a := Activated{Listener: ln}
		if i < len(names) {
			a.Name = names[i]
		}
		out = append(out, a)
	}
	return out, nil
}

func closeActivated(as []Activated) {
	for _, a := range as {
		a.Listener.Close()
	}
}

// Match reports whether an activated socket serves the address a: by its
// name (FileDescriptorName= set to the address), or by its bound address.
func (act Activated) Match(a Addr) bool {
	if act.Name != "" && act.Name == a.String() {
		return true
	}
	la := act.Listener.Addr()
	if a.Network == "unix" {
		return la.Network() == "unix" && la.String() == a.Address
	}
	tcp, ok := la.(*net.TCPAddr)
	if !ok {
		return false
	}
	host, port, _ := net.SplitHostPort(a.Address)
	if port != strconv.Itoa(tcp.Port) {
		return false
	}
	switch ip := net.ParseIP(host); {
	case host == "":
		return tcp.IP.IsUnspecified()
	case ip != nil:
		return ip.Equal(tcp.IP)
	case host == "localhost":
		return tcp.IP.IsLoopback()
	}
	return false
}
