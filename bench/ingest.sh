#!/usr/bin/env bash
# Capture throughput of posthog-js shaped traffic, this checkout against an
# earlier revision (or alone), measured alternately (A B A B ...) so that
# both see the same machine load; reports the median of the rounds.
#
#   bench/ingest.sh [git revision|-] [duration per run, default 5s] [rounds, default 5]
#
# Phases: /batch/ with 50 posthog-js events of ~1.3 KB each (batch1k.lua;
# events/s = req/s × 50) and /e/ with one ~600-byte pageview a request
# (pageview.lua). Beside throughput it reports the server's CPU time per
# stored event (user + system, from /proc), which other load on the
# machine does not change much. Each run starts Caddy on a fresh database. Ports are
# 9310-9312 (BENCH_PORT moves them), so that bench/run.sh can run beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:--}
dur=${2:-5s}
rounds=${3:-5}
port=${BENCH_PORT:-9310}
out=bench/out/ingest
mkdir -p "$out"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

sed -e "s/9300/$port/; s/9301/$((port + 1))/; s/9302/$((port + 2))/" bench/Caddyfile >"$out/Caddyfile"
go build -o "$out/caddy-new" ./cmd/caddy
bins=("$out/caddy-new")
old=
if [ "$rev" != - ]; then
	old="$out/old-src"
	rm -rf "$old"
	git worktree add -q --detach "$old" "$rev"
	(cd "$old" && go build -o "$OLDPWD/$out/caddy-old" ./cmd/caddy)
	git worktree remove --force "$old"
	bins=("$out/caddy-old" "$out/caddy-new")
fi

pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; true' EXIT
cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
stored() { curl -s "http://127.0.0.1:$((port + 2))/metrics" | awk '/^caddy_analytics_stored_events\{site="bench.example"\}/ {n = $2} END {printf "%d", n}' || echo 0; }
run() { # binary, lua script, path, connections → "req/s server-CPU-µs/event"
	rm -f "$out/ingest.db"
	BENCH_DB="$PWD/$out/ingest.db" "$1" run --config "$out/Caddyfile" --adapter caddyfile >"$out/caddy.log" 2>&1 &
	pid=$!
	for _ in $(seq 1 600); do curl -s -o /dev/null "http://127.0.0.1:$((port + 1))/" && break; sleep 0.1; done
	local t0 n0 rps t1 n1
	t0=$(cputicks "$pid"); n0=$(stored)
	rps=$(wrk -t1 -c"$4" -d"$dur" -s "bench/$2" "http://127.0.0.1:$port/_f/$3" | awk '/Requests\/sec/ {print $2}')
	t1=$(cputicks "$pid"); n1=$(stored)
	# Stopped before answering: the caller starts the next run at once.
	kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
	echo "${rps:-0} $(( (t1 - t0) * 1000000 / $(getconf CLK_TCK) / (n1 - n0 + 1) ))"
}
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

for kind in "batch1k.lua batch/ 16 50" "pageview.lua e/ 64 1"; do
	set -- $kind
	declare -A runs=() cpus=()
	for _ in $(seq 1 "$rounds"); do
		for b in "${bins[@]}"; do
			read -r r c < <(run "$b" "$1" "$2" "$3")
			runs[$b]+="$r "; cpus[$b]+="$c "
		done
	done
	line=$(printf '/%-7s' "$2")
	for b in "${bins[@]}"; do
		name=this; [ "$b" = "$out/caddy-old" ] && name=$rev
		m=$(printf '%s\n' ${runs[$b]} | median)
		cm=$(printf '%s\n' ${cpus[$b]} | median)
		line+=$(printf '  %s: %7.0f req/s = %7.0f events/s, server CPU %s µs/event (runs: %s)' "$name" "$m" "$(echo "$m*$4" | bc -l)" "$cm" "${runs[$b]% }")
	done
	echo "$line"
	unset runs cpus
done
