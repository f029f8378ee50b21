//go:build unix

package signals

import (
	"syscall"
	"testing"
)

func TestDefaultIsGunicorns(t *testing.T) {
	want := map[syscall.Signal]Action{
		syscall.SIGHUP: Reload, syscall.SIGTERM: Shutdown, syscall.SIGINT: Quit,
		syscall.SIGQUIT: Quit, syscall.SIGUSR1: ReopenLogs, syscall.SIGUSR2: Upgrade,
		syscall.SIGWINCH: StopWorkers, syscall.SIGTTIN: AddWorker, syscall.SIGTTOU: RemoveWorker,
	}
	m := Default()
	if len(m) != len(want) {
		t.Fatalf("Default has %d signals, want %d", len(m), len(want))
	}
	for sig, a := range want {
		if m[sig] != a {
			t.Errorf("Default()[%v] = %v, want %v", sig, m[sig], a)
		}
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

func TestValidateRejectsSIGSTOP(t *testing.T) {
	err := Map{syscall.SIGTERM: Shutdown, syscall.SIGSTOP: Quit}.Validate()
	const want = "signals: SIGSTOP cannot be caught, so it cannot mean quit"
	if err == nil || err.Error() != want {
		t.Fatalf("Validate() = %v, want %q", err, want)
	}
}
