package metrics

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// MaxExport is the largest export [Merger.Import] reads.
const MaxExport = 256 << 20

// exportFormat is the first byte of an export.
const exportFormat = 0x81

// Export returns the slots' bases — what their retired workers counted —
// for [Merger.Import] in a new master after a binary upgrade, so that its
// totals continue this one's. With live, each live worker's latest
// snapshot is folded in as if it had retired: for an old master whose
// workers will drain after it exports (their last requests' counts, after
// their latest snapshot, are then lost).
//
// The format: a byte, then per slot its number and its families as
// [Encode] writes them, each a uvarint, the second the length of the
// families that follow.
func (m *Merger) Export(live bool) ([]byte, error) {
	m.mu.Lock()
	bases := make(map[int]*base, len(m.bases))
	for slot, b := range m.bases {
		bases[slot] = b.copy()
	}
	if live {
		for id, s := range m.live {
			b := bases[id.slot]
			if b == nil {
				b = &base{fams: map[string]*baseFamily{}}
				bases[id.slot] = b
			}
			b.fold(s.fams)
		}
	}
	m.mu.Unlock()

	out := []byte{exportFormat}
	for _, slot := range slices.Sorted(maps.Keys(bases)) {
		enc, err := encodeFamilies(bases[slot].families(), MaxExport)
		if err != nil {
			return nil, fmt.Errorf("metrics: exporting slot %d: %w", slot, err)
		}
		out = binary.AppendUvarint(out, uint64(slot))
		out = binary.AppendUvarint(out, uint64(len(enc)))
		out = append(out, enc...)
		if len(out) > MaxExport {
			return nil, fmt.Errorf("%w: export over %d bytes", ErrTooLarge, MaxExport)
		}
	}
	return out, nil
}

// Import adds an [Merger.Export] of another Merger to this one's bases,
// slot by slot. It adds: importing the same export twice counts it
// twice. Nothing is imported if any of it is malformed.
func (m *Merger) Import(b []byte) error {
	if len(b) > MaxExport {
		return fmt.Errorf("%w: export of %d bytes (max %d)", ErrTooLarge, len(b), MaxExport)
	}
	if len(b) == 0 || b[0] != exportFormat {
		return fmt.Errorf("%w: not a metrics export", ErrFormat)
	}
	r := bytes.NewReader(b[1:])
	var got []*snapshot
	for r.Len() > 0 {
		slot, err := binary.ReadUvarint(r)
		if err != nil || slot > 1<<31 {
			return fmt.Errorf("%w: export entry %d: slot number", ErrMalformed, len(got)+1)
		}
		n, err := binary.ReadUvarint(r)
		if err != nil || n > uint64(r.Len()) {
			return fmt.Errorf("%w: export slot %d: length", ErrMalformed, slot)
		}
		enc := b[len(b)-r.Len():][:n]
		r.Seek(int64(n), io.SeekCurrent)
		fams, err := decodeFamilies(enc, MaxExport, false)
		if err != nil {
			return fmt.Errorf("metrics: export slot %d: %w", slot, err)
		}
		got = append(got, index(workerID{slot: int(slot)}, fams, time.Time{}))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range got {
		m.baseOf(s.id.slot).fold(s.fams)
	}
	return nil
}

// copy returns a base that shares the immutable series but not the maps
// and slices fold changes.
func (b *base) copy() *base {
	c := &base{fams: make(map[string]*baseFamily, len(b.fams))}
	for name, bf := range b.fams {
		nf := &baseFamily{family: bf.family, index: make(map[string]int, len(bf.index))}
		nf.series = slices.Clone(bf.series)
		for k, v := range bf.index {
			nf.index[k] = v
		}
		c.fams[name] = nf
	}
	return c
}

// families returns the base as metric families, user labels only.
func (b *base) families() []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, 0, len(b.fams))
	for _, name := range slices.Sorted(maps.Keys(b.fams)) {
		bf := b.fams[name]
		mf := &dto.MetricFamily{Name: &bf.name, Type: bf.typ.Enum()}
		if bf.help != "" {
			mf.Help = &bf.help
		}
		if bf.unit != "" {
			mf.Unit = &bf.unit
		}
		for _, s := range bf.series {
			mt := strip(s.m)
			mt.Label = withoutWorker(s.labels)
			mf.Metric = append(mf.Metric, mt)
		}
		out = append(out, mf)
	}
	return out
}
