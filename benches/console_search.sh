#!/usr/bin/env bash
# The web console's audit-log search on a journal of N files (default 1,000,000; issue 18):
# a journal made by ferry (its real schema and indexes) is filled straight through SQLite
# (benches/console_search.py), then `ferry run --http` serves it and each kind of search
# is timed R times (default 200) over HTTP with curl (time_total: connect to last byte of
# the page). Prints p50 and p99 in ms per kind.
#
#   bash benches/console_search.sh          N=100000 R=50 bash benches/console_search.sh
#
# FERRY_BIN overrides the binary (default target/release/ferry, else target/debug/ferry).
# The work folder (/tmp/ferry-console-bench.PID) is removed and the daemon stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

N="${N:-1000000}"
R="${R:-200}"
if [ -z "${FERRY_BIN:-}" ]; then
  FERRY_BIN="${CARGO_TARGET_DIR:-target}/release/ferry"
  [ -x "$FERRY_BIN" ] || FERRY_BIN="${CARGO_TARGET_DIR:-target}/debug/ferry"
fi
FERRY_BIN="$(realpath "$FERRY_BIN")"
[ -x "$FERRY_BIN" ] || { echo "console_search.sh: build ferry first (cargo build --release)" >&2; exit 2; }
BENCH="$(pwd)/benches"

ROOT="/tmp/ferry-console-bench.$$"
PID=""
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  rm -rf "$ROOT"
}
trap cleanup EXIT
mkdir -p "$ROOT/jobs"
cd "$ROOT"
for j in invoices orders prices returns payroll; do
  mkdir -p "in/$j"
  printf '[source]\nfolder = "in/%s"\n\n[[output]]\nfolder = "out/%s"\n' "$j" "$j" >"jobs/$j.toml"
done
"$FERRY_BIN" run --once >/dev/null 2>&1 || true   # makes the journal in its real schema
python3 "$BENCH/console_search.py" var/state/journal.sqlite "$N"
echo "journal: $(du -h var/state/journal.sqlite | cut -f1)" >&2
# The fill leaves most of the journal's pages dirty in the page cache: written out in the
# background during the timing, they stalled the daemon's own small journal commits (and
# a page behind them) for 150-280 ms in runs before this line. A real journal grows a
# file at a time; write this one out first.
sync

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$FERRY_BIN" run --http "127.0.0.1:$PORT" 2>var/ferry.log &
PID=$!
for _ in $(seq 600); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/jobs" && break; sleep 0.1; done

day() { date -d "@$(( $(date +%s) - $1 * 86400 ))" +%Y-%m-%d; }
hash_of() { python3 -c "import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest()[:$2])" "$1"; }

# One URL per search, given the iteration $i.
url() {
  local kind=$1 i=$2 n
  n=$(( (i * 7919) % N + 1 ))
  case $kind in
    newest)     echo "/files" ;;
    deep-page)  echo "/files?before=$(( N - i * 4000 % N ))" ;;
    job)        echo "/files?job=orders&before=$(( N - i * 3000 % N ))" ;;
    name)       printf '/files?name=%s-%07d.xml\n' "$(echo invoices orders prices returns payroll | cut -d' ' -f$(( n % 5 + 1 )) | cut -c1-3 | tr a-z A-Z)" "$n" ;;
    name-prefix) printf '/files?name=ORD-%03d\n' $(( i % 1000 )) ;;
    status)     echo "/files?status=failed&before=$(( N - i * 3000 % N ))" ;;
    date-range) echo "/files?from=$(day $(( i % 28 + 2 )))&to=$(day $(( i % 28 + 1 )))" ;;
    hash)       echo "/files?hash=$(hash_of "$n" 10)" ;;
    combined)   echo "/files?job=returns&status=failed&from=$(day 20)&to=$(day 10)" ;;
    file)       echo "/files/$n" ;;
  esac
}

printf '%-12s %8s %8s %8s\n' "search" "p50 ms" "p99 ms" "rows"
for kind in newest deep-page job name name-prefix status date-range hash combined file; do
  : >"times.$kind"
  for i in $(seq "$R"); do
    curl -s -o page.html -w '%{time_total}\n' "http://127.0.0.1:$PORT$(url "$kind" "$i")" >>"times.$kind"
  done
  rows=$(grep -c '<td class="name">' page.html || true)
  python3 - "times.$kind" "$kind" "$rows" <<'PY'
import sys
t = sorted(float(x) * 1000 for x in open(sys.argv[1]))
p = lambda q: t[min(len(t) - 1, int(q * len(t)))]
print(f"{sys.argv[2]:<12} {p(0.5):8.1f} {p(0.99):8.1f} {sys.argv[3]:>8}")
PY
done
