// Command hello is gracefork's demo: one binary, a master and N workers
// sharing one socket. Every answer names the worker that gave it.
//
//	go run ./examples/hello -workers 4
//	curl http://127.0.0.1:8080/
//
// Send the master SIGTERM for a graceful shutdown, or press Ctrl-C; SIGHUP
// reloads the workers, SIGUSR2 upgrades to the binary on disk, SIGTTIN and
// SIGTTOU add and remove a worker.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/gracefork/gracefork/prefork"
)

// config is what the flags say.
type config struct {
	addr     string
	workers  int
	graceful time.Duration
	pidfile  string
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("hello", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "address to listen on: host:port or unix:/path")
	fs.IntVar(&c.workers, "workers", 2, "number of worker processes (0: one per core)")
	fs.DurationVar(&c.graceful, "graceful-timeout", prefork.DefaultGracefulTimeout, "how long in-flight requests may run after a worker is told to stop")
	fs.StringVar(&c.pidfile, "pidfile", "", "write the master's pid here once it serves (follows upgrades)")
	return c, fs.Parse(args)
}

func main() {
	c, err := parseFlags(os.Args[1:])
	if err != nil {
		os.Exit(2)
	}

	pid := os.Getpid()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from worker=%d pid=%d\n", prefork.WorkerID(), pid)
	})
	opts := prefork.Options{
		Addr:            c.addr,
		Workers:         c.workers,
		GracefulTimeout: c.graceful,
		PIDFile:         c.pidfile,
		Server:          &http.Server{ReadHeaderTimeout: 10 * time.Second},
	}
	if err := prefork.Serve(mux, opts); err != nil {
		log.Fatal(err)
	}
}
