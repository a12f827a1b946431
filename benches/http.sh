#!/usr/bin/env bash
# HTTP outputs (issue 17): N record POSTs to a local REST endpoint (tests/http_server/
# server.py on Python's http.server, the test suite's server), by ferry (`body = "record"`,
# one file of N CSV records, journaled) next to a sequential `curl` loop and
# `xargs -P4 curl` over the same N JSON bodies, in the same run against the same server.
# Usage: bash benches/http.sh [N] [CURL_N]   (defaults 10000 and N: every request timed)
# FERRY_BIN picks the binary (default target/release/ferry, `cargo build --release`); the
# venv is scripts/test.sh's. Each line counts the requests the server logged as received.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
CURL_N=${2:-$N}
BIN=${FERRY_BIN:-$PWD/target/release/ferry}
PY=${FERRY_HTTP_PYTHON:-/opt/ferry-http-venv/bin/python}
W=$(mktemp -d)
trap 'kill "$PARENT" 2>/dev/null || true; rm -rf "$W"' EXIT
mkdir -p "$W/tls" "$W/dep/jobs" "$W/dep/in"
(cd "$W/tls" && openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem \
  -days 1 -subj /CN=localhost 2>/dev/null && cp cert.pem ca.pem)
sleep 100000 & PARENT=$!
"$PY" tests/http_server/server.py "$W" "$PARENT" >/dev/null 2>&1 &
for _ in $(seq 300); do [ -f "$W/ports.json" ] && break; sleep 0.1; done
PORT=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['http'])" "$W/ports.json")
python3 - "$W" "$N" <<'PY'
import csv, json, sys
w, n = sys.argv[1], int(sys.argv[2])
with open(f"{w}/recs.csv", "w") as f:
    f.write("id,sku,qty,price\n")
    for i in range(1, n + 1):
        f.write(f"{i},SKU-{i % 97},{i % 7 + 1},{i % 50}.{i % 100:02d}\n")
with open(f"{w}/bodies.txt", "w") as out:
    for row in csv.DictReader(open(f"{w}/recs.csv")):
        out.write(json.dumps(row) + "\n")
PY
cat > "$W/dep/jobs/bench.toml" <<TOML
[source]
folder = "in"
settle = "0s"

[input]
format = "csv"

[[output]]
http = "http://127.0.0.1:$PORT/ok/ferry"
body = "record"
TOML
cp "$W/recs.csv" "$W/dep/in/"
rate() { python3 -c "print(f'{$1/$2:.0f} requests/s ({$1} in {$2:.2f} s)')"; }
echo "$(date -u +%FT%TZ)  $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)  N=$N CURL_N=$CURL_N  $BIN"
t0=$(date +%s.%N)
(cd "$W/dep" && "$BIN" run --once 2>/dev/null)
t1=$(date +%s.%N)
echo "ferry:        $(rate "$(grep -c /ok/ferry "$W/requests.jsonl")" "$(echo "$t1 - $t0" | bc)")"
head -n "$CURL_N" "$W/bodies.txt" > "$W/b.txt"
t0=$(date +%s.%N)
while IFS= read -r line; do
  curl -s -o /dev/null -H 'Content-Type: application/json' --data-binary "$line" \
    "http://127.0.0.1:$PORT/ok/loop"
done < "$W/b.txt"
t1=$(date +%s.%N)
echo "curl loop:    $(rate "$(grep -c /ok/loop "$W/requests.jsonl")" "$(echo "$t1 - $t0" | bc)")"
t0=$(date +%s.%N)
tr '\n' '\0' < "$W/b.txt" | xargs -0 -P4 -I{} curl -s -o /dev/null \
  -H 'Content-Type: application/json' --data-binary {} "http://127.0.0.1:$PORT/ok/xargs"
t1=$(date +%s.%N)
echo "xargs -P4:    $(rate "$(grep -c /ok/xargs "$W/requests.jsonl")" "$(echo "$t1 - $t0" | bc)")"
