#!/usr/bin/env bash
# Overhead of the analytics handler with `inject`, on loopback, bounded in
# time: an HTML page (~10 KB) and a stylesheet through file_server, with and
# without the handler in front, and the page again behind `encode gzip`.
#
#   bench/inject.sh [duration per run, default 5s] [rounds, default 3]
#
# Each pair is measured in alternating order, `rounds` times; the best run
# of each side counts (loopback figures on a shared machine are noisy, and
# the best run is the one least disturbed). Targets: pages through inject
# >= 90% of the bare throughput, other requests through the module >= 97%.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-5s}
rounds=${2:-3}
out=bench/out
mkdir -p "$out"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

go build -o "$out/caddy" ./cmd/caddy
export BENCH_DB="$PWD/$out/inject.db"
rm -f "$BENCH_DB"

"$out/caddy" run --config bench/Caddyfile.inject --adapter caddyfile >"$out/inject.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
	curl -s -o /dev/null http://127.0.0.1:9311/style.css && break
	sleep 0.1
done

# Sanity: the page through the handler has the tag, the stylesheet is as is.
page=$(curl -s http://127.0.0.1:9311/)
[[ $page == *'/_f/app.js?v='* ]] || { echo "no tag injected" >&2; exit 1; }
page=$(curl -s --compressed -H 'Accept-Encoding: gzip' http://127.0.0.1:9314/)
[[ $page == *'/_f/app.js?v='* ]] || { echo "no tag injected behind encode" >&2; exit 1; }
cmp -s <(curl -s http://127.0.0.1:9311/style.css) bench/site/style.css || { echo "stylesheet changed" >&2; exit 1; }

run() { # url [header] -> requests per second
	# A browser's User-Agent: the server pageviews of the pages are stored
	# (a client without one would be taken for a bot and only counted).
	local h=(-H "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36")
	[ -n "${2:-}" ] && h+=(-H "$2")
	wrk -t1 -c32 -d"$dur" "${h[@]}" "$1" | awk '/Requests\/sec/ {print $2}'
}
best() { # url-without url-with [header] -> "bare with"
	local a=0 b=0 x
	for _ in $(seq 1 "$rounds"); do
		x=$(run "$1" "${3:-}"); a=$(awk -v a="$a" -v x="$x" 'BEGIN {print (x > a ? x : a)}')
		x=$(run "$2" "${3:-}"); b=$(awk -v b="$b" -v x="$x" 'BEGIN {print (x > b ? x : b)}')
	done
	echo "$a $b"
}

accept='Accept: text/html,application/xhtml+xml,*/*;q=0.8'
read -r page_bare page_inject < <(best http://127.0.0.1:9310/ http://127.0.0.1:9311/ "$accept")
read -r css_bare css_module < <(best http://127.0.0.1:9310/style.css http://127.0.0.1:9311/style.css)
read -r gz_bare gz_inject < <(best http://127.0.0.1:9313/ http://127.0.0.1:9314/ "Accept-Encoding: gzip")

stored=$(curl -s http://127.0.0.1:9312/metrics | awk '/^caddy_analytics_events_total\{kind="server_pageview"/ {n += $2} END {printf "%d", n}')
echo "server pageviews stored during the run: $stored"

awk -v pb="$page_bare" -v pi="$page_inject" -v cb="$css_bare" -v cm="$css_module" -v gb="$gz_bare" -v gi="$gz_inject" 'BEGIN {
	printf "\n== results (best of each side, req/s) ==\n"
	printf "HTML page, file_server:         %8.0f bare  %8.0f inject  = %5.1f%% (target >= 90%%)\n", pb, pi, 100*pi/pb
	printf "stylesheet, file_server:        %8.0f bare  %8.0f module  = %5.1f%% (target >= 97%%)\n", cb, cm, 100*cm/cb
	printf "HTML page, encode gzip:         %8.0f bare  %8.0f inject  = %5.1f%% (decoded and encoded again)\n", gb, gi, 100*gi/gb
}'
