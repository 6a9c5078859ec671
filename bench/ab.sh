#!/usr/bin/env bash
# Capture throughput of this checkout against an earlier revision, measured
# alternately (A B A B ...) so that both see the same machine load.
#
#   bench/ab.sh <git revision> [duration per run, default 5s] [rounds, default 3]
#
# Prints /e/ (one pageview a request) and /batch/ (50 events a request)
# requests a second of each, the best of the rounds, and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: bench/ab.sh <git revision> [duration] [rounds]}
dur=${2:-5s}
rounds=${3:-3}
out=bench/out/ab
mkdir -p "$out"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

old="$out/old-src"
rm -rf "$old"
git worktree add -q --detach "$old" "$rev"
trap 'git worktree remove --force "$old" 2>/dev/null || true' EXIT
(cd "$old" && go build -o "$PWD/../caddy-old" ./cmd/caddy)
go build -o "$out/caddy-new" ./cmd/caddy

pid=
run() { # binary, lua script, path → req/s
	rm -f "$out/ab.db"
	BENCH_DB="$PWD/$out/ab.db" "$1" run --config bench/Caddyfile --adapter caddyfile >"$out/caddy.log" 2>&1 &
	pid=$!
	for _ in $(seq 1 600); do curl -s -o /dev/null http://127.0.0.1:9301/ && break; sleep 0.1; done
	wrk -t1 -c32 -d"$dur" -s "bench/$2" "http://127.0.0.1:9300/_f/$3" | awk '/Requests\/sec/ {print $2}'
	kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; git worktree remove --force "$old" 2>/dev/null || true' EXIT

best() { sort -g | tail -1; }
for kind in "pageview.lua e/" "batch.lua batch/"; do
	set -- $kind
	a=(); b=()
	for _ in $(seq 1 "$rounds"); do
		a+=("$(run "$out/caddy-old" "$1" "$2")")
		b+=("$(run "$out/caddy-new" "$1" "$2")")
	done
	ba=$(printf '%s\n' "${a[@]}" | best); bb=$(printf '%s\n' "${b[@]}" | best)
	printf '/%-7s %s: %10.0f req/s   this checkout: %10.0f req/s   (%.1f%%)   runs: %s | %s\n' "$2" "$rev" "$ba" "$bb" "$(echo "100*$bb/$ba" | bc -l)" "${a[*]}" "${b[*]}"
done
