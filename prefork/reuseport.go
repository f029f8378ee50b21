package prefork

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"
	"github.com/gracefork/gracefork/internal/sockets"
)

// Per-slot sockets (Options.ReusePort): for every TCP address the master
// binds it bound itself, each slot has a socket of its own, bound with
// SO_REUSEPORT to the same port. The master holds all of them for its
// life and hands slot i's to every worker of slot i, so a crash, a
// reload or a recycle never closes a queue: the next worker of the slot
// serves what waits in it.
//
// A slot's socket is never closed while the master lives; it is paused
// (shutdown SHUT_RD: it stops listening and leaves the SO_REUSEPORT group
// at once, in every process that holds it, tableflip's copy included,
// which cannot be taken back) and resumed (listen again, on the same
// port). Slot k's socket is handed through tableflip under the key
// ("tcp", address+"#slot-k"), paused or not, so a new master finds every
// one.
//
// Closing one loses what its queue holds at that instant: Linux resets
// those connections, unless net.ipv4.tcp_migrate_req=1 moves them to
// another socket of the group. So a slot's sockets close only when their
// queue is empty, while the slot's worker still accepts (closeSlot); the
// worker drains afterwards, and the clients it sends away reconnect to
// the others. What is left is a handshake that completes in the instant
// between the master's look at the queue and the close.

// closeStep is how often the master looks at a closing slot socket's
// queue; closeWait bounds the wait for it to empty, after which the
// socket closes anyway (its worker no longer accepts, or never empties
// it).
const (
	closeStep = time.Millisecond
	closeWait = time.Second
)

// slotSocket is one slot's own socket for one address.
type slotSocket struct {
	ln     net.Listener
	f      *os.File // the descriptor the slot's workers inherit
	paused bool     // not listening (scale-down, a degraded slot)
}

// slotSockets are a slot's own sockets, by address (nil where the
// address is shared), and, while they close, the closing's state.
type slotSockets struct {
	slot  int
	socks []*slotSocket
	// A closing (closeSlot) in progress: the next look at the queues,
	// its deadline, why, whether something still accepts from them, and
	// what follows (the drain of the slot's workers).
	closing   Timer
	deadline  time.Time
	why       string
	accepting func() bool
	after     []func()
}

// slotKey names slot k's socket for a in tableflip.
func slotKey(a sockets.Addr, k int) string { return a.Address + "#slot-" + strconv.Itoa(k) }

// perSlotAddr reports whether the address a gets a socket per
// slot: ReusePort, a TCP address, and not a socket systemd passed.
func (m *master) perSlotAddr(a sockets.Addr, acts []sockets.Activated) bool {
	if !m.cfg.ReusePort || a.Network != "tcp" {
		return false
	}
	for _, act := range acts {
		if act.Listener != nil && act.Match(a) {
			return false
		}
	}
	return true
}

// bindSlots takes address i's socket for every slot: inherited from an
// old master (a paused one listens again if this master has the slot),
// or bound now — slot 0's on the address as written, after a check with
// a plain socket that nothing listens there yet (SO_REUSEPORT would let
// this master join a stranger's group), the others on slot 0's port.
// Slot sockets an old master had beyond this master's slots are kept,
// and closed once this master is ready (settleSlots). Slot 0's socket is
// also m.lns[i] and m.files[i].
func (m *master) bindSlots(i int, a sockets.Addr) (net.Listener, string, error) {
	if m.perSlot == nil {
		m.perSlot = make([]bool, len(m.cfg.addrs))
	}
	m.perSlot[i] = true
	var first net.Listener
	var from string
	for k := 0; ; k++ {
		ln, how, err := m.takeSlot(a, k, first)
		if err != nil {
			return nil, "", err
		}
		if ln == nil {
			break
		}
		f, err := sockets.File(ln)
		if err != nil {
			ln.Close()
			return nil, "", err
		}
		s := &slotSocket{ln: ln, f: f}
		m.slotSet(k).socks[i] = s // closed with the others if New fails
		on, err := sockets.Listening(f)
		if err != nil {
			return nil, "", err
		}
		s.paused = !on
		if s.paused && k < m.cfg.Workers {
			if err := sockets.Resume(f); err != nil {
				return nil, "", fmt.Errorf("slot %d's socket: listen again: %w", k, err)
			}
			s.paused, how = false, how+", listening again"
		}
		if k == 0 {
			first, from = ln, how
			m.lns = append(m.lns, ln)
			m.files = append(m.files, f)
		}
		if !s.paused {
			m.emit(Event{Kind: EventSlotListening, Slot: k, Addr: ln.Addr().String(), Detail: how})
		}
	}
	return first, from, nil
}

// takeSlot returns slot k's socket for a: inherited, or bound when
// k is one of this master's slots; nil past both.
func (m *master) takeSlot(a sockets.Addr, k int, first net.Listener) (net.Listener, string, error) {
	if m.upg != nil {
		ln, err := m.upg.Listener(a.Network, slotKey(a, k))
		if ln != nil || err != nil {
			return ln, "inherited", err
		}
	}
	if k >= m.cfg.Workers {
		return nil, "", nil
	}
	if k == 0 && m.hasParent() {
		if ln, _ := m.upg.Listener(a.Network, a.Address); ln != nil {
			ln.Close()
			return nil, "", errors.New("the old master serves this address on one socket that all its workers share (Options.ReusePort off): an upgrade cannot switch to a socket per slot; restart the service to switch")
		}
	}
	address := a.Address
	if first != nil {
		address = first.Addr().String()
	} else {
		// A plain socket fails where anything listens (EADDRINUSE, as
		// without ReusePort) and picks the port of a ":0"; the slot
		// sockets then bind that port by number, which they keep when
		// they listen again after a pause.
		probe, err := sockets.Listen(a, sockets.NoPerm)
		if err != nil {
			return nil, "", err
		}
		address = probe.Addr().String()
		probe.Close()
	}
	ln, err := sockets.ListenReusePort(address)
	if err != nil {
		return nil, "", err
	}
	if m.upg != nil {
		if err := m.upg.AddListener(a.Network, slotKey(a, k), ln.(tableflip.Listener)); err != nil {
			ln.Close()
			return nil, "", err
		}
	}
	return ln, "bound", nil
}

// slotSet returns slot k's sockets, adding slots up to k.
func (m *master) slotSet(k int) *slotSockets {
	for len(m.slotSocks) <= k {
		m.slotSocks = append(m.slotSocks, &slotSockets{slot: len(m.slotSocks), socks: make([]*slotSocket, len(m.cfg.addrs))})
	}
	return m.slotSocks[k]
}

// tellMigrate logs, once bound, what Linux does with the connections
// queued in a slot socket that closes.
func (m *master) tellMigrate() {
	if m.perSlot == nil {
		return
	}
	on, err := sockets.MigrateReq()
	ev := Event{Kind: EventPerSlotSockets, Err: err}
	switch {
	case err != nil:
		ev.Err = fmt.Errorf("cannot read net.ipv4.tcp_migrate_req (%w): a slot socket that closes resets the connections in its queue unless it is 1", err)
	case on:
		ev.Detail = "moved to another slot's socket (net.ipv4.tcp_migrate_req=1)"
	default:
		ev.Detail = "reset (net.ipv4.tcp_migrate_req=0; 1 would move them to another slot's socket)"
	}
	m.migrate = on
	m.emit(ev)
}

// listenersFor are the sockets slot's workers inherit, by address: the
// slot's own, and the shared ones.
func (m *master) listenersFor(slot int) []*os.File {
	if m.slotSocks == nil {
		return m.files
	}
	fs := slices.Clone(m.files)
	for i, s := range m.slotSocks[slot].socks {
		if s != nil {
			fs[i] = s.f
		}
	}
	return fs
}

// openSlot makes slot k's sockets listen before a worker starts for it:
// a closing in progress is called off (the workers it waited for drain
// now: the new one takes over the queue), a paused socket listens again,
// and a slot the master never had gets new sockets, on slot 0's port.
func (m *master) openSlot(k int) error {
	if m.slotSocks == nil {
		return nil
	}
	ss := m.slotSet(k)
	if ss.closing != nil {
		ss.closing.Stop()
		ss.closing = nil
		ss.finishClosing()
	}
	var errs []error
	for i, per := range m.perSlot {
		s := ss.socks[i]
		switch {
		case !per:
		case s == nil: // a slot this master's line never had, or an address the old master did not have
			ln, f, err := m.bindSlot(i, k)
			if err != nil {
				errs = append(errs, fmt.Errorf("slot %d's socket for %s: %w", k, m.cfg.addrs[i], err))
				continue
			}
			ss.socks[i] = &slotSocket{ln: ln, f: f}
			m.emit(Event{Kind: EventSlotListening, Slot: k, Addr: ln.Addr().String(), Detail: "bound"})
		case s.paused:
			if err := sockets.Resume(s.f); err != nil {
				errs = append(errs, fmt.Errorf("slot %d's socket %s: listen again: %w", k, s.ln.Addr(), err))
				continue
			}
			s.paused = false
			m.emit(Event{Kind: EventSlotListening, Slot: k, Addr: s.ln.Addr().String(), Detail: "listening again"})
		}
	}
	return errors.Join(errs...)
}

// bindSlot binds a new socket for slot k on address i, on slot 0's
// port, and hands it to tableflip.
func (m *master) bindSlot(i, k int) (net.Listener, *os.File, error) {
	ln, err := sockets.ListenReusePort(m.lns[i].Addr().String())
	if err != nil {
		return nil, nil, err
	}
	if m.upg != nil {
		if err := m.upg.AddListener("tcp", slotKey(m.cfg.addrs[i], k), ln.(tableflip.Listener)); err != nil {
			ln.Close()
			return nil, nil, err
		}
	}
	f, err := sockets.File(ln)
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	return ln, f, nil
}

// closeSlot closes slot k's own sockets, each once its queue is empty
// while accepting says something still accepts from it — or at once
// when nothing does, or after closeWait — and then calls after. Closing
// does not wait for the drain: whoever is told to reconnect then finds
// only the other slots' sockets.
func (m *master) closeSlot(k int, why string, accepting func() bool, after func()) {
	ss := m.slotSocks[k]
	if ss.closing != nil {
		ss.closing.Stop()
	}
	ss.why, ss.accepting = why, accepting
	ss.deadline = m.clock.Now().Add(closeWait)
	if after != nil {
		ss.after = append(ss.after, after)
	}
	m.tryClose(ss)
}

// tryClose closes what of ss may close now, and looks again in
// closeStep while a queue holds connections that a worker will take.
func (m *master) tryClose(ss *slotSockets) {
	ss.closing = nil
	if m.stopping {
		ss.after = nil // the stop drains every worker, and closes every socket
		return
	}
	force := !m.clock.Now().Before(ss.deadline) || ss.accepting == nil || !ss.accepting()
	waiting := false
	for _, s := range ss.socks {
		if s == nil || s.paused {
			continue
		}
		if n, err := sockets.Queued(s.f); err == nil && n > 0 && !force {
			waiting = true
			continue
		}
		m.pause(ss, s, ss.why)
	}
	if waiting {
		ss.closing = m.after(closeStep, func() { m.tryClose(ss) })
		return
	}
	ss.finishClosing()
}

// finishClosing runs what waited for the slot's sockets to close.
func (ss *slotSockets) finishClosing() {
	after := ss.after
	ss.after, ss.accepting = nil, nil
	for _, f := range after {
		f()
	}
}

// pause makes s stop listening now, and says what became of its queue.
func (m *master) pause(ss *slotSockets, s *slotSocket, why string) {
	n, _ := sockets.Queued(s.f)
	ev := Event{Kind: EventSlotClosed, Slot: ss.slot, Addr: s.ln.Addr().String(), Detail: why}
	if err := sockets.Pause(s.f); err != nil && !errors.Is(err, syscall.ENOTCONN) { // ENOTCONN: it did not listen
		ev.Err = fmt.Errorf("cannot stop it listening: %w", err)
		m.emit(ev)
		return
	}
	s.paused = true
	if n > 0 {
		conns := fmt.Sprintf("%d connections were", n)
		if n == 1 {
			conns = "1 connection was"
		}
		if m.migrate {
			ev.Detail += "; " + conns + " waiting in its queue: moved to another slot's socket (tcp_migrate_req=1)"
		} else {
			ev.Err = errors.New(conns + " waiting in its queue: reset")
		}
	}
	m.emit(ev)
}

// retireSlot closes a removed slot's sockets, then drains its workers
// (ws). Slot 0's stay open: with no worker at all (stop-workers),
// connections wait in its queue until workers come back, as they do in
// the shared socket.
func (m *master) retireSlot(s *slot, ws []*worker) {
	drain := func() {
		for _, w := range ws {
			if _, live := m.workers[w]; live && !w.stopping && !m.stopping {
				m.stopWorker(w, true)
			}
		}
	}
	if s.id == 0 {
		if err := m.openSlot(0); err != nil { // paused while degraded
			m.emit(Event{Kind: EventSpawnFailed, Slot: 0, Err: err})
		}
		drain()
		return
	}
	accepting := func() bool {
		for _, w := range ws {
			if _, live := m.workers[w]; live && !w.killed && !w.stopping {
				return true
			}
		}
		return false
	}
	m.closeSlot(s.id, "scale-down", accepting, drain)
}

// pauseDegraded closes the sockets of a slot that cannot boot, so that
// new connections go to the slots that serve instead of waiting for a
// worker that may never come; they listen again when the slot is
// restored (onReady). Not during an upgrade, nor after a handover: the
// new master takes each socket as it finds it.
func (m *master) pauseDegraded(s *slot) {
	if m.slotSocks == nil || m.upgrading || m.handedOver {
		return
	}
	ss := m.slotSocks[s.id]
	for _, sock := range ss.socks {
		if sock != nil && !sock.paused {
			m.pause(ss, sock, "degraded: its worker cannot boot")
		}
	}
}

// repause closes again, after a failed upgrade, the slot sockets this
// master holds paused: the new master may have made them listen for
// slots of its own before it failed.
func (m *master) repause() {
	for _, ss := range m.slotSocks {
		for _, s := range ss.socks {
			if s != nil && s.paused {
				if on, err := sockets.Listening(s.f); err == nil && on {
					m.pause(ss, s, "the failed new master had made it listen")
				}
			}
		}
	}
}

// settleSlots, in a master about to announce, makes its slots' sockets
// listen (an old master may have closed one while it was degraded) and
// closes the sockets of slots it does not have — an old master's surplus
// — each once its queue is empty, while the old master's worker of the
// slot still accepts. It reports whether all of that is done; if not, it
// calls maybeAnnounce again when it is.
func (m *master) settleSlots() bool {
	if m.slotSocks == nil {
		return true
	}
	for k := range m.slots {
		if err := m.openSlot(k); err != nil {
			m.emit(Event{Kind: EventSpawnFailed, Slot: k, Err: err})
		}
	}
	done := true
	for _, ss := range m.slotSocks[len(m.slots):] {
		if ss.closing != nil {
			done = false
			continue
		}
		if slices.ContainsFunc(ss.socks, func(s *slotSocket) bool { return s != nil && !s.paused }) {
			// The old master's worker of the slot: assume it accepts
			// (closeWait bounds a wait for one that does not).
			m.closeSlot(ss.slot, "the previous master had more workers", func() bool { return true }, m.maybeAnnounce)
			done = done && ss.closing == nil
		}
	}
	return done
}

// closingSlots reports whether a slot's sockets are still closing.
func (m *master) closingSlots() bool {
	return slices.ContainsFunc(m.slotSocks, func(ss *slotSockets) bool { return ss.closing != nil })
}

// close closes this master's copies of the slot's own sockets (slot 0's
// are m.lns and m.files too) and stops a closing in progress.
func (ss *slotSockets) close() {
	if ss.closing != nil {
		ss.closing.Stop()
		ss.closing = nil
	}
	ss.after = nil
	for _, s := range ss.socks {
		if s != nil {
			s.f.Close()
			s.ln.Close()
		}
	}
}

// errScaleDuringUpgrade refuses a change of the worker count while two
// masters share the slot sockets.
var errScaleDuringUpgrade = errors.New("prefork: with per-slot sockets (ReusePort) the worker count cannot change during an upgrade: the new master takes each slot's socket as it finds it; scale once the upgrade is over")

// scaleRefused reports, with ReusePort, why the worker count cannot
// change now: during an upgrade, in the old master and in the new one
// until it took over.
func (m *master) scaleRefused() bool {
	return m.slotSocks != nil && (m.upgrading || (m.hasParent() && !m.announced))
}
