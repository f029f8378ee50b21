package prefork

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gracefork/gracefork/internal/metrics"
)

// metricsFile is the name under which an old master hands its new master
// the read end of a pipe: once its own workers have drained and their
// final snapshots are folded, the old master writes its totals there
// (metrics.Merger.Export) and the new master adds them to its own
// (Import), so that the pool's counters go on from where the old master
// left them instead of starting over at a binary upgrade.
const metricsFile = "gracefork-upgrade-metrics"

// importGrace is added to the drain bound (GracefulTimeout, the
// workers' last words, the old master's exit) for how long a new master
// holds its scrapes waiting for its predecessor's totals.
const importGrace = 5 * time.Second

// exportWriteTimeout bounds the old master's write of its totals: the new
// master reads them as they come, so only a new master that has stopped
// reading (or a build that never reads them) can hold the write.
const exportWriteTimeout = 10 * time.Second

// metricsUpgrade is the metrics' part of a binary upgrade: in an old
// master, the pipe its totals go out through; in a new one, the pipe they
// come in through and the scrapes that wait for them.
type metricsUpgrade struct {
	out *os.File // old master: the write end, kept from the first upgrade attempt
	in  *os.File // new master: the read end, from the old master

	// imported is closed once the old master's totals are in (or are known
	// never to come); giveUp once the new master stops waiting for them.
	// Both nil without a predecessor to wait for.
	imported chan struct{}
	giveUp   chan struct{}
}

// takeMetricsImport, in a new master started by an upgrade, takes the
// pipe its predecessor's totals will come through. An old master of a
// build without it passes none: the counts start over.
func (m *master) takeMetricsImport() {
	f, _ := m.upg.Fds.File(metricsFile)
	if f == nil {
		return
	}
	m.setMetricsImport(pollable(f))
}

// setMetricsImport makes the scrapes wait for the totals read from in.
func (m *master) setMetricsImport(in *os.File) {
	mu := &m.mx.upgrade
	mu.in = in
	mu.imported = make(chan struct{})
	mu.giveUp = make(chan struct{})
}

// prepareMetricsExport makes, once, the pipe this master's totals go out
// through to the new master, and hands its read end to tableflip.
func (m *master) prepareMetricsExport() error {
	if m.upg == nil || m.mx.upgrade.out != nil {
		return nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("prefork: upgrade: %w", err)
	}
	defer r.Close() // tableflip holds its copy
	if err := m.upg.AddFile(metricsFile, r); err != nil {
		w.Close()
		return fmt.Errorf("prefork: upgrade: %w", err)
	}
	m.mx.upgrade.out = w
	return nil
}

// readMetricsImport reads, in a new master, the old master's totals until
// it closes its end — it writes them at its very end, once its workers
// have drained — and imports them. An old master killed before it could
// write leaves nothing to import: the counts start over, as after a
// crash. It also arms the bound after which scrapes stop waiting.
func (m *master) readMetricsImport() {
	mu := &m.mx.upgrade
	if mu.in == nil {
		return
	}
	bound := m.cfg.UpgradeTimeout + m.cfg.GracefulTimeout + ctlLinger + importGrace
	t := m.clock.AfterFunc(bound, func() { close(mu.giveUp) })
	in := mu.in
	m.wg.Go(func() {
		defer close(mu.imported)
		b, err := io.ReadAll(io.LimitReader(in, metrics.MaxExport+8))
		if err == nil {
			err = m.mx.importFrom(b)
		}
		t.Stop()
		ev := Event{Kind: EventMetricsImported, Err: err}
		if err == nil {
			ev.Detail = fmt.Sprintf("%d bytes", len(b))
		}
		m.postEmit(ev)
	})
}

// importFrom imports what an old master wrote: the export's length as 8
// bytes, big-endian, then the export, so that an old master killed in the
// middle of its write is told from a complete one.
func (mx *masterMetrics) importFrom(b []byte) error {
	switch {
	case len(b) == 0:
		return errors.New("the old master sent no totals (killed, or failed before its end): the counts start over")
	case len(b) < 8 || binary.BigEndian.Uint64(b) != uint64(len(b)-8):
		return fmt.Errorf("the old master's totals are cut short (%d bytes): the counts start over", len(b))
	}
	return mx.merger.Import(b[8:])
}

// awaitImport holds a scrape of a new master until its predecessor's
// totals are imported, so that no scrape shows the pool's counters
// without them (a drop, which Prometheus reads as a reset). It returns
// early when ctx ends or the loop has; past the bound set in
// readMetricsImport, scrapes are served without the old totals.
func (m *master) awaitImport(ctx context.Context) {
	mu := &m.mx.upgrade
	if mu.imported == nil {
		return
	}
	select {
	case <-mu.imported:
	case <-mu.giveUp:
	case <-ctx.Done():
	case <-m.done:
	}
}

// exportMetrics, at the end of an old master that handed over, writes its
// totals — every retired worker's counts, the last drains' included — to
// the new master. Any master closes its end of the pipe here.
func (m *master) exportMetrics() {
	mu := &m.mx.upgrade
	out := mu.out
	if out == nil {
		return
	}
	mu.out = nil
	defer out.Close()
	if !m.handedOver {
		return
	}
	err := func() error {
		b, err := m.mx.merger.Export(true)
		if err != nil {
			return err
		}
		out.SetWriteDeadline(time.Now().Add(exportWriteTimeout))
		_, err = out.Write(binary.BigEndian.AppendUint64(nil, uint64(len(b))))
		if err == nil {
			_, err = out.Write(b)
		}
		return err
	}()
	if err != nil {
		m.emit(Event{Kind: EventMetricsError, Err: fmt.Errorf("handing the totals to the new master: %w", err)})
	}
}

// closeMetricsUpgrade closes the pipe from an old master, at the end of
// the loop (the reader, if still waiting, ends) or of a master that never
// ran.
func (m *master) closeMetricsUpgrade() {
	mu := &m.mx.upgrade
	if mu.in != nil {
		mu.in.Close()
	}
}
