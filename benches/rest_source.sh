#!/usr/bin/env bash
# REST source (issue 17): N orders (default 100,000) taken from a local REST service in
# pages of SIZE (default 1,000) by `ferry run --once` (GET page after page over one
# connection, each page's records written as JSON lines into the staged file, fsync,
# journal, delivery of the file), next to a bash loop of `curl` fetching the same pages
# into one file, in the same run against the same server. Prints the wall time and the
# peak RSS of ferry (/usr/bin/time -v) at N and at N/10, so memory can be seen not to grow
# with the records (one page is held at a time), and checks every record arrived.
#
#   bash benches/rest_source.sh            N=200000 SIZE=500 bash benches/rest_source.sh
#
# The service is the test suite's (tests/rest_server/server.py, Python's standard
# library). FERRY_BIN overrides the binary (default target/release/ferry).
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-100000}"
SIZE="${SIZE:-1000}"
BIN="$(realpath "${FERRY_BIN:-target/release/ferry}")"
[ -x "$BIN" ] || { echo "rest_source.sh: build ferry first (cargo build --release)" >&2; exit 2; }
PY=${FERRY_HTTP_PYTHON:-/opt/ferry-http-venv/bin/python}
[ -x "$PY" ] || PY=python3
W=$(mktemp -d)
trap 'kill "$PARENT" 2>/dev/null || true; rm -rf "$W"' EXIT
sleep 100000 & PARENT=$!
"$PY" tests/rest_server/server.py "$W/srv" "$PARENT" >/dev/null 2>&1 &
for _ in $(seq 300); do [ -f "$W/srv/ports.json" ] && break; sleep 0.1; done
PORT=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['http'])" "$W/srv/ports.json")
orders() {  # orders TAG COUNT
  python3 - "$W/srv/orders/$1.json" "$2" <<'PY'
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
orders = [{"id": i, "changed_at": "2026-12-01T%02d:%02d:%02d.%06dZ" % (i // 3600000 % 24, i // 60000 % 60, i // 1000 % 60, i % 1000000),
           "customer": {"name": "Kunde %d \"Ünïcode\"" % i, "city": "Köln"}, "total": "%d.%02d" % (i % 5000, i % 100),
           "lines": [{"sku": "SKU-%d" % (i % 97), "qty": i % 7 + 1}]} for i in range(1, n + 1)]
json.dump(orders, open(path + ".tmp", "w"))
import os; os.rename(path + ".tmp", path)
PY
}
echo "$(date -u +%FT%TZ)  $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)  N=$N SIZE=$SIZE  $BIN"
run_ferry() {  # run_ferry TAG COUNT
  local d="$W/dep-$1"
  mkdir -p "$d/jobs"
  orders "$1" "$2"
  cat > "$d/jobs/orders.toml" <<TOML
[source]
http = "http://127.0.0.1:$PORT/$1/next/orders?changed_since={watermark}&size=$SIZE"
records = "data.items"
next = "links.next"
watermark = "changed_at"

[source.headers]
Authorization = "Bearer \${env:REST_TOKEN}"

[[output]]
folder = "out"
TOML
  local t0 t1
  t0=$(date +%s.%N)
  (cd "$d" && REST_TOKEN=rest-secret-8Hq2 /usr/bin/time -v "$BIN" run --once 2>"$W/time-$1.txt" >/dev/null)
  t1=$(date +%s.%N)
  local got rss
  got=$(cat "$d"/out/* | wc -l)
  rss=$(grep "Maximum resident" "$W/time-$1.txt" | awk '{print $NF}')
  python3 -c "print(f'ferry, {$2} records:  {$2/($t1-$t0):.0f} records/s ({$t1-$t0:.2f} s), peak RSS {$rss/1024:.1f} MiB, {$got} delivered')"
  [ "$got" -eq "$2" ] || { echo "expected $2 records" >&2; exit 1; }
}
run_ferry small $((N / 10))
run_ferry big "$N"
# The same pages of the same service by curl, one process per page, into one file.
t0=$(date +%s.%N)
for ((c = 0; c < N; c += SIZE)); do
  curl -sf -H "Authorization: Bearer rest-secret-8Hq2" \
    "http://127.0.0.1:$PORT/big/next/orders?changed_since=&size=$SIZE&cursor=$c" >> "$W/curl.json"
  echo >> "$W/curl.json"
done
t1=$(date +%s.%N)
pages=$(grep -c . "$W/curl.json")
python3 -c "print(f'curl loop, {$N} records: {$N/($t1-$t0):.0f} records/s ({$t1-$t0:.2f} s), {$pages} pages (no JSON processing, no journal)')"
