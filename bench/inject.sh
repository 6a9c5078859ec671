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
#
# Beside requests a second, the CPU time the Caddy process spent (user and
# system, from /proc, background work included) per request: on a machine
# other jobs share, requests a second say as much about them as about the
# server, while the CPU a request costs stays close to what it is. The
# lowest of each side counts; bare/with is the throughput that cost allows.
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

cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; } # clock ticks
tick=$(getconf CLK_TCK)
run() { # url [header] -> "requests-per-second cpu-µs-per-request"
	# A browser's User-Agent: the server pageviews of the pages are stored
	# (a client without one would be taken for a bot and only counted).
	local h=(-H "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36")
	[ -n "${2:-}" ] && h+=(-H "$2")
	local t0 t1 out
	t0=$(cpu)
	out=$(wrk -t1 -c32 -d"$dur" "${h[@]}" "$1")
	t1=$(cpu)
	awk -v t0="$t0" -v t1="$t1" -v tick="$tick" '/requests in/ {n = $1} /Requests\/sec/ {r = $2} END {printf "%s %.2f\n", r, (t1 - t0) / tick * 1e6 / n}' <<<"$out"
}
best() { # url-without url-with [header] -> "bare with bare-cpu with-cpu"
	local a=0 b=0 ca=1e9 cb=1e9 x c
	for _ in $(seq 1 "$rounds"); do
		read -r x c < <(run "$1" "${3:-}")
		a=$(awk -v a="$a" -v x="$x" 'BEGIN {print (x > a ? x : a)}'); ca=$(awk -v a="$ca" -v x="$c" 'BEGIN {print (x < a ? x : a)}')
		read -r x c < <(run "$2" "${3:-}")
		b=$(awk -v b="$b" -v x="$x" 'BEGIN {print (x > b ? x : b)}'); cb=$(awk -v a="$cb" -v x="$c" 'BEGIN {print (x < a ? x : a)}')
	done
	echo "$a $b $ca $cb"
}

accept='Accept: text/html,application/xhtml+xml,*/*;q=0.8'
read -r page_bare page_inject page_bare_cpu page_inject_cpu < <(best http://127.0.0.1:9310/ http://127.0.0.1:9311/ "$accept")
read -r css_bare css_module css_bare_cpu css_module_cpu < <(best http://127.0.0.1:9310/style.css http://127.0.0.1:9311/style.css)
read -r gz_bare gz_inject gz_bare_cpu gz_inject_cpu < <(best http://127.0.0.1:9313/ http://127.0.0.1:9314/ "Accept-Encoding: gzip")

stored=$(curl -s http://127.0.0.1:9312/metrics | awk '/^caddy_analytics_events_total\{kind="server_pageview"/ {n += $2} END {printf "%d", n}')
echo "server pageviews stored during the run: $stored"

awk -v pb="$page_bare" -v pi="$page_inject" -v cb="$css_bare" -v cm="$css_module" -v gb="$gz_bare" -v gi="$gz_inject" 'BEGIN {
	printf "\n== results (best of each side, req/s) ==\n"
	printf "HTML page, file_server:         %8.0f bare  %8.0f inject  = %5.1f%% (target >= 90%%)\n", pb, pi, 100*pi/pb
	printf "stylesheet, file_server:        %8.0f bare  %8.0f module  = %5.1f%% (target >= 97%%)\n", cb, cm, 100*cm/cb
	printf "HTML page, encode gzip:         %8.0f bare  %8.0f inject  = %5.1f%% (decoded and encoded again)\n", gb, gi, 100*gi/gb
}'
awk -v pb="$page_bare_cpu" -v pi="$page_inject_cpu" -v cb="$css_bare_cpu" -v cm="$css_module_cpu" -v gb="$gz_bare_cpu" -v gi="$gz_inject_cpu" 'BEGIN {
	printf "\n== CPU of the Caddy process per request (lowest of each side, µs; bare/with) ==\n"
	printf "HTML page, file_server:         %8.1f bare  %8.1f inject  = %5.1f%%\n", pb, pi, 100*pb/pi
	printf "stylesheet, file_server:        %8.1f bare  %8.1f module  = %5.1f%%\n", cb, cm, 100*cb/cm
	printf "HTML page, encode gzip:         %8.1f bare  %8.1f inject  = %5.1f%%\n", gb, gi, 100*gb/gi
}'
