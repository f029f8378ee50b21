package prefork

import (
	"slices"
	"testing"
)

func TestWorkerEnvironStripsPrivateVariables(t *testing.T) {
	in := []string{"PATH=/bin", markerEnv + "=v1", "LISTEN_FDS=2", "LISTEN_PID=9", "NOTIFY_SOCKET=/run/x",
		"TABLEFLIP_HAS_PARENT_7DIU3=1", "LISTEN_FDSX=keep", "HOME=/root"}
	got := workerEnviron(in)
	want := []string{"PATH=/bin", "LISTEN_FDSX=keep", "HOME=/root"}
	if !slices.Equal(got, want) {
		t.Fatalf("workerEnviron = %v, want %v", got, want)
	}
}
