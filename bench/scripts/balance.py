#!/usr/bin/env python3
"""Summarize scripts/balance.sh's runs: per worker and connection count, the
busiest worker's share of requests and of open connections (fair is
1/workers), whether a worker was idle, and the throughput of gracefork and
gracefork-reuseport (a listening socket per worker) — and of
gracefork-allcores, whose workers each have every core — as a ratio to
net/http's in the same round; medians over the rounds."""
import json, statistics, sys, pathlib

out = pathlib.Path(sys.argv[1])


def busiest(per, w):
    counts = [per.get(str(s), 0) for s in range(w)]
    total = sum(counts)
    return (max(counts) / total if total else None), any(x == 0 for x in counts)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def pct(x):
    return "–" if x is None else f"{x*100:.0f} %"


print("| target | workers | conns | busiest worker's share of requests (fair) | of connections | rounds with an idle worker | ratio to net/http (per round) | median | GOMAXPROCS=all cores: median ratio |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for target in ("gracefork", "gracefork-reuseport"):
    for w in (2, 4):
        for c in (4, 16, 64, 256):
            f = out / f"w{w}-c{c}.json"
            if not f.exists():
                continue
            runs = json.loads(f.read_text())
            runs = runs if isinstance(runs, list) else runs.get("reports", runs)
            by_round = {}
            for r in runs:
                by_round.setdefault(r.get("round", 1), {})[r["target"]] = r
            shares, cshares, idle, ratios, allc = [], [], 0, [], []
            for rnd, t in sorted(by_round.items()):
                g, n, a = t.get(target), t.get("nethttp"), t.get("gracefork-allcores")
                if not g or not n:
                    continue
                # after the warm-up when the report has it (older reports: the whole run)
                s, i = busiest(g.get("steady_slot_counts") or g.get("slot_counts", {}), w)
                shares.append(s)
                idle += i
                cshares.append(busiest(g.get("steady_conn_counts") or {}, w)[0])
                ratios.append(g["steady_rps"] / n["steady_rps"])
                if a and target == "gracefork":
                    allc.append(a["steady_rps"] / n["steady_rps"])
            if not ratios:
                continue
            a = med(allc)
            print(f"| {target} | {w} | {c} | {pct(med(shares))} ({100/w:.0f} %) | {pct(med(cshares))} | {idle} of {len(ratios)} | "
                  f"{', '.join(f'{r:.2f}' for r in ratios)} | **{statistics.median(ratios):.2f}** | {'–' if a is None else f'{a:.2f}'} |")
