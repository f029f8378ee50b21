package prefork

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"time"
)

// WorkerStatus is one worker process as the master sees it: for people,
// as PHP-FPM's status page or Puma's stats are. The counts are those of
// the worker's latest heartbeat (one a second).
type WorkerStatus struct {
	Slot       int // the worker's place in the pool: 0 to Workers-1
	Generation int // its number in the order the master started workers: 1, 2, …
	Pid        int // its process id
	// State is "booting" (not ready yet), "serving", "draining" (told to
	// stop; it finishes its requests) or "killed" (hung, or past a
	// deadline: its exit is on its way).
	State string
	// Age is how long ago the worker was started.
	Age         time.Duration
	Requests    uint64 // served since it started
	InFlight    uint32 // handlers running
	Connections uint32 // connections open
	RSS         uint64 // resident set size in bytes; 0 where unknown
	// LastHeartbeat is when the master last heard from the worker's
	// heartbeat; zero before its first.
	LastHeartbeat time.Time
}

// Status returns every worker process of the master, in slot order (a
// slot has two during a reload, the older first); nil in a worker and
// once Run has returned. The master's loop takes the snapshot, so Status
// waits for it: it must not be called from Options.OnEvent. Before Run
// it waits for Run to start. The master also serves it as JSON at
// /status on Options.MetricsAddr.
func (s *Server) Status() []WorkerStatus {
	if s.m == nil {
		return nil
	}
	st, _ := s.m.status(context.Background())
	return st
}

// status asks the loop for the workers' status.
func (m *master) status(ctx context.Context) ([]WorkerStatus, error) {
	reply := make(chan []WorkerStatus, 1)
	if err := m.do(request{status: reply}); err != nil {
		return nil, err
	}
	select {
	case st := <-reply:
		return st, nil
	case <-m.done:
		return nil, ErrServerClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// workerStatus is the status, in the loop.
func (m *master) workerStatus() []WorkerStatus {
	now := m.clock.Now()
	out := make([]WorkerStatus, 0, len(m.workers))
	for w := range m.workers {
		state := stateServing
		switch {
		case w.killed:
			state = "killed"
		case w.stopping:
			state = stateDraining
		case !w.ready:
			state = stateBooting
		}
		out = append(out, WorkerStatus{
			Slot: w.slot, Generation: w.gen, Pid: w.proc.Pid(), State: state,
			Age: now.Sub(w.spawnedAt), Requests: w.usage.requests, InFlight: w.usage.inflight,
			Connections: w.usage.active, RSS: w.usage.rss, LastHeartbeat: w.usage.at,
		})
	}
	slices.SortFunc(out, func(a, b WorkerStatus) int {
		return cmp.Or(cmp.Compare(a.Slot, b.Slot), cmp.Compare(a.Generation, b.Generation))
	})
	return out
}

// statusJSON is /status: the master and its workers.
type statusJSON struct {
	Pid     int                `json:"pid"`
	Workers []workerStatusJSON `json:"workers"`
}

type workerStatusJSON struct {
	Slot          int        `json:"slot"`
	Generation    int        `json:"generation"`
	Pid           int        `json:"pid"`
	State         string     `json:"state"`
	AgeSeconds    float64    `json:"age_seconds"`
	Requests      uint64     `json:"requests"`
	InFlight      uint32     `json:"in_flight"`
	Connections   uint32     `json:"connections"`
	RSSBytes      uint64     `json:"rss_bytes"`
	LastHeartbeat *time.Time `json:"last_heartbeat"`
}

// serveStatus answers /status with the workers' status as JSON.
func (m *master) serveStatus(w http.ResponseWriter, r *http.Request) {
	st, err := m.status(r.Context())
	if err != nil {
		http.Error(w, "gracefork: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	out := statusJSON{Pid: os.Getpid(), Workers: make([]workerStatusJSON, len(st))}
	for i, s := range st {
		j := workerStatusJSON{Slot: s.Slot, Generation: s.Generation, Pid: s.Pid, State: s.State,
			AgeSeconds: s.Age.Seconds(), Requests: s.Requests, InFlight: s.InFlight,
			Connections: s.Connections, RSSBytes: s.RSS}
		if !s.LastHeartbeat.IsZero() {
			j.LastHeartbeat = &st[i].LastHeartbeat
		}
		out.Workers[i] = j
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(out)
}
