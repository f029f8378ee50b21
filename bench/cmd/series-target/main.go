// Command series-target is gracefork's target for the metrics benchmark
// (bench/cmd/scrapebench): examples/hello's shape (a counter of answers,
// hello_requests_total) plus -series extra series per worker, so a scrape
// of the master's merged /metrics carries workers × series samples.
//
// It is its own module (replace => the repository root) so that the bench
// module itself keeps not importing the library.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/gracefork/gracefork/prefork"
	"github.com/gracefork/gracefork/recycle"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var requests = promauto.NewCounter(prometheus.CounterOpts{
	Name: "hello_requests_total",
	Help: "Answers given by the hello handler.",
})

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	workers := flag.Int("workers", 2, "workers")
	metricsAddr := flag.String("metrics-addr", "", "merged metrics address")
	series := flag.Int("series", 0, "extra series each worker registers (bench_series{i=...})")
	maxRequests := flag.Uint64("max-requests", 0, "recycle a worker after this many requests (0: never)")
	flag.Parse()

	if *series > 0 {
		v := promauto.NewCounterVec(prometheus.CounterOpts{
			Name: "bench_series_total",
			Help: "Series that only exist to make the scrape big.",
		}, []string{"i"})
		for i := range *series {
			v.WithLabelValues(strconv.Itoa(i)).Add(float64(i))
		}
	}
	pid := os.Getpid()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		requests.Inc()
		fmt.Fprintf(w, "hello from pid=%d\n", pid)
	})
	srv, err := prefork.New(mux, prefork.Options{
		Addr:            *addr,
		Workers:         *workers,
		GracefulTimeout: 10 * time.Second,
		MetricsAddr:     *metricsAddr,
		Recycle:         recycle.Policy{MaxRequests: *maxRequests},
		Server:          &http.Server{ReadHeaderTimeout: 10 * time.Second},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
}
