package prefork

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"

	"github.com/cloudflare/tableflip"
	"github.com/gracefork/gracefork/internal/sockets"
)

// Unix sockets travel to a new master as tableflip files (AddFile), not as
// tableflip listeners: tableflip unlinks the path of every unix listener
// it knows when the process stops, whoever created the path and whether
// or not this master ever served (a new master that failed would delete
// the path its predecessor serves). The name says who created the path;
// that ownership passes along the upgrade chain, and only a path a
// gracefork master created is unlinked, by the last master, itself.
const (
	unixOwnedPrefix     = "gracefork-unix:"           // bound by a gracefork master
	unixActivatedPrefix = "gracefork-unix-activated:" // passed by systemd: never unlinked here
)

// ownedPath is a unix socket path this master unlinks at its final stop:
// only if the file there is still the socket it was given.
type ownedPath struct {
	path string
	info fs.FileInfo
}

func (m *master) bindAll() error {
	acts, err := sockets.Activation(os.Getenv, os.Getpid())
	if err != nil {
		return fmt.Errorf("prefork: socket activation: %w", err)
	}
	if acts != nil {
		for _, k := range []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"} {
			os.Unsetenv(k)
		}
	}
	if err := m.cfg.checkPassed(acts); err != nil {
		return err
	}
	for i, a := range m.cfg.addrs {
		var ln net.Listener
		var from string
		var err error
		if m.perSlotAddr(a, acts) {
			ln, from, err = m.bindSlots(i, a)
		} else {
			ln, from, err = m.bind(a, acts, m.cfg.perms[i])
		}
		if err != nil {
			return &OptionError{Field: m.cfg.fields[i], Value: a.String(), Reason: err.Error(), Err: err}
		}
		m.emit(Event{Kind: EventListening, Addr: listenAddr(ln), From: from})
	}
	m.tellMigrate()
	if err := m.bindMetrics(acts); err != nil {
		return err
	}
	for _, act := range acts {
		if act.Listener != nil {
			m.emit(Event{Kind: EventUnusedActivation, Addr: act.Listener.Addr().String(), Detail: act.Name})
			act.Listener.Close()
		}
	}
	return nil
}

// checkPassed refuses an fd://N address when systemd passed sockets too:
// both number descriptors from 3, and the activated ones have been taken
// (their numbers closed) already. The activated sockets are closed.
func (c *config) checkPassed(acts []sockets.Activated) error {
	if len(acts) == 0 {
		return nil
	}
	for i, a := range c.addrs {
		if a.Network == "fd" {
			for _, act := range acts {
				act.Listener.Close()
			}
			return &OptionError{Field: c.fields[i], Value: a.String(), Reason: "systemd passed sockets too (LISTEN_FDS), numbered from 3: name the activated socket by its address instead"}
		}
	}
	return nil
}

// bind takes the socket for a — inherited from an old master, passed by
// systemd or by the parent (fd://N), or bound now with the file
// permissions p — keeps it, and hands it to tableflip for the next
// master. It says where the socket came from.
func (m *master) bind(a sockets.Addr, acts []sockets.Activated, p sockets.Perm) (net.Listener, string, error) {
	ln, owned, err := m.inherit(a)
	if ln != nil || err != nil {
		return ln, "inherited", err
	}
	if a.Network == "fd" {
		ln, err := m.bindPassed(a)
		return ln, "passed", err
	}
	for i := range acts {
		if ln := acts[i].Listener; ln != nil && acts[i].Match(a) {
			acts[i].Listener = nil // taken
			return ln, "activated", m.share(a, ln, false)
		}
	}
	if a.Network == "unix" {
		if err := sockets.RemoveStale(a.Address); err != nil {
			return nil, "", err
		}
	}
	// Bound here, not by tableflip's Listen, which flattens the error
	// (errors.Is(err, syscall.EADDRINUSE) must hold).
	ln, err = sockets.Listen(a, p)
	if err != nil {
		return nil, "", err
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		// Closing this copy must not unlink the path: the workers serve on
		// it. The last master unlinks it (unlinkOwned).
		ul.SetUnlinkOnClose(false)
		owned = true
	}
	if err := m.share(a, ln, owned); err != nil {
		ln.Close()
		if owned {
			os.Remove(a.Address)
		}
		return nil, "", err
	}
	return ln, "bound", nil
}

// bindPassed takes the socket the parent passed as fd://N. The old master
// of an upgrade hands it over as it does the others (inherit): the
// descriptor number N is then tableflip's, never read here.
func (m *master) bindPassed(a sockets.Addr) (net.Listener, error) {
	if m.hasParent() {
		return nil, errors.New("the old master did not hand this socket over")
	}
	ln, err := sockets.OpenFD(a)
	if err != nil {
		return nil, err
	}
	if err := m.share(a, ln, false); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// inherit returns the socket an old master handed over for a, if any, and
// whether a gracefork master created its path.
func (m *master) inherit(a sockets.Addr) (net.Listener, bool, error) {
	if m.upg == nil {
		return nil, false, nil
	}
	if a.Network == "unix" {
		for _, owned := range []bool{true, false} {
			f, err := m.upg.File(unixFileName(a.Address, owned))
			if err != nil || f == nil {
				if err != nil {
					return nil, false, err
				}
				continue
			}
			ln, err := net.FileListener(f)
			f.Close()
			if err == nil {
				err = m.keep(ln, a, owned)
			}
			return ln, owned, err
		}
	}
	// A TCP socket, or a unix one from a gracefork older than this file,
	// which handed unix sockets over as tableflip listeners. Tableflip
	// unlinks such a path when this process stops — it always did; a new
	// master that fails does not stop tableflip (closeSockets), so it
	// unlinks nothing.
	ln, err := m.upg.Listener(a.Network, a.Address)
	if ln == nil && err == nil && a.Network == "tcp" && m.hasParent() {
		if sl, _ := m.upg.Listener(a.Network, slotKey(a, 0)); sl != nil {
			sl.Close()
			return nil, false, errors.New("the old master serves this address on a socket per slot (Options.ReusePort): an upgrade cannot switch to one shared socket; restart the service to switch")
		}
	}
	if ln == nil || err != nil {
		return nil, false, err
	}
	return ln, false, m.keep(ln, a, false)
}

// share keeps ln and registers it with tableflip, so that a new master can
// inherit it.
func (m *master) share(a sockets.Addr, ln net.Listener, owned bool) error {
	if err := m.keep(ln, a, owned); err != nil {
		return err
	}
	if m.upg == nil {
		return nil
	}
	if a.Network == "unix" {
		return m.upg.AddFile(unixFileName(a.Address, owned), m.files[len(m.files)-1])
	}
	tl, ok := ln.(tableflip.Listener)
	if !ok {
		return fmt.Errorf("listener %T cannot be handed to a new master", ln)
	}
	return m.upg.AddListener(a.Network, a.Address, tl)
}

func unixFileName(path string, owned bool) string {
	if owned {
		return unixOwnedPrefix + path
	}
	return unixActivatedPrefix + path
}

// keep holds ln, and a descriptor of it for the workers, for the master's
// life; it notes a path this master will have to unlink.
func (m *master) keep(ln net.Listener, a sockets.Addr, owned bool) error {
	m.lns = append(m.lns, ln)
	f, err := sockets.File(ln)
	if err != nil {
		return err
	}
	m.files = append(m.files, f)
	if info, err := os.Lstat(a.Address); owned && err == nil {
		m.owned = append(m.owned, ownedPath{a.Address, info})
	}
	return nil
}

// unlinkOwned removes the unix socket paths this master's line created,
// when it is the last master: not after a handover (the new master serves
// on them), and not in a new master that never served (its predecessor
// does). A path that now names another file — a new instance bound it
// after this one stopped accepting — is left alone.
func (m *master) unlinkOwned() {
	if m.handedOver || (m.hasParent() && !m.announced) {
		return
	}
	for _, o := range m.owned {
		if info, err := os.Lstat(o.path); err == nil && os.SameFile(info, o.info) {
			if err := os.Remove(o.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				m.emit(Event{Kind: EventSocketNotRemoved, Path: o.path, Err: err})
			}
		}
	}
	m.owned = nil
}

// bindMetrics takes the socket of Options.MetricsAddr as the others are
// taken — so that it survives upgrades through tableflip — and then keeps
// it out of m.lns and m.files: the master serves it, workers never see it
// (they get the serving listeners only, from fd 4 on).
func (m *master) bindMetrics(acts []sockets.Activated) error {
	a := m.cfg.metricsAddr
	if a.Network == "" {
		return nil
	}
	n := len(m.lns)
	ln, from, err := m.bind(a, acts, sockets.NoPerm)
	if err != nil {
		return &OptionError{Field: "MetricsAddr", Value: m.cfg.MetricsAddr, Reason: err.Error(), Err: err}
	}
	m.metricsLn, m.metricsFile = m.lns[n], m.files[n]
	m.lns, m.files = m.lns[:n], m.files[:n]
	m.emit(Event{Kind: EventListening, Addr: listenAddr(ln), From: from})
	return nil
}

func listenAddr(ln net.Listener) string {
	if ln.Addr().Network() == "unix" {
		return "unix:" + ln.Addr().String()
	}
	return ln.Addr().String()
}
