package prefork

import (
	"os"
	"strings"
	"testing"
)

// A leaked marker is explained, before any option error, and the worker
// role removes it from the environment, so that children never see it.
func TestLeakedMarkerIsExplained(t *testing.T) {
	t.Setenv(MarkerEnv, "1")
	defer func(f func() handoffState) { theHandoff = f }(theHandoff)
	theHandoff = func() handoffState { return readHandoff(os.Getenv) }
	if !IsWorker() || WorkerID() != -1 || WorkerGeneration() != -1 {
		t.Fatalf("IsWorker=%v WorkerID=%d WorkerGeneration=%d", IsWorker(), WorkerID(), WorkerGeneration())
	}
	hs := theHandoff()
	theHandoff = func() handoffState { return hs } // read once, as in a program
	_, err := New(nil, Options{Addr: ":0", Workers: -1})
	for _, want := range []string{MarkerEnv + `="1" is malformed`, "leaked", "unset " + MarkerEnv} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	if v, ok := os.LookupEnv(MarkerEnv); ok {
		t.Errorf("the marker %q is still in the environment", v)
	}
}
