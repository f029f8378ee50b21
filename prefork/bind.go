package prefork

import (
	"context"
	"fmt"
	"net"
	"os"

	"github.com/cloudflare/tableflip"
	"github.com/gracefork/gracefork/internal/sockets"
)

func (m *Master) bindAll() error {
	acts, err := sockets.Activation(os.Getenv, os.Getpid())
	if err != nil {
		return fmt.Errorf("prefork: socket activation: %w", err)
	}
	if acts != nil {
		for _, k := range []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"} {
			os.Unsetenv(k)
		}
	}
	for i, a := range m.cfg.addrs {
		ln, from, err := m.bind(a, acts)
		if err == nil {
			err = m.keep(ln)
		}
		if err != nil {
			return &OptionError{Field: m.cfg.fields[i], Value: a.String(), Reason: err.Error(), Err: err}
		}
		m.emit(Event{Kind: EventListening, Addr: listenAddr(ln), From: from})
	}
	for _, act := range acts {
		if act.Listener != nil {
			m.cfg.Logger.Warn("socket activation passed a socket no Options address names; closing it",
				"addr", act.Listener.Addr().String(), "name", act.Name)
			act.Listener.Close()
		}
	}
	return nil
}

// bind returns the socket for a: inherited from an old master, passed by
// systemd, or bound now. It says which.
func (m *Master) bind(a sockets.Addr, acts []sockets.Activated) (net.Listener, string, error) {
	if m.upg != nil {
		if ln, err := m.upg.Listener(a.Network, a.Address); ln != nil || err != nil {
			return ln, "inherited", err
		}
	}
	for i := range acts {
		if ln := acts[i].Listener; ln != nil && acts[i].Match(a) {
			acts[i].Listener = nil // taken
			if m.upg != nil {
				if err := m.upg.AddListener(a.Network, a.Address, ln.(tableflip.Listener)); err != nil {
					return nil, "", err
				}
			}
			return ln, "activated", nil
		}
	}
	ln, err := m.listen(a)
	return ln, "bound", err
}

func (m *Master) listen(a sockets.Addr) (net.Listener, error) {
	if a.Network == "unix" {
		if err := sockets.RemoveStale(a.Address); err != nil {
			return nil, err
		}
	}
	if m.upg == nil {
		return sockets.ListenConfig().Listen(context.Background(), a.Network, a.Address)
	}
	ln, err := m.upg.Listen(a.Network, a.Address)
	if ul, ok := ln.(*net.UnixListener); ok {
		// tableflip unlinks the path when the last master stops; closing
		// this copy must not, or an upgrade would lose the path.
		ul.SetUnlinkOnClose(false)
	}
	return ln, err
}

// keep holds ln, and a descriptor of it for the workers, for the master's life.
func (m *Master) keep(ln net.Listener) error {
	m.lns = append(m.lns, ln)
	f, err := sockets.File(ln)
	if err != nil {
		return err
	}
	m.files = append(m.files, f)
	return nil
}

func listenAddr(ln net.Listener) string {
	if ln.Addr().Network() == "unix" {
		return "unix:" + ln.Addr().String()
	}
	return ln.Addr().String()
}
