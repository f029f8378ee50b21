package prefork_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
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

// dbPool stands for a program's database pool.
type dbPool struct{}

func openPool(ctx context.Context, url string) (*dbPool, error) { return &dbPool{}, nil }
func (*dbPool) Close() error                                    { return nil }

// WorkerInit takes the place of the IsWorker branch a program would write
// before Serve: each worker connects before it serves, and an error fails
// its boot, quoted in the master's error. WorkerShutdown closes the pool
// once the worker's drain is over. The master's hooks run on a queue of
// their own: a slow alert never holds a restart.
func ExampleHooks() {
	var db *dbPool
	opts := prefork.Options{Addr: ":8080", Workers: 4, Hooks: prefork.Hooks{
		WorkerInit: func(ctx context.Context) error {
			var err error
			db, err = openPool(ctx, os.Getenv("DATABASE_URL"))
			return err
		},
		WorkerShutdown: func(ctx context.Context) error { return db.Close() },
		OnWorkerExit: func(w prefork.WorkerInfo, exit prefork.Exit, expected bool) {
			if !expected {
				log.Printf("worker %d (pid %d) died: %v %s", w.Slot, w.Pid, exit, exit.Failure)
			}
		},
	}}
	if err := prefork.Serve(http.NotFoundHandler(), opts); err != nil {
		log.Fatal(err)
	}
}
