package main

import (
	"io"
	"net/http"

	"github.com/gorilla/mux"
)

// newGorilla builds the routes on a gorilla/mux router, whose path
// parameters are written {name} and read with mux.Vars.
func newGorilla(pid int) http.Handler {
	r := mux.NewRouter()
	r.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, index("gorilla", pid))
	}).Methods(http.MethodGet)
	r.HandleFunc("/hello/{name}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, hello("gorilla", mux.Vars(r)["name"], pid))
	}).Methods(http.MethodGet)
	return r
}
