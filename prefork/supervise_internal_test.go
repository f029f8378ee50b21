package prefork

import (
	"testing"
)

func TestBackoff(t *testing.T) {
	want := map[int]string{0: "0s", 1: "0s", 2: "100ms", 3: "200ms", 6: "1.6s", 9: "10s", 100: "10s"}
	for n, w := range want {
		if got := backoff(n).String(); got != w {
			t.Errorf("backoff(%d) = %s, want %s", n, got, w)
		}
	}
}
