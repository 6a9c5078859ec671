#!/usr/bin/env bash
# Runs every SQL statement the ClickHouse backend sends, as a test run
# against Debian's clickhouse-server 18.16 captures them, through current
# ClickHouse (npm's chdb, ClickHouse 26.x in-process), and reports the
# statements it refuses. Not part of CI: the chdb download is ~550 MB.
#
#   tools/chdb-check/run.sh            # capture with the tests below, then check
#   tools/chdb-check/run.sh FILE.jsonl # check a capture made before
#   CHDB_CHECK_LOG=FILE.jsonl tools/chdb-check/run.sh # capture into FILE, keep it
#
# A capture is made by any run with FIRSTPARTY_CH_SQL_LOG=<file> set
# (store/clickhouse/client.go writes one JSON line per statement).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
work=$(mktemp -d "${TMPDIR:-/tmp}/chdb-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ $# -ge 1 ]; then
	log=$(realpath "$1")
else
	log=${CHDB_CHECK_LOG:-$work/queries.jsonl} # set it to keep the capture
	rm -f "$log"
	echo "capturing the statements of the ClickHouse tests into $log" >&2
	# every test of the backend, and every store test that runs against it
	FIRSTPARTY_CH_SQL_LOG=$log go test ./store/clickhouse/ -count=1 >&2
	FIRSTPARTY_CH_SQL_LOG=$log go test ./store/ -count=1 -run 'ClickHouse' >&2
fi

echo "installing chdb into $work (npm)" >&2
(cd "$work" && npm install --silent --no-audit --no-fund chdb@^3 >&2)
NODE_PATH=$work/node_modules node "$root/tools/chdb-check/check.js" "$log" "$work/session"
