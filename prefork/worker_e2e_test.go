package prefork_test

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
)

// A reload to a binary that names other addresses fails, says why and
// what to do instead, and leaves the old workers serving.
func TestE2EReloadWithOtherAddressesFails(t *testing.T) {
	flag := t.TempDir() + "/more"
	p := startMaster(t, "TEST_WORKERS=1", "TEST_MORE_ADDRS_IF="+flag)
	var at int
	addr := p.addr(&at)
	old := p.ready(&at, 1)[0]
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	err := p.waitLog(&at, "reload failed", nil)["err"].(string)
	for _, want := range []string{"address list changed", "serves 1 addresses", "name 2", "upgrade (USR2)"} {
		if !strings.Contains(err, want) {
			t.Errorf("reload failure %q does not say %q", err, want)
		}
	}
	if strings.Contains(err, "leaked") {
		t.Errorf("reload failure %q blames a leaked marker", err)
	}
	if body := get(t, newClient(), "http://"+addr+"/"); !strings.Contains(body, fmt.Sprintf("pid=%d", old)) {
		t.Fatalf("answer %q, want the old worker %d", body, old)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("master exit %d", code)
	}
}
