// Command corefigures measures gracefork's core figures in one run:
//
//   - kill -9 recovery: examples/hello with 2 workers; 20 times SIGKILL a
//     worker and time how long until a pid never seen before answers
//     (fresh connection per request, each bounded), first back to back,
//     then spaced so every victim had served 10.5 s (the library resets
//     its crash-loop backoff after 10 s of uptime);
//   - master and worker RSS after start and after the kills;
//   - steady wrk throughput of gracefork, fasthttp prefork and
//     gunicorn+uvicorn (2 workers each) as ratios to plain net/http,
//     interleaved rounds;
//   - GOMAXPROCS split (ARCHITECTURE.md decision 10): examples/hello with the
//     default per-worker split vs GOMAXPROCS=2 in the environment.
//
// Run it from bench/ (wrk must be installed; gunicorn is optional):
//
//	go run ./cmd/corefigures
//
// It takes about 8 minutes with the defaults. Everything runs on loopback.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/gracefork/gracefork/bench/internal/chaos"
)

type config struct {
	repo     string
	workers  int
	kills    int
	uptime   time.Duration
	wrkDur   time.Duration
	rounds   int
	conns    int
	sections map[string]bool
	keep     bool
}

func main() {
	os.Exit(run())
}

func run() int {
	var c config
	var sections string
	flag.StringVar(&c.repo, "repo", "..", "repository root (holds examples/hello and bench/)")
	flag.IntVar(&c.workers, "workers", 2, "workers of every prefork target")
	flag.IntVar(&c.kills, "kills", 20, "SIGKILLs per recovery series")
	flag.DurationVar(&c.uptime, "spaced-uptime", 10500*time.Millisecond, "spaced series: minimum time a victim has served before it is killed (0: skip the series)")
	flag.DurationVar(&c.wrkDur, "wrk-duration", 10*time.Second, "duration of each wrk run")
	flag.IntVar(&c.rounds, "rounds", 3, "interleaved wrk rounds per variant")
	flag.IntVar(&c.conns, "conns", 64, "wrk connections")
	flag.StringVar(&sections, "sections", "recovery,throughput,gomaxprocs", "comma-separated sections to run")
	flag.BoolVar(&c.keep, "keep", false, "keep the temporary directory (binaries, target logs)")
	flag.Parse()
	c.sections = make(map[string]bool)
	for _, s := range strings.Split(sections, ",") {
		switch s = strings.TrimSpace(s); s {
		case "recovery", "throughput", "gomaxprocs":
			c.sections[s] = true
		default:
			fmt.Fprintf(os.Stderr, "corefigures: unknown section %q\n", s)
			return 2
		}
	}
	if c.workers < 1 || c.kills < 0 || c.rounds < 1 || c.conns < 1 || c.wrkDur < time.Second {
		fmt.Fprintln(os.Stderr, "corefigures: -workers, -rounds, -conns must be positive, -wrk-duration at least 1s")
		return 2
	}

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	if err := chaos.SetChildSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, "corefigures: warning: cannot become child subreaper:", err)
	}
	defer chaos.KillAll()
	tmp, err := os.MkdirTemp("", "corefigures-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "corefigures:", err)
		return 1
	}
	if c.keep {
		fmt.Printf("temporary directory: %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	repo, err := filepath.Abs(c.repo)
	if err != nil {
		fmt.Fprintln(os.Stderr, "corefigures:", err)
		return 1
	}
	env := chaos.BuildEnv{Repo: repo, Tmp: tmp, LogDir: tmp}
	fmt.Printf("corefigures: NumCPU=%d GOMAXPROCS env=%q workers=%d\n\n", runtime.NumCPU(), os.Getenv("GOMAXPROCS"), c.workers)

	if err := figures(ctx, c, env); err != nil {
		fmt.Fprintln(os.Stderr, "corefigures:", err)
		if ctx.Err() != nil {
			return 130
		}
		return 1
	}
	return 0
}

// figures builds the targets and runs the selected sections.
func figures(ctx context.Context, c config, env chaos.BuildEnv) error {
	if _, err := exec.LookPath("wrk"); err != nil && (c.sections["throughput"] || c.sections["gomaxprocs"]) {
		return errors.New("wrk not found (apt-get install -y wrk)")
	}
	hello, err := chaos.Build(ctx, chaos.TGracefork, env)
	if err != nil {
		return err
	}
	// The split is the library's default only when GOMAXPROCS is unset.
	split := envWithout(os.Environ(), []string{"GOMAXPROCS"})
	if c.sections["recovery"] {
		if err := recovery(ctx, c, hello, split, env.LogDir); err != nil {
			return err
		}
	}
	if c.sections["throughput"] {
		if err := throughput(ctx, c, env, hello, split); err != nil {
			return err
		}
	}
	if c.sections["gomaxprocs"] {
		vs := []variant{
			{Name: "gracefork-split", Built: hello, Workers: c.workers, Environ: split},
			{Name: "gracefork-GOMAXPROCS=2", Built: hello, Workers: c.workers, Environ: append(split[:len(split):len(split)], "GOMAXPROCS=2")},
		}
		fmt.Printf("## GOMAXPROCS split: wrk -t1 -c%d -d%s, %d workers, %d interleaved rounds\n", c.conns, c.wrkDur, c.workers, c.rounds)
		rps, err := interleave(ctx, vs, c.rounds, c.conns, c.wrkDur, env.LogDir, logf)
		if err != nil {
			return err
		}
		a, b := median(rps[vs[0].Name]), median(rps[vs[1].Name])
		fmt.Printf("median: split (GOMAXPROCS=%d per worker) %.0f req/s, GOMAXPROCS=2 inherited %.0f req/s, split/inherited = %.3f (per-round ratios %s)\n\n",
			max(1, runtime.NumCPU()/c.workers), a, b, median(ratios(rps[vs[0].Name], rps[vs[1].Name])), fmtFloats(ratios(rps[vs[0].Name], rps[vs[1].Name])))
	}
	return nil
}

// recovery runs the kill -9 series and prints the RSS figures.
func recovery(ctx context.Context, c config, hello *chaos.Built, environ []string, logDir string) error {
	addr, err := chaos.FreePort()
	if err != nil {
		return err
	}
	in, err := hello.Start(ctx, addr, c.workers, environ, filepath.Join(logDir, "recovery.log"))
	if err != nil {
		return err
	}
	defer in.Kill()
	master := in.Master()
	p := newProber(addr, time.Second)
	fmt.Printf("## kill -9 recovery: examples/hello -workers %d -addr %s\n", c.workers, addr)
	if err := sleep(ctx, time.Second); err != nil {
		return err
	}
	fmt.Println("RSS after start:", rssLine(master))
	series := []struct {
		name   string
		uptime time.Duration
	}{{"back to back (200 ms after each replacement answered)", 0}}
	if c.uptime > 0 {
		series = append(series, struct {
			name   string
			uptime time.Duration
		}{fmt.Sprintf("spaced (each victim served >= %s)", c.uptime), c.uptime})
	}
	total := 0
	for _, s := range series {
		fmt.Printf("series %s, %d kills (loadavg before: %s):\n", s.name, c.kills, loadavg())
		ks, err := killSeries(ctx, p, master, c.kills, s.uptime, 60*time.Second, os.Stdout)
		if err != nil {
			return err
		}
		total += len(ks)
		var rec []float64
		failed := make(map[string]int)
		probes := 0
		for _, k := range ks {
			rec = append(rec, ms(k.Recovery))
			probes += k.Probes
			for cause, n := range k.Failed {
				failed[cause] += n
			}
		}
		st := summarize(rec)
		fmt.Printf("RESULT %s: n=%d median=%.1f ms p90=%.1f ms max=%.1f ms; probes=%d failed=%d %v\n",
			s.name, st.N, st.Median, st.P90, st.Max, probes, sumCounts(failed), failed)
		fmt.Printf("RSS after %d kills: %s (loadavg: %s)\n", total, rssLine(master), loadavg())
	}
	_, err = in.Stop(10 * time.Second)
	fmt.Println()
	return err
}

// throughput compares the prefork targets with plain net/http.
func throughput(ctx context.Context, c config, env chaos.BuildEnv, hello *chaos.Built, split []string) error {
	vs := []variant{{Name: "gracefork", Built: hello, Workers: c.workers, Environ: split}}
	for _, name := range []string{chaos.TNetHTTP, chaos.TFastHTTP, chaos.TGunicorn} {
		b, err := chaos.Build(ctx, name, env)
		if errors.Is(err, chaos.ErrSkipped) {
			fmt.Printf("%s: skipped: %v\n", name, err)
			continue
		}
		if err != nil {
			return err
		}
		vs = append(vs, variant{Name: name, Built: b, Workers: c.workers})
	}
	fmt.Printf("## steady throughput: wrk -t1 -c%d -d%s, %d workers, %d interleaved rounds\n", c.conns, c.wrkDur, c.workers, c.rounds)
	rps, err := interleave(ctx, vs, c.rounds, c.conns, c.wrkDur, env.LogDir, logf)
	if err != nil {
		return err
	}
	base := rps[chaos.TNetHTTP]
	for _, v := range vs {
		r := ratios(rps[v.Name], base)
		fmt.Printf("RESULT %-10s median %8.0f req/s (runs %s), ratio to nethttp: median %.3f (per round %s)\n",
			v.Name, median(rps[v.Name]), fmtFloats(rps[v.Name]), median(r), fmtFloats(r))
	}
	fmt.Println()
	return nil
}

func logf(format string, args ...any) { fmt.Printf(format+"\n", args...) }

func fmtFloats(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		if x >= 100 {
			s[i] = fmt.Sprintf("%.0f", x)
		} else {
			s[i] = fmt.Sprintf("%.3f", x)
		}
	}
	return "[" + strings.Join(s, " ") + "]"
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
