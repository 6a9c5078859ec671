#!/usr/bin/env bash
# Feature-flag benchmark (SPEC §9), on loopback, bounded in time.
#
#   bench/flags.sh [duration per phase, default 5s]
#   FLAGS_IDS=1000000 FLAGS_GZIP=0 FLAGS_BASE=<rev> ROUNDS="1 2 3 4 5" bench/flags.sh
#
# Creates 100 active flags (40 plain rollouts, 30 multivariate, 30 with
# person-property conditions and payloads) through the dashboard API, then
# measures Caddy's bare `respond 204` to the same POST and our /flags/?v=2
# for posthog-js bodies with 1000 distinct ids (FLAGS_IDS=1000000 for ids
# never seen before: no hash cache hits), sent with the Accept-Encoding
# Chromium sends (FLAGS_GZIP=0: none, so answers go plain). Target:
# /flags/ at >= 50% of bare. Besides requests per second, it gives the
# server's CPU time per request (from /proc, both servers are one
# process), which other load on the machine disturbs far less.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-5s}
out=bench/out
mkdir -p "$out"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

go build -o "$out/caddy" ./cmd/caddy
port=${FLAGS_PORT:-9320}
# FLAGS_BASE=<git revision>: its /flags/ too (a server of its own on
# FLAGS_PORT+10), measured in the same rounds, so that before and after
# see the same machine load.
base=${FLAGS_BASE:-}
if [ -n "$base" ]; then
	old="$out/flags-base-src"
	rm -rf "$old"
	git worktree add -q --detach "$old" "$base"
	(cd "$old" && go build -o "$PWD/../caddy-base" ./cmd/caddy)
	git worktree remove --force "$old"
fi
ports=("$port" "$((port + 1))" "$((port + 2))")
[ -z "$base" ] || ports+=("$((port + 10))" "$((port + 11))" "$((port + 12))")
for p in "${ports[@]}"; do
	if curl -s -o /dev/null "http://127.0.0.1:$p/"; then
		echo "port $p is taken (another benchmark?); use FLAGS_PORT=<another base port>" >&2
		exit 1
	fi
done

pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done; }
trap stop EXIT
# start BINARY PORT: a server with /flags/ on PORT, bare respond on
# PORT+1, admin on PORT+2, and the 100 flags; sets spid.
start() {
	local db="$PWD/$out/flags-$2.db"
	rm -f "$db"
	BENCH_DB="$db" BENCH_FLAGS_PORT=$2 BENCH_BARE_PORT=$(($2 + 1)) BENCH_ADMIN_PORT=$(($2 + 2)) \
		"$1" run --config bench/Caddyfile.flags --adapter caddyfile >"$out/caddy-flags-$2.log" 2>&1 &
	spid=$!
	pids+=("$spid")
	for _ in $(seq 1 600); do
		curl -s -o /dev/null "http://127.0.0.1:$(($2 + 1))/" && break
		sleep 0.1
	done
	local api=http://127.0.0.1:$2/analytics/api i f code
	for i in $(seq 1 100); do
		case $((i % 10)) in
		0 | 1 | 2 | 3) f='{"key":"rollout-'$i'","active":true,"filters":{"groups":[{"rollout_percentage":'$((i % 100))'}]}}' ;;
		4 | 5 | 6) f='{"key":"split-'$i'","active":true,"filters":{"groups":[{"rollout_percentage":100}],"multivariate":{"variants":[{"key":"control","rollout_percentage":34},{"key":"a","rollout_percentage":33},{"key":"b","rollout_percentage":33}]},"payloads":{"a":{"color":"blue"},"b":"\"green\""}}}' ;;
		*) f='{"key":"pro-'$i'","active":true,"filters":{"groups":[{"properties":[{"key":"plan","operator":"exact","value":"pro","type":"person"},{"key":"$initial_utm_source","operator":"icontains","value":"NEWS","type":"person"}],"rollout_percentage":80},{"properties":[{"key":"email","operator":"regex","value":"@example\\.com$","type":"person"}]}],"payloads":{"true":{"limit":'$i'}}}}' ;;
		esac
		code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d "$f" "$api/flags")
		[ "$code" = 201 ] || { echo "creating flag $i on :$2: $code" >&2; exit 1; }
	done
}
start "$out/caddy" "$port"
pid=$spid
flags=http://127.0.0.1:$port
bare=http://127.0.0.1:$((port + 1))
if [ -n "$base" ]; then
	start "$out/caddy-base" "$((port + 10))"
	bpid=$spid
	bflags=http://127.0.0.1:$((port + 10))
fi
one='{"token":"phc_bench","distinct_id":"x","person_properties":{"plan":"pro"}}'
plain=$(curl -s -X POST -d "$one" "$flags/_f/flags/?v=2" | wc -c)
# An answer goes compressed from the second time it comes.
for _ in 1 2; do
	zipped=$(curl -s -H 'Accept-Encoding: gzip' -X POST -d "$one" "$flags/_f/flags/?v=2" | wc -c)
done
echo "100 flags created; one answer is $plain bytes, $zipped gzip-compressed"

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tck=$(getconf CLK_TCK)
# run URL [PID]: wrk for $dur; prints "<req/s> <CPU µs per request of the
# server PID, default the new one>".
run() {
	local c0 c1 out p=${2:-$pid}
	c0=$(cpu "$p")
	out=$(wrk -t1 -c64 -d"$dur" -s bench/flags.lua "$1")
	c1=$(cpu "$p")
	awk -v o="$out" -v a="$c0" -v b="$c1" -v t="$tck" 'BEGIN {
		n = split(o, l, "\n")
		for (i = 1; i <= n; i++) {
			if (l[i] ~ /requests in/) { split(l[i], f, " "); reqs = f[1] }
			if (l[i] ~ /Requests\/sec/) { split(l[i], f, " "); rps = f[2] }
		}
		printf "%s %.1f\n", rps, (b - a) / t * 1e6 / reqs
	}'
}
# The two phases alternate, three rounds each, so that load from elsewhere
# on the machine falls on both alike; the ratio is taken per round and the
# median reported.
ratios=()
cpus=()
bratios=()
bcpus=()
rounds=(${ROUNDS:-1 2 3})
for round in "${rounds[@]}"; do
	read -r brps bcpu < <(run "$bare/")
	read -r frps fcpu < <(run "$flags/_f/flags/?v=2")
	r=$(awk -v b="$brps" -v f="$frps" 'BEGIN {printf "%.0f", 100*f/b}')
	c=$(awk -v b="$bcpu" -v f="$fcpu" 'BEGIN {printf "%.0f", 100*b/f}')
	ratios+=("$r")
	cpus+=("$c")
	printf "round %s: bare respond %8.0f req/s (%5.1f µs CPU each), /flags/ (100 flags) %8.0f req/s (%5.1f µs) = %s%% (by CPU time %s%%)\n" "$round" "$brps" "$bcpu" "$frps" "$fcpu" "$r" "$c"
	if [ -n "$base" ]; then
		read -r orps ocpu < <(run "$bflags/_f/flags/?v=2" "$bpid")
		r=$(awk -v b="$brps" -v f="$orps" 'BEGIN {printf "%.0f", 100*f/b}')
		c=$(awk -v b="$bcpu" -v f="$ocpu" 'BEGIN {printf "%.0f", 100*b/f}')
		bratios+=("$r")
		bcpus+=("$c")
		printf "         %s /flags/ %8.0f req/s (%5.1f µs) = %s%% (by CPU time %s%%)\n" "$base" "$orps" "$ocpu" "$r" "$c"
	fi
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "== result (ids: ${FLAGS_IDS:-1000}, gzip: ${FLAGS_GZIP:-1}): /flags/ at $(median "${ratios[@]}")% of bare respond, by server CPU time per request $(median "${cpus[@]}")% (medians of ${#rounds[@]} rounds; target >= 50%); load average: $(cut -d' ' -f1-3 /proc/loadavg) =="
[ -z "$base" ] || echo "== $base: /flags/ at $(median "${bratios[@]}")% of bare respond, by server CPU time per request $(median "${bcpus[@]}")% =="
