package recycle_test

import (
	"fmt"
	"time"

	"github.com/gracefork/gracefork/recycle"
)

// Gunicorn's max_requests = 1000 and max_requests_jitter = 50, plus an age
// and a memory limit, with recycles at least ten seconds apart. The Policy
// goes into prefork.Options.Recycle.
func ExamplePolicy() {
	p := recycle.Policy{
		MaxRequests:       1000,
		MaxRequestsJitter: 50,
		MaxAge:            6 * time.Hour,
		MaxAgeJitter:      30 * time.Minute,
		MaxMemory:         512 << 20, // resident set, bytes
		MinInterval:       10 * time.Second,
	}
	fmt.Println(p.Validate())
	lim := p.Track().Limits() // what the master draws for one worker
	fmt.Println(lim.Requests >= 1000 && lim.Requests <= 1050, lim.Samples)
	// Output:
	// <nil>
	// true 3
}
