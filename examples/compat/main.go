// Command compat serves a router of a popular Go web framework through
// gracefork: a master and N worker processes sharing one socket, with
// rolling reloads and graceful stops, whatever builds the http.Handler.
//
//	cd examples/compat
//	go run . -router gin           # or chi, gorilla, echo
//	curl http://127.0.0.1:8080/hello/gopher
//
// Each router answers / and /hello/<name>, the name read with the
// router's own path parameter (chi's and gorilla/mux's {name}, gin's and
// echo's :name), naming the router, the worker slot and the worker's pid.
// Nothing in gracefork is specific to a router: each only has to be an
// http.Handler, given to prefork.Serve.
//
// The rest of the command line is package flags' (Gunicorn's): -w, -b,
// --timeout, --graceful-timeout, --access-logfile and the rest (-h lists
// them). SIGHUP reloads the workers one by one, SIGTERM stops
// gracefully.
//
// This program is a module of its own, so that the library's go.mod
// requires none of these routers.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/gracefork/gracefork/flags"
	"github.com/gracefork/gracefork/prefork"
)

// routers builds each router's handler, by the name -router takes.
var routers = map[string]func(pid int) http.Handler{
	"chi":     newChi,
	"gorilla": newGorilla,
	"gin":     newGin,
	"echo":    newEcho,
}

// routerNames lists the names -router accepts, sorted.
func routerNames() []string {
	names := make([]string, 0, len(routers))
	for name := range routers {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// config is what the command line and the environment say.
type config struct {
	router string
	opts   prefork.Options
	fl     *flags.Set // gracefork's flags, to name one in an error
}

// parseFlags reads the command line and the environment (package flags),
// writing what is wrong with them to out.
func parseFlags(args []string, out io.Writer) (*config, error) {
	c := &config{opts: prefork.Options{ // the example's defaults
		Addr:    "127.0.0.1:8080",
		Workers: 2,
		Server:  &http.Server{ReadHeaderTimeout: 10 * time.Second},
	}}
	fs := flag.NewFlagSet("compat", flag.ContinueOnError)
	fs.SetOutput(out)
	c.fl = flags.Register(fs, &c.opts)
	fs.StringVar(&c.router, "router", "chi", "the router to serve: "+strings.Join(routerNames(), ", "))
	if err := fs.Parse(args); err != nil {
		return c, err // the flag package has printed it
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected arguments %q", fs.Args())
		fmt.Fprintf(out, "compat: %v\n", err)
		return c, err
	}
	if routers[c.router] == nil {
		err := fmt.Errorf("-router %q: want one of %s", c.router, strings.Join(routerNames(), ", "))
		fmt.Fprintf(out, "compat: %v\n", err)
		return c, err
	}
	return c, c.fl.Apply() // Apply prints what is wrong, or -check-config's verdict
}

// run serves c's router, in the master and in each worker alike, and
// returns the exit status: 0 after a graceful stop, 2 for a value the
// library refuses, 1 for any other error.
func run(c *config) int {
	err := prefork.Serve(routers[c.router](os.Getpid()), c.opts)
	if uerr := c.fl.UsageError(err); uerr != nil {
		fmt.Fprintf(os.Stderr, "compat: %v\n", uerr)
		return 2
	}
	if err != nil {
		log.Print(err)
		return 1
	}
	return 0
}

func main() {
	c, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) || errors.Is(err, flags.ErrConfigOK) {
		os.Exit(0)
	}
	if err != nil {
		os.Exit(2)
	}
	os.Exit(run(c))
}

// hello is what every router answers on /hello/<name>: the name its
// path parameter read, and who served it.
func hello(router, name string, pid int) string {
	return fmt.Sprintf("hello %s from %s worker=%d pid=%d\n", name, router, prefork.WorkerID(), pid)
}

// index is what every router answers on /.
func index(router string, pid int) string {
	return fmt.Sprintf("%s worker=%d pid=%d: try /hello/<name>\n", router, prefork.WorkerID(), pid)
}
