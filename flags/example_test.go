package flags_test

import (
	"flag"
	"fmt"
	"os"

	"github.com/gracefork/gracefork/flags"
	"github.com/gracefork/gracefork/prefork"
)

// A program with Gunicorn's command line: its defaults in the Options,
// the flags over them, and the environment where no flag is given.
func Example() {
	opts := prefork.Options{Addr: "127.0.0.1:8080", Workers: 2} // the program's defaults
	fs := flag.NewFlagSet("app", flag.ExitOnError)
	fl := flags.Register(fs, &opts)
	fs.Parse([]string{"-w", "4", "-b", ":9000", "-b", "unix:/tmp/app.sock",
		"--timeout", "30", "--max-requests", "10000", "--max-memory", "512MiB"})
	fl.Apply() // a bad value exits 2, naming the flag or variable

	fmt.Println(opts.Workers, opts.Addr, opts.Addrs, opts.HeartbeatTimeout, opts.Recycle.MaxRequests, opts.Recycle.MaxMemory)

	// Then, as the program would:
	//	srv, err := prefork.New(handler, opts)
	//	if uerr := fl.UsageError(err); uerr != nil { ... exit 2 }
	if err := fl.UsageError(opts.Validate()); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	// Output: 4 :9000 [unix:/tmp/app.sock] 30s 10000 536870912
}
