package chaos

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// repoRoot is the repository root seen from this package's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// e2eConfig is a short run with the given faults and strict client.
func e2eConfig(t *testing.T, d time.Duration, conns int, faults string) RunConfig {
	t.Helper()
	fs, err := ParseFaults(faults)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	return RunConfig{
		Env:     BuildEnv{Repo: repoRoot(t), Tmp: tmp},
		Workers: 2, Conns: conns, Duration: d, Timeout: 5 * time.Second, Mode: Strict,
		Faults: fs, Warmup: 250 * time.Millisecond, StopGrace: 15 * time.Second,
		LeftoverGrace: time.Second, OldMasterSignal: syscall.SIGQUIT,
		Progress: testWriter{t},
	}
}

// testWriter sends progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// report logs the text report of s.
func report(t *testing.T, s *Summary) {
	t.Helper()
	var b strings.Builder
	s.WriteText(&b)
	t.Log("\n" + b.String())
}

// assertNothingLeft fails if any process the target ever had still runs.
func assertNothingLeft(t *testing.T, s *Summary) {
	t.Helper()
	for _, l := range s.Leftovers {
		if Alive(l.PID, 0) {
			t.Errorf("leftover pid=%d (%s) still alive after Run returned", l.PID, l.Cmdline)
		}
	}
	tab, err := ScanProcs()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range tab.Descendants(os.Getpid()) {
		t.Errorf("process %d (%s) still below the test process", p, Cmdline(p))
	}
}

// TestSmokeGracefork is the CI smoke: examples/hello with 2 workers under
// 32 strict keep-alive connections while the master gets 2 HUPs in about
// 4 s. No request may fail, both worker slots must answer, and nothing may
// survive the master.
func TestSmokeGracefork(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run")
	}
	if _, err := os.Stat(filepath.Join(repoRoot(t), "examples", "hello", "main.go")); err != nil {
		t.Fatalf("examples/hello: %v", err)
	}
	sc, err := LookupScenario("smoke")
	if err != nil {
		t.Fatal(err)
	}
	cfg := e2eConfig(t, sc.Duration, 32, sc.Faults)
	cfg.Warmup = time.Second
	s, err := Run(t.Context(), TGracefork, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Skipped != "" {
		t.Fatalf("gracefork skipped: %s", s.Skipped)
	}
	report(t, s)
	if s.OK == 0 || s.Failed != 0 {
		t.Errorf("%d ok, %d failed %v (samples %v); want 0 failed", s.OK, s.Failed, s.FailedBy, s.ErrorSamples)
	}
	for _, f := range s.Faults {
		if !f.Injected {
			t.Errorf("fault %s at %.2fs not injected: %s", f.Action, f.Scheduled, f.Detail)
		}
	}
	for _, slot := range []int{0, 1} {
		if s.SlotShares[slot] == 0 {
			t.Errorf("worker slot %d never answered (slots %v)", slot, s.SlotShares)
		}
	}
	if len(s.Leftovers) != 0 {
		t.Errorf("left behind after the master exited: %+v", s.Leftovers)
	}
	assertNothingLeft(t, s)
}

func TestRunNetHTTPReportsUnsupported(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run")
	}
	cfg := e2eConfig(t, 1500*time.Millisecond, 8, "at=500ms action=hup; at=600ms action=kill9")
	s, err := Run(t.Context(), TNetHTTP, cfg)
	if err != nil {
		t.Fatal(err)
	}
	report(t, s)
	if s.Failed != 0 || s.OK == 0 {
		t.Errorf("%d ok, %d failed", s.OK, s.Failed)
	}
	for _, f := range s.Faults {
		want := "action=" + string(f.Action) + " not supported by nethttp"
		if !f.Fired || f.Injected || !strings.HasPrefix(f.Detail, want) {
			t.Errorf("fault %+v: want fired, not injected, detail %q", f, want)
		}
	}
	if len(s.PIDShares) != 1 || s.SlotShares[0] != s.OK {
		t.Errorf("pids %v slots %v, want one pid, slot 0", s.PIDShares, s.SlotShares)
	}
	if len(s.Leftovers) != 0 {
		t.Errorf("leftovers %+v", s.Leftovers)
	}
	assertNothingLeft(t, s)
}

// TestRunFastHTTPCrash kills a fasthttp worker: prefork respawns it. On
// SIGTERM its master dies at once (it handles no signals) and its
// children, which do not watch the master by default, are left behind:
// the harness must report them and then kill them.
func TestRunFastHTTPCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run")
	}
	cfg := e2eConfig(t, 2*time.Second, 8, "at=700ms action=kill9")
	s, err := Run(t.Context(), TFastHTTP, cfg)
	if err != nil {
		t.Fatal(err)
	}
	report(t, s)
	f := s.Faults[0]
	if !f.Injected || !strings.Contains(f.Detail, "killed worker pid=") || len(f.NewPids) == 0 {
		t.Errorf("kill9: %+v, want a killed worker and a respawned one", f)
	}
	if len(s.Leftovers) != 2 {
		t.Errorf("leftovers %+v, want the 2 orphaned children", s.Leftovers)
	}
	assertNothingLeft(t, s)
}

// TestRunGunicornUpgrade exercises the USR2 + WINCH + QUIT procedure.
func TestRunGunicornUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run")
	}
	if _, err := exec.LookPath("gunicorn"); err != nil {
		t.Skip(GunicornMissing)
	}
	cfg := e2eConfig(t, 4*time.Second, 8, "at=500ms action=usr2")
	s, err := Run(t.Context(), TGunicorn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Skipped != "" {
		t.Skip(s.Skipped)
	}
	report(t, s)
	f := s.Faults[0]
	if !f.Injected || !strings.Contains(f.Detail, "booted") || !strings.Contains(f.Detail, "old master exited") {
		t.Errorf("usr2: %s", f.Detail)
	}
	if !strings.Contains(s.MasterExit, "after SIGTERM") {
		t.Errorf("new master did not get the final SIGTERM: %s", s.MasterExit)
	}
	if len(s.Leftovers) != 0 {
		t.Errorf("leftovers %+v", s.Leftovers)
	}
	assertNothingLeft(t, s)
}

// TestRunGraceforkUpgrade: two USR2 upgrades of examples/hello. Each must
// be followed to a new master (named by -pidfile) whose workers answer,
// the old master and workers must exit, the second USR2 and the final
// SIGTERM must go to the newest master, and nothing may be left behind.
func TestRunGraceforkUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run")
	}
	cfg := e2eConfig(t, 5*time.Second, 16, "every=2s from=1s count=2 action=usr2")
	s, err := Run(t.Context(), TGracefork, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Skipped != "" {
		t.Fatalf("gracefork skipped: %s", s.Skipped)
	}
	report(t, s)
	if s.OK == 0 || s.Failed != 0 {
		t.Errorf("%d ok, %d failed %v (samples %v); want 0 failed", s.OK, s.Failed, s.FailedBy, s.ErrorSamples)
	}
	var masters []string
	for _, f := range s.Faults {
		if !f.Injected || !strings.Contains(f.Detail, "new master pid=") || !strings.Contains(f.Detail, "new workers answered") ||
			!strings.Contains(f.Detail, "old master exited") || !strings.Contains(f.Detail, "gone after") {
			t.Errorf("usr2 at %.2fs: %s", f.Scheduled, f.Detail)
			continue
		}
		m := f.Detail[strings.Index(f.Detail, "new master pid=")+len("new master "):]
		masters = append(masters, m[:strings.IndexByte(m, ' ')]) // "pid=N"
	}
	if len(masters) == 2 && masters[0] == masters[1] {
		t.Errorf("both upgrades report the same new master %s", masters[0])
	}
	if len(masters) == 2 && !strings.HasPrefix(s.MasterExit, masters[1]+" ") {
		t.Errorf("final SIGTERM did not go to the newest master %s: %s", masters[1], s.MasterExit)
	}
	if len(s.Leftovers) != 0 {
		t.Errorf("left behind after the master exited: %+v", s.Leftovers)
	}
	assertNothingLeft(t, s)
}
