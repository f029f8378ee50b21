// Command hello is gracefork's demo: one binary, a master and N workers
// sharing one socket. Every answer names the worker that gave it.
//
//	go run ./examples/hello -workers 4
//	curl http://127.0.0.1:8080/
//
// Its command line is Gunicorn's, from package flags: -w/--workers,
// -b/--bind (repeatable: host:port, unix:/path, fd://N), --timeout,
// --graceful-timeout, --keep-alive, --pid, --access-logfile, --log-level,
// --check-config and the rest (-h lists them), each with a GRACEFORK_*
// variable, and WEB_CONCURRENCY and PORT as on Heroku; a flag wins over
// the environment. The older names -addr, -pidfile, -metrics-addr and
// -heartbeat-timeout still work.
//
//	PORT=8000 WEB_CONCURRENCY=4 go run ./examples/hello --access-logfile - --log-level warning
//	go run ./examples/hello -b 127.0.0.1:8080 -b unix:/tmp/hello.sock --check-config
//
// On Linux, -reuse-port (GRACEFORK_REUSE_PORT=1) gives each worker a
// listening socket of its own instead of one they all share; the answers
// show the kernel spreading new connections over them.
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
//
// Workers can be recycled as Gunicorn's are, after a number of requests
// (-max-requests, -max-requests-jitter), an age (-max-age) or a resident
// set size (-max-memory 512MiB), one at a time, each replacement ready
// before the old worker drains. /slow?d=10s sleeps but gives up when its
// request's context ends; /stuck?d=30s sleeps regardless. With
// -request-timeout 1s both answer 503 after a second, and the worker
// stuck in /stuck is then recycled:
//
//	go run ./examples/hello -max-requests 20000 -max-requests-jitter 2000 -request-timeout 1s
//	curl -i 'http://127.0.0.1:8080/slow?d=10s'
//
// Every worker counts the answers of / with a promauto counter,
// hello_requests_total, on its own default registry. With -metrics-bind,
// the master serves every worker's metrics, merged and labelled by worker
// slot, at /metrics; -worker-metrics adds the library's own per-worker
// metrics (requests by code and method, their duration, the Go runtime):
//
//	go run ./examples/hello -metrics-bind :9100 -worker-metrics
//	curl http://127.0.0.1:9100/metrics
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/gracefork/gracefork/flags"
	"github.com/gracefork/gracefork/prefork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// helloRequests counts the answers of /. promauto registers it on the
// process's default registry, which is what each worker reports to the
// master by default (Options.MetricsGatherer).
var helloRequests = promauto.NewCounter(prometheus.CounterOpts{
	Name: "hello_requests_total",
	Help: "Answers given by the hello handler.",
})

// config is what the command line and the environment say.
type config struct {
	opts  prefork.Options
	admin string
	fl    *flags.Set // gracefork's flags, to name one in an error
}

// oldNames are the names hello's flags had before it took Gunicorn's,
// kept for the scripts that use them (bench/, examples/systemd).
var oldNames = map[string]string{"addr": "bind", "pidfile": "pid", "metrics-addr": "metrics-bind", "heartbeat-timeout": "timeout"}

// parseFlags reads the command line; a bad value is reported on stderr.
func parseFlags(args []string) (*config, error) {
	return parseFlagsTo(args, os.Stderr)
}

// parseFlagsTo reads the command line and the environment (package flags:
// Gunicorn's flags, WEB_CONCURRENCY, PORT, GRACEFORK_*) and writes what
// is wrong with them, naming the flag or variable and the value, to out.
func parseFlagsTo(args []string, out io.Writer) (*config, error) {
	c := &config{opts: prefork.Options{ // hello's defaults
		Addr:    "127.0.0.1:8080",
		Workers: 2,
		Server:  &http.Server{ReadHeaderTimeout: 10 * time.Second},
	}}
	fs := flag.NewFlagSet("hello", flag.ContinueOnError)
	fs.SetOutput(out)
	c.fl = flags.Register(fs, &c.opts)
	for old, name := range oldNames {
		kind, _ := flag.UnquoteUsage(fs.Lookup(name))
		fs.Var(fs.Lookup(name).Value, old, "older name of -"+name+" `"+kind+"`")
	}
	fs.StringVar(&c.admin, "admin", "", "if set, the master serves POST /reload, /upgrade and /scale?n= here")
	fs.DurationVar(&c.opts.Recycle.MinInterval, "min-recycle-interval", 0, "least time between two recycles across the pool")
	fs.DurationVar(&c.opts.RequestTimeout, "request-timeout", 0, "answer 503 to a request still running after this and cancel its context (0: no timeout)")
	fs.BoolVar(&c.opts.WorkerMetrics, "worker-metrics", false, "add gracefork's per-worker metrics: requests by code and method, their duration, in flight, connections, Go runtime and process")
	if err := fs.Parse(args); err != nil {
		return c, err // the flag package has printed it
	}
	if err := c.check(fs); err != nil {
		fmt.Fprintf(out, "hello: %v\n", err)
		return c, err
	}
	return c, c.fl.Apply() // Apply prints what is wrong, or -check-config's verdict
}

// check rejects what the flag package lets through in hello's own flags:
// extra arguments, negative durations.
func (c *config) check(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, name := range []string{"min-recycle-interval", "request-timeout"} {
		f := fs.Lookup(name)
		if d := f.Value.(flag.Getter).Get().(time.Duration); d < 0 {
			return fmt.Errorf("-%s %s: must not be negative", name, f.Value)
		}
	}
	return nil
}

func main() {
	c, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) || errors.Is(err, flags.ErrConfigOK) {
		os.Exit(0)
	}
	if err != nil {
		os.Exit(2)
	}

	// New works in the master and in the workers alike; so does Run.
	srv, err := prefork.New(newMux(os.Getpid()), c.opts)
	if uerr := c.fl.UsageError(err); uerr != nil {
		// A value the flags let through but the library refuses (a
		// -timeout under 2s): a usage error too, before any worker
		// starts.
		fmt.Fprintf(os.Stderr, "hello: %v\n", uerr)
		os.Exit(2)
	}
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

// newMux is the demo's handlers. /readyz and /livez are the probes. /slow and /stuck show what
// -request-timeout does: /slow?d=10s sleeps but returns as soon as its
// request's context is done; /stuck?d=30s sleeps whatever happens, as a
// handler blocked in a call without a context would.
func newMux(pid int) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from worker=%d pid=%d\n", prefork.WorkerID(), pid)
		helloRequests.Inc()
	})
	// The probes an orchestrator asks: /readyz fails from the first
	// moment of a stop (through -shutdown-delay) and while the pool is
	// short of workers; /livez only when the process is wedged.
	mux.Handle("/readyz", prefork.ReadyHandler())
	mux.Handle("/livez", prefork.LiveHandler())
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		d, ok := sleepParam(w, r)
		if !ok {
			return
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			fmt.Fprintf(w, "slept %s, worker=%d pid=%d\n", d, prefork.WorkerID(), pid)
		case <-r.Context().Done():
			// The request timed out or the client left: nothing to say.
		}
	})
	mux.HandleFunc("/stuck", func(w http.ResponseWriter, r *http.Request) {
		d, ok := sleepParam(w, r)
		if !ok {
			return
		}
		time.Sleep(d) // deliberately deaf to r.Context()
		fmt.Fprintf(w, "slept %s, worker=%d pid=%d\n", d, prefork.WorkerID(), pid)
	})
	return mux
}

// maxSleep bounds /slow and /stuck, so a typo cannot hold a worker for ever.
const maxSleep = time.Hour

// sleepParam reads ?d=, answering 400 when it is missing or out of range.
func sleepParam(w http.ResponseWriter, r *http.Request) (time.Duration, bool) {
	v := r.URL.Query().Get("d")
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > maxSleep {
		http.Error(w, fmt.Sprintf("want ?d=<duration> between 0 and %s, such as ?d=10s; got d=%q", maxSleep, v), http.StatusBadRequest)
		return 0, false
	}
	return d, true
}
