// Package preforktest runs a gracefork master without processes and
// without waiting, as net/http/httptest runs handlers without a network.
//
// A [Spawner] hands the master fake workers — goroutines that speak the
// real control protocol over the real socketpair — which the test makes
// ready, crash or exit. A [Clock] only moves when the test advances it, so
// backoffs and timeouts are tested in no time. [Events] records what the
// master did, so a test waits for a state instead of sleeping:
//
//	sp, clk, ev := preforktest.NewSpawner(), preforktest.NewClock(), &preforktest.Events{}
//	srv, _ := prefork.New(nil, prefork.Options{Addr: "127.0.0.1:0", Workers: 1,
//		Spawner: sp, Clock: clk, OnEvent: ev.Record})
//	go srv.Run(ctx)
//	w := sp.Next(t)
//	w.Ready()
//	w.Exit(1, "panic: boom")   // a crash: the master restarts the slot at once
//	w2 := sp.Next(t)
package preforktest
