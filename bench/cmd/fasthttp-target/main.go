// Command fasthttp-target is the fasthttp prefork peer for the chaos
// harness: a master that re-executes itself -workers times
// (github.com/valyala/fasthttp/prefork), each child answering every
// request with "hello from worker=<n> pid=<pid>".
//
// prefork starts GOMAXPROCS children, so -workers sets GOMAXPROCS in the
// master before prefork starts; children recognise themselves by the
// FASTHTTP_PREFORK_CHILD=1 environment variable (prefork.IsChild) and run
// with GOMAXPROCS 1. Everything else is left at prefork's defaults, among
// them RecoverThreshold = max(1, GOMAXPROCS/2): after that many child
// exits the master gives up (ErrOverRecovery) and shuts down.
//
// The one addition is the worker number: prefork does not tell a child
// which one it is, so the master's CommandProducer (the default one plus
// a BENCH_WORKER=<n> variable, n counting every spawn from 0) passes it.
package main

import (
	"flag"
	"log"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/prefork"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	workers := flag.Int("workers", 2, "number of child processes")
	flag.Parse()

	body := []byte("hello from worker=" + os.Getenv("BENCH_WORKER") + " pid=" + strconv.Itoa(os.Getpid()))
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("text/plain")
			ctx.SetBody(body)
		},
	}
	if !prefork.IsChild() {
		// prefork spawns GOMAXPROCS children; New derives
		// RecoverThreshold from it too.
		runtime.GOMAXPROCS(*workers)
	}
	p := prefork.New(srv)
	if !prefork.IsChild() {
		p.CommandProducer = numberedChildren()
	}
	if err := p.ListenAndServe(*addr); err != nil {
		log.Fatal(err)
	}
}

// numberedChildren returns prefork's default command producer with a
// BENCH_WORKER=<n> environment variable added.
func numberedChildren() func(files []*os.File) (*exec.Cmd, error) {
	n := 0
	return func(files []*os.File) (*exec.Cmd, error) {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		env := []string{"FASTHTTP_PREFORK_CHILD=1", "BENCH_WORKER=" + strconv.Itoa(n)}
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "FASTHTTP_PREFORK_CHILD=") && !strings.HasPrefix(kv, "BENCH_WORKER=") {
				env = append(env, kv)
			}
		}
		n++
		cmd := &exec.Cmd{
			Path: exe, Args: append([]string{exe}, os.Args[1:]...),
			Stdout: os.Stdout, Stderr: os.Stderr, Env: env, ExtraFiles: files,
		}
		return cmd, cmd.Start()
	}
}
