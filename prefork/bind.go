package prefork

import (
	"context"
	"net"
	"sync"

	"github.com/cloudflare/tableflip"
	"github.com/gracefork/gracefork/internal/sockets"
)

// tableflip allows one Upgrader per process. The first master of a process
// takes it, so its sockets can be handed to a new binary; a later master in
// the same process (only tests make several) binds its own sockets directly.
var flip struct {
	sync.Mutex
	taken bool
}

func takeUpgrader() (*tableflip.Upgrader, error) {
	flip.Lock()
	defer flip.Unlock()
	if flip.taken {
		return nil, nil
	}
	upg, err := tableflip.New(tableflip.Options{ListenConfig: sockets.ListenConfig()})
	if err != nil {
		return nil, err
	}
	flip.taken = true
	return upg, nil
}

func (m *Master) bindAll() error {
	upg, err := takeUpgrader()
	if err != nil {
		return err
	}
	m.upg = upg
	for i, a := range m.cfg.addrs {
		ln, err := m.bind(a)
		if err == nil {
			err = m.keep(ln)
		}
		if err != nil {
			return &OptionError{Field: m.cfg.fields[i], Value: a.String(), Reason: err.Error(), Err: err}
		}
		m.emit(Event{Kind: EventListening, Addr: listenAddr(ln)})
	}
	return nil
}

// bind returns the socket for a: inherited from an old master, or new.
func (m *Master) bind(a sockets.Addr) (net.Listener, error) {
	if m.upg != nil {
		if ln, err := m.upg.Listener(a.Network, a.Address); ln != nil || err != nil {
			return ln, err
		}
	}
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
