#!/usr/bin/env bash
# Issue 13's measurement: how evenly gracefork's workers share keep-alive
# load, and its throughput next to one net/http process in the same round.
#   scripts/balance.sh OUT [extra chaos flags…]
# For each worker count (2, 4) and connection count (4, 16, 64, 256) it
# runs gracefork, gracefork-allcores (every worker GOMAXPROCS=all cores),
# gracefork-reuseport (a listening socket per worker, Linux) and nethttp
# side by side (TARGETS overrides), ROUNDS times (default 3), 3 s
# each (1 s warm-up), and writes OUT/w<W>-c<C>.json; summarize with
# scripts/balance.py OUT.
set -euo pipefail
out=${1:?usage: scripts/balance.sh OUT [chaos flags]}; shift
rounds=${ROUNDS:-3}
cd "$(dirname "$0")/.."
mkdir -p "$out"
go build -o "$out/chaos" ./cmd/chaos
for w in ${WORKERS:-2 4}; do
	for c in ${CONNS:-4 16 64 256}; do
		"$out/chaos" -target ${TARGETS:-gracefork,gracefork-allcores,gracefork-reuseport,nethttp} -workers "$w" -conns "$c" -duration 3s \
			-rounds "$rounds" -json "$out/w$w-c$c.json" "$@" > "$out/w$w-c$c.txt" 2>&1
	done
done
rm -f "$out/chaos"
