package gracefork_test

import (
	"fmt"
	"log"
	"net/http"
	"syscall"
	"time"

	"github.com/gracefork/gracefork/prefork"
	"github.com/gracefork/gracefork/signals"
)

// The whole program: the same main runs as master and as every worker.
func Example() {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from worker %d\n", prefork.WorkerID())
	})
	opts := prefork.Options{
		Addr:            ":8080",
		Workers:         4,
		GracefulTimeout: 20 * time.Second,
		Server:          &http.Server{ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute},
	}
	if err := prefork.Serve(mux, opts); err != nil {
		log.Fatal(err)
	}
}

// Options are checked before any socket is bound or process started; the
// error names the field and the value.
func Example_badOptions() {
	err := prefork.Serve(http.NotFoundHandler(), prefork.Options{Addr: "localhost", Workers: 2})
	fmt.Println(err)
	err = prefork.Serve(http.NotFoundHandler(), prefork.Options{Addr: ":8080", Workers: -1})
	fmt.Println(err)
	// Output:
	// prefork: Options.Addr = "localhost": missing port in address; write "host:port", such as ":8080" or "127.0.0.1:8080"
	// prefork: Options.Workers = -1: must not be negative
}

// A program that triggers actions from Go keeps a handle on its master.
func Example_master() {
	h := http.NotFoundHandler()
	opts := prefork.Options{Addr: "127.0.0.1:8080", Workers: 2}
	if prefork.IsWorker() {
		if err := prefork.Serve(h, opts); err != nil {
			log.Fatal(err)
		}
		return
	}
	m, err := prefork.NewMaster(opts)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		// e.g. on a deploy hook:
		m.Do(signals.Reload)
	}()
	if err := m.Run(); err != nil {
		log.Fatal(err)
	}
}

// systemd users who reload with ExecReload=kill -HUP $MAINPID but want a
// binary upgrade rather than a worker reload remap HUP.
func Example_remapSignals() {
	sigs := signals.Default()
	sigs[syscall.SIGHUP] = signals.Upgrade
	fmt.Println(sigs.Validate(), sigs[syscall.SIGHUP])
	// Output: <nil> upgrade
}
