//go:build !unix

package prefork_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gracefork/gracefork/prefork"
)

// Where there are no worker processes, New serves in single-process mode.
func TestSingleProcessIsTheDefault(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	mux.Handle("/readyz", prefork.ReadyHandler())
	srv, err := prefork.New(mux, prefork.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if !srv.IsSingleProcess() || srv.IsMaster() {
		t.Fatalf("IsSingleProcess = %v, IsMaster = %v; want true, false", srv.IsSingleProcess(), srv.IsMaster())
	}
	if err := srv.Reload(context.Background()); !errors.Is(err, prefork.ErrSingleProcess) {
		t.Fatalf("Reload = %v, want ErrSingleProcess", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(context.Background()) }()
	url := "http://" + srv.Addrs()[0].String()
	resp, err := http.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "hello") {
		t.Fatalf("GET / = %q", b)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
}
