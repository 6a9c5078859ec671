#!/usr/bin/env bash
# Ingestion benchmark of the foundation issue, on loopback, bounded in time.
#
#   bench/run.sh [duration per phase, default 10s] [events for the memory phase, default 1000000]
#
# Measures, in one run: Caddy's bare `respond 204` to a POST, our /e/ with one
# ~600-byte pageview, /batch/ with 50 events, /batch/ with 50 posthog-js
# events of ~1.3 KB (batch1k.lua); then loads the store to the
# given number of events and reports resident memory per stored event; then
# restarts Caddy and reports how long reopening the database took.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10s}
target=${2:-1000000}
out=bench/out
mkdir -p "$out"
rm -f "$out/bench.db"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

go build -o "$out/caddy" ./cmd/caddy
export BENCH_DB="$PWD/$out/bench.db"

pid=
start() {
	"$out/caddy" run --config bench/Caddyfile --adapter caddyfile >"$out/caddy.log" 2>&1 &
	pid=$!
	for _ in $(seq 1 600); do
		curl -s -o /dev/null http://127.0.0.1:9301/ && return 0
		sleep 0.1
	done
	echo "caddy did not start" >&2; cat "$out/caddy.log" >&2; exit 1
}
stop() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; pid=; }
trap stop EXIT
stored() { curl -s http://127.0.0.1:9302/metrics | awk '/^caddy_analytics_stored_events\{site="bench.example"\}/ {printf "%d", $2}'; }
rps() { awk '/Requests\/sec/ {print $2}'; }

start
echo "== bare respond 204 (POST, 600 B) =="
bare=$(wrk -t1 -c64 -d"$dur" -s bench/bare.lua http://127.0.0.1:9301/ | tee /dev/stderr | rps)
echo "== /e/ one pageview per request =="
e=$(wrk -t1 -c64 -d"$dur" -s bench/pageview.lua http://127.0.0.1:9300/_f/e/ | tee /dev/stderr | rps)
echo "== /batch/ 50 events per request =="
b=$(wrk -t1 -c16 -d"$dur" -s bench/batch.lua http://127.0.0.1:9300/_f/batch/ | tee /dev/stderr | rps)
echo "== /batch/ 50 posthog-js events of ~1.3 KB per request =="
b1k=$(wrk -t1 -c16 -d"$dur" -s bench/batch1k.lua http://127.0.0.1:9300/_f/batch/ | tee /dev/stderr | rps)

stop

# Memory and reopen: a fresh database loaded with posthog-js style batches.
echo "== loading a fresh store to $target events =="
rm -f "$BENCH_DB"
start
while [ "$(stored)" -lt "$target" ]; do
	wrk -t1 -c16 -d1s -s bench/jsbatch.lua http://127.0.0.1:9300/_f/i/v0/e/ >/dev/null
done
n=$(stored)
# The store hands memory back once ingestion has been quiet for a compaction
# period (10 s); read the resident size after that.
sleep 25
rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
curl -s http://127.0.0.1:9302/debug/vars | tr ',' '\n' | grep -E '"(HeapInuse|HeapReleased|HeapSys|NextGC)"' | tr '\n' ' '; echo
stop

start
open_line=$(grep -m1 'analytics store opened' "$out/caddy.log" || true)
stop

awk -v bare="$bare" -v e="$e" -v b="$b" -v b1k="$b1k" -v n="$n" -v rss="$rss_kb" -v line="$open_line" 'BEGIN {
	printf "\n== results ==\n"
	printf "bare respond:     %10.0f req/s\n", bare
	printf "/e/ pageview:     %10.0f req/s  (%.0f%% of bare; target >= 40%%)\n", e, 100*e/bare
	printf "/batch/ x50:      %10.0f req/s = %.0f events/s (target >= 150000)\n", b, 50*b
	printf "/batch/ x50 1 KB: %10.0f req/s = %.0f events/s (posthog-js shaped; target >= 150000)\n", b1k, 50*b1k
	printf "stored events:    %10d\n", n
	printf "resident memory:  %10.1f MiB = %.0f bytes/event (target <= 300)\n", rss/1024, rss*1024/n
	match(line, /"took":[^,}]*/); took = substr(line, RSTART+7, RLENGTH-7)
	printf "reopen:           %s (target < 3s)\n", took
}'
