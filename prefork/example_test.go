package prefork_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/gracefork/gracefork/prefork"
)

// A handler that streams a long export under Options.RequestTimeout asks
// for more time as it makes progress: each row buys it another 10 seconds,
// while a request that hangs still times out. Outside a gracefork worker
// (here, a test's request) there is no timeout to move, and
// ExtendDeadline says so.
func ExampleExtendDeadline() {
	export := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 3 {
			if r.Context().Err() != nil {
				return // timed out, or the client left
			}
			fmt.Fprintf(w, "row %d\n", i)
			prefork.ExtendDeadline(r, 10*time.Second)
		}
	})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/export", nil)
	export.ServeHTTP(rec, req)
	fmt.Print(rec.Body.String())
	fmt.Println("timeout moved:", prefork.ExtendDeadline(req, 10*time.Second))
	// Output:
	// row 0
	// row 1
	// row 2
	// timeout moved: false
}
