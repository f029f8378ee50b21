#!/usr/bin/env python3
"""Summarize scripts/balance.sh's runs: per gracefork target (one shared
socket, or a socket per worker with -reuse-port), worker and connection
count, the busiest worker's share of requests (fair is 1/workers), whether
a worker was idle, and the steady throughput as a ratio to net/http's in
the same round; medians over the rounds."""
import json, statistics, sys, pathlib

out = pathlib.Path(sys.argv[1])
print("| target | workers | conns | busiest worker's share (fair) | rounds with an idle worker | throughput ratio to net/http (per round) | median ratio |")
print("| --- | --- | --- | --- | --- | --- | --- |")
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
            shares, idle, ratios = [], 0, []
            for rnd, t in sorted(by_round.items()):
                g, n = t.get(target), t.get("nethttp")
                if not g or not n:
                    continue
                # after the warm-up when the report has it (older reports: the whole run)
                per = g.get("steady_slot_counts") or g.get("slot_counts", {})
                counts = [per.get(str(s), 0) for s in range(w)]
                total = sum(counts) or 1
                shares.append(max(counts) / total)
                idle += any(x == 0 for x in counts)
                ratios.append(g["steady_rps"] / n["steady_rps"])
            if not ratios:
                continue
            print(f"| {target} | {w} | {c} | {statistics.median(shares)*100:.0f} % ({100/w:.0f} %) | {idle} of {len(ratios)} | "
                  f"{', '.join(f'{r:.2f}' for r in ratios)} | **{statistics.median(ratios):.2f}** |")
