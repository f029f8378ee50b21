#!/usr/bin/env bash
# What a Go server process costs per request when there are more of them
# than cores (issue 13: 4 workers on this 2-core machine stay below one
# net/http process). For each connection count it runs examples/hello
# with 1, 2 and 4 workers and one net/http process (bench/cmd/nethttp-target)
# under `wrk -t1 -c<C> -d<D>`, ROUNDS times interleaved, and reads every
# server thread's CPU time and context switches from /proc before and
# after the run:
#   [ROUNDS=3] [CONNS="4 16 64 256"] [DURATION=5s] [VARIANTS="nethttp gracefork-1 gracefork-2 gracefork-4"] scripts/process-cost.sh
# (gracefork-N: examples/hello with N workers)
# Per run it prints req/s, the server processes' CPU per request (µs,
# master included) and their voluntary context switches per request (a
# thread that sleeps and is woken again). Linux only; needs wrk and curl.
# Everything runs on loopback and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
conns=${CONNS:-4 16 64 256}
dur=${DURATION:-5s}
command -v wrk >/dev/null || { echo "wrk not found (apt-get install -y wrk)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'pkill -TERM -P $$ 2>/dev/null || true; rm -rf "$tmp"' EXIT
(cd .. && go build -o "$tmp/hello" ./examples/hello)
go build -o "$tmp/nethttp" ./cmd/nethttp-target

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# snapshot PIDS: one line per thread: pid/tid utime+stime(ticks) voluntary-switches
snapshot() {
	for p in "$@"; do
		for t in /proc/"$p"/task/*; do
			[ -r "$t/stat" ] || continue
			tid=${t##*/}
			ticks=$(awk '{print $14+$15}' "$t/stat" 2>/dev/null || echo 0)
			vol=$(awk '/^voluntary_ctxt_switches/ {print $2}' "$t/status" 2>/dev/null || echo 0)
			echo "$p/$tid $ticks $vol"
		done
	done
}

run() { # run VARIANT CONNS
	local v=$1 c=$2 addr pid procs
	addr=127.0.0.1:$(port)
	case $v in
	nethttp) "$tmp/nethttp" -addr "$addr" >"$tmp/log" 2>&1 & ;;
	gracefork-*) GOMAXPROCS= "$tmp/hello" -b "$addr" -workers "${v#gracefork-}" >"$tmp/log" 2>&1 & ;;
	esac
	pid=$!
	for _ in $(seq 100); do curl -fs -o /dev/null "http://$addr/" && break; sleep 0.1; done
	wrk -t1 -c"$c" -d1s "http://$addr/" >/dev/null # warm-up
	procs="$pid $(pgrep -P "$pid" | tr "\n" " " || true)"
	snapshot $procs >"$tmp/before"
	rps=$(wrk -t1 -c"$c" -d"$dur" "http://$addr/" | awk '/Requests\/sec/ {print $2}')
	snapshot $procs >"$tmp/after"
	kill -TERM "$pid"
	wait "$pid" || true
	secs=${dur%s}
	join <(sort "$tmp/before") <(sort "$tmp/after") |
		awk -v v="$v" -v c="$c" -v rps="$rps" -v secs="$secs" -v hz="$(getconf CLK_TCK)" '
		{ cpu += $4 - $2; vol += $5 - $3 }
		END { n = rps * secs
		  printf "%-12s conns=%-4d %9.0f req/s  CPU %5.1f µs/req  %5.2f voluntary switches/req\n",
		    v, c, rps, cpu / hz / n * 1e6, vol / n }'
}

echo "process-cost: $(nproc) cores, wrk -t1 -d$dur, $rounds rounds"
for c in $conns; do
	for r in $(seq "$rounds"); do
		for v in ${VARIANTS:-nethttp gracefork-1 gracefork-2 gracefork-4}; do
			run "$v" "$c"
		done
	done
done
