package metrics

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves g — a [Merger], or a [prometheus.Gatherers] of one and
// the master's own registry — as promhttp does: text, OpenMetrics or
// protobuf as the scraper asks (native histograms need protobuf), gzip or
// zstd. Before each scrape it calls refresh, if not nil, with the
// request's context: the master asks its workers for snapshots there and
// returns by the scrape's deadline. A gathering error is logged to log
// (if not nil) and the rest is served ([promhttp.ContinueOnError]): one
// worker's bad family never costs the others' series.
func Handler(g prometheus.Gatherer, refresh func(context.Context), log promhttp.Logger) http.Handler {
	h := promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:          log,
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	})
	if refresh == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refresh(r.Context())
		h.ServeHTTP(w, r)
	})
}
