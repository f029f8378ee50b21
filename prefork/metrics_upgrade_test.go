//go:build unix

package prefork_test

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/gracefork/gracefork/internal/metrics"
	"github.com/gracefork/gracefork/prefork"
	"github.com/gracefork/gracefork/prefork/preforktest"
	"github.com/gracefork/gracefork/signals"
)

// newRigBefore is newRig with before run on the Server before Run.
func newRigBefore(t *testing.T, opts prefork.Options, before func(*prefork.Server)) *rig {
	t.Helper()
	r := &rig{t: t, sp: preforktest.NewSpawner(), clk: preforktest.NewClock(), ev: &preforktest.Events{}, done: make(chan error, 1)}
	opts.Addr = "127.0.0.1:0"
	opts.Spawner, opts.Clock, opts.OnEvent = r.sp, r.clk, r.ev.Record
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	m, err := prefork.New(nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	r.m = m
	before(m)
	go func() { r.done <- m.Run(context.Background()) }()
	return r
}

// exportOf returns what an old master whose slot 0 counted v writes.
func exportOf(t *testing.T, v float64) []byte {
	t.Helper()
	fams, err := metrics.Decode(snap(t, v))
	if err != nil {
		t.Fatal(err)
	}
	mg := metrics.NewMerger()
	if err := mg.Retire(0, 1, fams); err != nil {
		t.Fatal(err)
	}
	b, err := mg.Export(true)
	if err != nil {
		t.Fatal(err)
	}
	return append(binary.BigEndian.AppendUint64(nil, uint64(len(b))), b...)
}

// counted returns app_requests_total of slot 0 after importing an old
// master's output into an empty Merger.
func counted(t *testing.T, out []byte) float64 {
	t.Helper()
	if len(out) < 8 || binary.BigEndian.Uint64(out) != uint64(len(out)-8) {
		t.Fatalf("the old master wrote %d bytes, not a length and an export", len(out))
	}
	mg := metrics.NewMerger()
	if err := mg.Import(out[8:]); err != nil {
		t.Fatal(err)
	}
	fams, _ := mg.Gather()
	for _, f := range fams {
		if f.GetName() == "app_requests_total" {
			return f.Metric[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no app_requests_total in the export: %v", fams)
	return 0
}

// An old master hands its totals over at its very end, once the workers
// it drained after the handover have sent their final snapshots: what they
// answered during the drain counts too.
func TestUpgradeExportsTotalsAfterTheDrain(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	r := newRigBefore(t, prefork.Options{Workers: 1, MetricsTimeout: scrapeTimeout}, func(s *prefork.Server) { prefork.SetMetricsExport(s, pw) })
	up := newFakeUpgrade(r)
	w := r.boot()
	r.ev.Wait(t, prefork.EventServing, nil)
	out := r.scrape()
	answer(t, map[*preforktest.Worker]float64{w: 5})
	scraped(t, out)
	prefork.Do(r.m, signals.Upgrade)
	<-up.calls
	up.verdict <- nil
	r.ev.Wait(t, prefork.EventUpgraded, nil)
	if st := w.WaitStop(t); !st.Drain {
		t.Fatalf("after the handover the worker was told %+v, want a drain", st)
	}
	if err := w.FinalMetrics(snap(t, 7)); err != nil {
		t.Fatal(err)
	}
	w.Exit(0)
	if err := r.result(); err != nil {
		t.Fatalf("Run = %v, want nil after a handover", err)
	}
	pr.SetReadDeadline(time.Now().Add(preforktest.Patience)) // a bound, should the master not close its end
	b, err := io.ReadAll(pr)
	if err != nil {
		t.Fatal(err)
	}
	if got := counted(t, b); got != 7 {
		t.Fatalf("the old master handed over app_requests_total %v, want the final 7", got)
	}
}

// A new master holds its scrapes until the old master's totals are in,
// and then serves them added to its own workers' counts in the same slot.
func TestNewMasterContinuesTheOldTotals(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	r := newRigBefore(t, prefork.Options{Workers: 1, MetricsTimeout: scrapeTimeout}, func(s *prefork.Server) { prefork.SetMetricsImport(s, pr) })
	w := r.boot()
	r.ev.Wait(t, prefork.EventServing, nil)
	out := r.scrape()
	r.barrier()
	// Held: not asked of the workers, not served. (This can miss a scrape
	// that had not reached the loop yet, never flag a held one.)
	if n := prefork.ScrapeWaitsFor(r.m); n != 0 {
		t.Fatalf("a scrape asked %d workers before the old master's totals came", n)
	}
	select {
	case s := <-out:
		t.Fatalf("a scrape was served before the old master's totals came:\n%s", s)
	default:
	}
	if _, err := pw.Write(exportOf(t, 40)); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if e := r.ev.Wait(t, prefork.EventMetricsImported, nil); e.Err != nil {
		t.Fatalf("import: %v", e.Err)
	}
	answer(t, map[*preforktest.Worker]float64{w: 2})
	wantLines(t, scraped(t, out), `app_requests_total{worker="0"} 42`)
	r.finish(true)
}

// An old master that dies before its end (SIGKILL) sends nothing: the new
// master says so and serves its own counts — a reset, as after a crash.
func TestNewMasterServesOnWhenTheOldSentNothing(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r := newRigBefore(t, prefork.Options{Workers: 1, MetricsTimeout: scrapeTimeout}, func(s *prefork.Server) { prefork.SetMetricsImport(s, pr) })
	w := r.boot()
	r.ev.Wait(t, prefork.EventServing, nil)
	pw.Close()
	if e := r.ev.Wait(t, prefork.EventMetricsImported, nil); e.Err == nil {
		t.Fatal("an empty pipe imported, want an error saying the counts start over")
	}
	out := r.scrape()
	answer(t, map[*preforktest.Worker]float64{w: 2})
	wantLines(t, scraped(t, out), `app_requests_total{worker="0"} 2`)
	r.finish(true)
}
