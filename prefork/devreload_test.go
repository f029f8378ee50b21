package prefork_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork"
)

// With ReloadOnChange, a change to a watched path reloads the workers once
// it has settled: a build that writes in steps starts one reload, after its
// last write.
func TestChangeReloadsOnceSettled(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "templates", "index.html")
	os.MkdirAll(filepath.Dir(file), 0o755)
	os.WriteFile(file, []byte("v1"), 0o644)
	r := newRig(t, prefork.Options{Workers: 1, ReloadOnChange: true, ReloadWatch: []string{dir}})
	old := r.boot()
	r.ev.Wait(t, prefork.EventServing, nil)
	poll := func() {
		t.Helper()
		r.clk.WaitTimer(t, 500*time.Millisecond)
		r.clk.Advance(500 * time.Millisecond)
	}
	poll() // nothing changed
	os.WriteFile(file, []byte("v2, half written"), 0o644)
	poll() // a change: not settled yet
	os.WriteFile(file, []byte("v2, whole"), 0o644)
	os.WriteFile(filepath.Join(dir, "templates", "new.html"), nil, 0o644)
	poll() // still changing
	r.barrier()
	if n := countKind(r.ev, prefork.EventReloadStarted); n != 0 {
		t.Fatalf("reloaded before the change settled:\n%s", r.ev)
	}
	poll() // settled: reload
	e := r.ev.Wait(t, prefork.EventChangeDetected, nil)
	if !strings.Contains(e.Detail, "index.html") || !strings.Contains(e.Detail, "new.html") {
		t.Errorf("change detected in %q, want both files", e.Detail)
	}
	r.ev.Wait(t, prefork.EventReloadStarted, nil)
	r.boot()
	if st := old.WaitStop(t); !st.Drain {
		t.Fatalf("old worker told %+v", st)
	}
	old.Exit(0)
	r.ev.Wait(t, prefork.EventReloadDone, nil)
	poll() // nothing more
	r.barrier()
	if n := countKind(r.ev, prefork.EventReloadStarted); n != 1 {
		t.Fatalf("%d reloads, want 1", n)
	}
	r.finish(true)
}

// ReloadWatch needs ReloadOnChange, and names paths that exist.
func TestReloadWatchRejected(t *testing.T) {
	for _, tc := range []struct {
		opts prefork.Options
		want string
	}{
		{prefork.Options{Addr: ":0", ReloadWatch: []string{"."}}, `prefork: Options.ReloadWatch = [.]: needs ReloadOnChange`},
		{prefork.Options{Addr: ":0", ReloadOnChange: true, ReloadWatch: []string{"/no/such/dir"}}, `prefork: Options.ReloadWatch[0] = "/no/such/dir": cannot be watched: stat /no/such/dir: no such file or directory`},
		{prefork.Options{Addr: ":0", ReloadOnChange: true, SingleProcess: true}, `prefork: Options.ReloadOnChange = true: needs the multi-process mode: a single process has no workers to reload`},
	} {
		_, err := prefork.New(nil, tc.opts)
		var oe *prefork.OptionError
		if !errors.As(err, &oe) || err.Error() != tc.want {
			t.Errorf("New = %v, want %s", err, tc.want)
		}
	}
}
