package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/gracefork/gracefork/bench/internal/chaos"
)

// kill is one SIGKILL of a worker and what followed it.
type kill struct {
	Victim      int
	Replacement int
	Recovery    time.Duration // kill until the replacement answered
	Probes      int           // requests sent meanwhile
	Failed      map[string]int
}

// prober sends bounded requests on fresh connections and remembers every
// pid that ever answered (or was seen as a worker), with when it first
// answered.
type prober struct {
	addr   string
	client *http.Client

	mu    sync.Mutex
	first map[int]time.Time // pid -> first answer (or first seen)
}

func newProber(addr string, timeout time.Duration) *prober {
	return &prober{
		addr: addr,
		client: &http.Client{Timeout: timeout, Transport: &http.Transport{
			Proxy: nil, DisableKeepAlives: true,
		}},
		first: make(map[int]time.Time),
	}
}

// probe sends one GET / on a fresh connection and returns the answering
// pid, or the failure cause.
func (p *prober) probe(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/", nil)
	if err != nil {
		return 0, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_ = resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %s", resp.Status)
	}
	pid := chaos.ParsePID(body)
	if pid == 0 {
		return 0, fmt.Errorf("no pid= in %q", body)
	}
	return pid, nil
}

// see records pid as known; it reports whether it is new.
func (p *prober) see(pid int, at time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.first[pid]; ok {
		return false
	}
	p.first[pid] = at
	return true
}

// since returns when pid was first seen.
func (p *prober) since(pid int) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.first[pid]
}

// oldestWorker returns the master's child that was seen first (so kills
// go round robin over the slots).
func (p *prober) oldestWorker(master int) (int, error) {
	t, err := chaos.ScanProcs()
	if err != nil {
		return 0, err
	}
	kids := t.Children(master)
	if len(kids) == 0 {
		return 0, fmt.Errorf("master %d has no children", master)
	}
	now := time.Now()
	for _, k := range kids {
		p.see(k, now)
	}
	slices.SortFunc(kids, func(a, b int) int { return p.since(a).Compare(p.since(b)) })
	return kids[0], nil
}

// killSeries SIGKILLs n workers of master one after another, each time
// waiting until a pid never seen before answers (at most limit). When
// minUptime > 0 it first waits until the victim has been known for that
// long, so the library's crash-loop counter is reset (stableUptime 10 s).
func killSeries(ctx context.Context, p *prober, master, n int, minUptime, limit time.Duration, log io.Writer) ([]kill, error) {
	var out []kill
	for i := range n {
		victim, err := p.oldestWorker(master)
		if err != nil {
			return out, err
		}
		if minUptime > 0 {
			if err := sleep(ctx, time.Until(p.since(victim).Add(minUptime))); err != nil {
				return out, err
			}
		}
		k := kill{Victim: victim, Failed: make(map[string]int)}
		start := time.Now()
		if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
			return out, fmt.Errorf("kill %d: %w", victim, err)
		}
		for k.Replacement == 0 {
			if time.Since(start) > limit {
				return out, fmt.Errorf("kill %d of pid %d: no new pid answered within %s", i+1, victim, limit)
			}
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			pid, err := p.probe(pctx)
			cancel()
			if ctx.Err() != nil {
				return out, ctx.Err()
			}
			k.Probes++
			now := time.Now()
			switch {
			case err != nil:
				k.Failed[chaos.Classify(err).String()]++
			case p.see(pid, now):
				k.Replacement, k.Recovery = pid, now.Sub(start)
				continue
			}
			time.Sleep(2 * time.Millisecond)
		}
		fmt.Fprintf(log, "  kill %2d: pid %d -> %d answered after %7.1f ms (%d probes, failed %v)\n",
			i+1, k.Victim, k.Replacement, ms(k.Recovery), k.Probes, k.Failed)
		out = append(out, k)
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return out, err
		}
	}
	return out, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// rssLine describes the master's and its workers' VmRSS.
func rssLine(master int) string {
	m, err := rssKiB(master)
	if err != nil {
		return fmt.Sprintf("master %d: %v", master, err)
	}
	s := fmt.Sprintf("master %d: %.1f MiB; workers:", master, float64(m)/1024)
	t, err := chaos.ScanProcs()
	if err != nil {
		return s + " " + err.Error()
	}
	for _, w := range t.Children(master) {
		if r, err := rssKiB(w); err == nil {
			s += fmt.Sprintf(" %d: %.1f MiB", w, float64(r)/1024)
		}
	}
	return s
}
