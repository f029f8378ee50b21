package main

import (
	"io"
	"net/http"

	"github.com/go-chi/chi/v5"
)

// newChi builds the routes on a chi router, whose path parameters are
// written {name} and read with chi.URLParam.
func newChi(pid int) http.Handler {
	r := chi.NewRouter()
	r.Get("/", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, index("chi", pid))
	})
	r.Get("/hello/{name}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, hello("chi", chi.URLParam(r, "name"), pid))
	})
	return r
}
