//go:build !unix

package prefork_test

import (
	"errors"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/gracefork/gracefork/prefork"
)

func TestServeUnsupported(t *testing.T) {
	err := prefork.Serve(http.NotFoundHandler(), prefork.Options{Addr: "127.0.0.1:0"})
	if !errors.Is(err, prefork.ErrUnsupported) || !errors.Is(err, errors.ErrUnsupported) ||
		!strings.Contains(err.Error(), runtime.GOOS) || !strings.Contains(err.Error(), "single-process mode") {
		t.Fatalf("Serve = %v, want ErrUnsupported naming %s and the single-process mode to come", err, runtime.GOOS)
	}
	if m, err := prefork.New(nil, prefork.Options{Addr: "127.0.0.1:0"}); m != nil || !errors.Is(err, prefork.ErrUnsupported) {
		t.Fatalf("New = %v, %v; want ErrUnsupported", m, err)
	}
}
