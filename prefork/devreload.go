package prefork

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gracefork/gracefork/signals"
)

// Development reload (Options.ReloadOnChange): the master polls the
// executable and Options.ReloadWatch, and runs a rolling reload — the
// action SIGHUP runs — once a change has settled.
const (
	// watchInterval is how often the watched paths are looked at.
	watchInterval = 500 * time.Millisecond
	// maxWatched bounds the files a ReloadWatch directory may hold: a
	// watch of a whole tree by mistake must not make the master stat a
	// million files twice a second.
	maxWatched = 10000
)

// fileState is what a poll sees of one file: enough to tell a rebuilt
// binary (size, time, or a new inode after a rename) from the same one.
type fileState struct {
	size int64
	mod  time.Time
	info fs.FileInfo
}

func (a fileState) same(b fileState) bool {
	return a.size == b.size && a.mod.Equal(b.mod) && (a.info == nil) == (b.info == nil) &&
		(a.info == nil || os.SameFile(a.info, b.info))
}

// watchedPaths are the executable and ReloadWatch, as given.
func (m *master) watchedPaths() []string {
	paths := slices.Clone(m.cfg.ReloadWatch)
	if sp, ok := m.spawner.(*ExecSpawner); ok && sp.Path != "" {
		return append([]string{sp.Path}, paths...)
	}
	if exe, err := os.Executable(); err == nil {
		return append([]string{exe}, paths...)
	}
	return paths
}

// snapshot stats every watched file; a directory counts every file under
// it, up to maxWatched. A path that is gone is recorded as gone: a build
// that removes, then writes, the file shows as two changes.
func snapshot(paths []string) map[string]fileState {
	out := map[string]fileState{}
	for _, p := range paths {
		filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				out[path] = fileState{}
				return nil
			}
			if d.IsDir() {
				if len(out) >= maxWatched {
					return filepath.SkipAll
				}
				return nil
			}
			if info, err := os.Stat(path); err == nil { // through symlinks: a switched release link is a change
				out[path] = fileState{size: info.Size(), mod: info.ModTime(), info: info}
			} else {
				out[path] = fileState{}
			}
			return nil
		})
	}
	return out
}

// changed lists the paths whose state differs between two snapshots.
func changed(a, b map[string]fileState) []string {
	var out []string
	for p, s := range b {
		if old, ok := a[p]; !ok || !old.same(s) {
			out = append(out, p)
		}
	}
	for p := range a {
		if _, ok := b[p]; !ok {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// watch polls the watched paths until the master stops, off the loop (a
// directory walk may take a while). A change is acted on once a poll finds
// nothing more changed — a build writes its output in several steps, and
// the reload must start the finished binary — and its reload is queued as
// SIGHUP's is, so changes during a reload coalesce into one more pass.
func (m *master) watch() {
	paths := m.watchedPaths()
	last := snapshot(paths)
	var pending []string // changed since the last reload, not settled yet
	var poll func()
	poll = func() {
		select {
		case <-m.done:
			return
		default:
		}
		now := snapshot(paths)
		diff := changed(last, now)
		last = now
		switch {
		case len(diff) > 0:
			pending = append(pending, diff...)
		case len(pending) > 0:
			what := strings.Join(slices.Compact(slices.Sorted(slices.Values(pending))), ", ")
			pending = nil
			m.post(callEvent{func() { m.emit(Event{Kind: EventChangeDetected, Detail: what}) }})
			m.do(request{a: signals.Reload})
		}
		m.clock.AfterFunc(watchInterval, poll)
	}
	m.clock.AfterFunc(watchInterval, poll)
}

// checkReloadWatch validates ReloadOnChange and ReloadWatch.
func (c *config) checkReloadWatch() error {
	if len(c.ReloadWatch) > 0 && !c.ReloadOnChange {
		return &OptionError{Field: "ReloadWatch", Value: c.ReloadWatch, Reason: "needs ReloadOnChange"}
	}
	for i, p := range c.ReloadWatch {
		if _, err := os.Stat(p); err != nil {
			return &OptionError{Field: "ReloadWatch[" + strconv.Itoa(i) + "]", Value: p, Reason: "cannot be watched: " + err.Error(), Err: err}
		}
	}
	return nil
}
