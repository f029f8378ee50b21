// Command hello is gracefork's demo: one binary, a master and N workers
// sharing one socket. Every answer names the worker that gave it.
//
//	go run ./examples/hello -workers 4
//	curl http://127.0.0.1:8080/
//
// Send the master SIGTERM for a graceful shutdown, or press Ctrl-C; SIGHUP
// reloads the workers, SIGUSR2 upgrades to the binary on disk, SIGTTIN and
// SIGTTOU add and remove a worker.
//
// With -admin, the master also answers on a private address, and a deploy
// script can reload or upgrade and learn whether it worked:
//
//	go run ./examples/hello -admin 127.0.0.1:9090
//	curl -X POST http://127.0.0.1:9090/reload   # 200 once every worker runs the new code
//	curl -X POST http://127.0.0.1:9090/upgrade  # 200 once the new master took over
//	curl -X POST 'http://127.0.0.1:9090/scale?n=4'
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/gracefork/gracefork/prefork"
)

// config is what the flags say.
type config struct {
	addr     string
	workers  int
	graceful time.Duration
	pidfile  string
	admin    string
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("hello", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "address to listen on: host:port or unix:/path")
	fs.IntVar(&c.workers, "workers", 2, "number of worker processes (0: one per core)")
	fs.DurationVar(&c.graceful, "graceful-timeout", prefork.DefaultGracefulTimeout, "how long in-flight requests may run after a worker is told to stop")
	fs.StringVar(&c.pidfile, "pidfile", "", "write the master's pid here once it serves (follows upgrades)")
	fs.StringVar(&c.admin, "admin", "", "if set, the master serves POST /reload, /upgrade and /scale?n= here")
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
	// New works in the master and in the workers alike; so does Run.
	srv, err := prefork.New(mux, opts)
	if err != nil {
		log.Fatal(err)
	}
	if c.admin != "" && srv.IsMaster() {
		go serveAdmin(srv, c.admin)
	}
	if err := srv.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

// serveAdmin answers a deploy script in the master: each action returns
// once it has finished, with its error if it failed.
func serveAdmin(srv *prefork.Server, addr string) {
	// After an upgrade, the old master holds the address until it exits.
	ln, err := net.Listen("tcp", addr)
	for ; err != nil; ln, err = net.Listen("tcp", addr) {
		log.Printf("admin: %v; retrying", err)
		time.Sleep(time.Second)
	}
	log.Printf("admin: serving on %s", ln.Addr())
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, err error) {
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		fmt.Fprintln(w, "ok")
	}
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, r *http.Request) {
		if err := srv.Reload(r.Context()); err != nil {
			reply(w, fmt.Errorf("reload failed, the old workers serve on: %w", err))
			return
		}
		reply(w, nil)
	})
	mux.HandleFunc("POST /upgrade", func(w http.ResponseWriter, r *http.Request) {
		reply(w, srv.Upgrade(r.Context()))
	})
	mux.HandleFunc("POST /scale", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil {
			http.Error(w, "want ?n=<workers>", http.StatusBadRequest)
			return
		}
		reply(w, srv.Scale(n))
	})
	(&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}).Serve(ln)
}
