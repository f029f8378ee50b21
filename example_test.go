package gracefork_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
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

// deployed is closed by the program's deploy hook once the new binary is
// in place (a stand-in for however your deploys say so).
var deployed = make(chan struct{})

// A program that drives the service from Go. New works in the master and
// in every worker alike, so nothing branches on the role to get a handle:
// the master reloads when a deploy is done and learns whether it worked;
// Ctrl-C (in a terminal, it reaches every process) drains within 30s.
func Example_server() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	srv, err := prefork.New(http.NotFoundHandler(), prefork.Options{Addr: "127.0.0.1:8080", Workers: 2})
	if err != nil {
		log.Fatal(err)
	}
	if srv.IsMaster() { // in a worker, Reload returns ErrNotMaster
		go func() {
			<-deployed
			if err := srv.Reload(ctx); err != nil {
				log.Printf("reload failed, the old workers serve on: %v", err)
				return
			}
			log.Print("every worker runs the new code")
		}()
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close() // the drain overran: stop at once
		}
	}()
	if err := srv.Run(context.Background()); err != nil {
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
