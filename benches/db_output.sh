#!/usr/bin/env bash
# Database output (issue 16): ROWS CSV rows (default 1,000,000) loaded into PostgreSQL by
# ferry (`run --once`, one file, one transaction with its load-table row, COPY) side by
# side with `psql \copy` of the same file into an identical table, in the same run, against
# the same server. Prints wall time, rows/s and peak RSS (/usr/bin/time -v) of both, RUNS
# times (default 3), and the medians.
#
#   bash benches/db_output.sh            ROWS=200000 RUNS=1 bash benches/db_output.sh
#
# FERRY_BIN overrides the binary (default target/release/ferry). The server is started by
# scripts/db-servers.sh in the work folder (/tmp/ferry-db-bench.PID) on a free port and
# stopped at the end; the work folder is removed, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS="${ROWS:-1000000}"
RUNS="${RUNS:-3}"
FERRY_BIN="${FERRY_BIN:-${CARGO_TARGET_DIR:-target}/release/ferry}"
FERRY_BIN="$(realpath "$FERRY_BIN")"
[ -x "$FERRY_BIN" ] || { echo "db_output.sh: build ferry first (cargo build --release)" >&2; exit 2; }
command -v psql >/dev/null || { echo "db_output.sh: needs psql (bash scripts/db-servers.sh install)" >&2; exit 2; }

ROOT="/tmp/ferry-db-bench.$$"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
DB="$ROOT/pg"
cleanup() {
  bash scripts/db-servers.sh stop postgres "$DB" >/dev/null 2>&1 || true
  rm -rf "$ROOT"
}
trap cleanup EXIT
mkdir -p "$ROOT/jobs" "$ROOT/in" "$ROOT/var"
bash scripts/db-servers.sh start postgres "$DB" "$PORT" >/dev/null
sql() { bash scripts/db-servers.sh sql postgres "$DB" "$PORT" "$1"; }

COLS="no, amount, paid, day, at, name, note"
for t in bench_copy bench_ferry; do
  sql "CREATE TABLE $t (no bigint PRIMARY KEY, amount numeric(12,2) NOT NULL, paid boolean, day date, at timestamp, name varchar(40), note text)"
  sql "ALTER TABLE $t OWNER TO ferry"
done

python3 - "$ROWS" >"$ROOT/orders.csv" <<'EOF'
import sys
n = int(sys.argv[1])
w = sys.stdout.write
w("no,amount,paid,day,at,name,note\n")
for i in range(1, n + 1):
    w(f"{i},{i % 100000}.{i % 100:02d},{'true' if i % 2 else 'false'},2026-{i % 12 + 1:02d}-{i % 28 + 1:02d},"
      f"2026-12-03 {i % 24:02d}:{i % 60:02d}:{i % 60:02d},Kunde {i % 997},\"Bestellung {i}, Lager ü\"\n")
EOF
SIZE=$(stat -c %s "$ROOT/orders.csv")

cat >"$ROOT/jobs/load.toml" <<EOF
[source]
folder = "in"
settle = "0s"

[input]
format = "csv"

[[output]]
database = "postgres://ferry:\${env:BENCH_DB_PW}@127.0.0.1:$PORT/ferry"
ca_file = "$DB/tls/ca.pem"
table = "bench_ferry"

[after]
success = "delete"
EOF

URL="postgresql://ferry:secret@127.0.0.1:$PORT/ferry?sslmode=require"
# wall seconds and peak RSS (KiB) of a command, from /usr/bin/time -v
measure() { # out-file cmd...
  local out=$1; shift
  /usr/bin/time -v -o "$out" "$@" >/dev/null 2>"$out.err" || { cat "$out.err" "$out" >&2; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$out")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out")
  echo "$wall $rss"
}

echo "db_output: $ROWS rows, $((SIZE / 1024 / 1024)) MiB CSV, PostgreSQL on 127.0.0.1 (TLS), $RUNS run(s)"
printf '%-4s %-12s %10s %12s %10s\n' run tool seconds rows/s "RSS MiB"
: >"$ROOT/results"
for run in $(seq "$RUNS"); do
  sql "TRUNCATE bench_copy" >/dev/null
  sql "TRUNCATE bench_ferry" >/dev/null
  sync
  read -r w r < <(measure "$ROOT/time.copy" psql "$URL" -q -c "\\copy bench_copy ($COLS) FROM '$ROOT/orders.csv' WITH (FORMAT csv, HEADER)")
  printf '%-4s %-12s %10.2f %12.0f %10.1f\n' "$run" "psql \\copy" "$w" "$(echo "$ROWS / $w" | bc -l)" "$(echo "$r / 1024" | bc -l)"
  echo "copy $w $r" >>"$ROOT/results"
  cp "$ROOT/orders.csv" "$ROOT/in/orders.csv"
  sync
  read -r w r < <(cd "$ROOT" && BENCH_DB_PW=secret FERRY_LOG=warn measure "$ROOT/time.ferry" "$FERRY_BIN" run --once)
  printf '%-4s %-12s %10.2f %12.0f %10.1f\n' "$run" "ferry" "$w" "$(echo "$ROWS / $w" | bc -l)" "$(echo "$r / 1024" | bc -l)"
  echo "ferry $w $r" >>"$ROOT/results"
  got=$(sql "SELECT count(*) FROM bench_ferry")
  [ "$got" = "$ROWS" ] || { echo "db_output: ferry loaded $got rows, not $ROWS" >&2; exit 1; }
  [ ! -e "$ROOT/in/orders.csv" ] || { echo "db_output: the original is still there" >&2; exit 1; }
done
python3 - "$ROOT/results" "$ROWS" <<'EOF'
import statistics, sys
rows = int(sys.argv[2])
by = {}
for line in open(sys.argv[1]):
    tool, w, r = line.split()
    by.setdefault(tool, []).append((float(w), int(r)))
med = {t: (statistics.median(w for w, _ in v), max(r for _, r in v)) for t, v in by.items()}
for t, (w, r) in med.items():
    print(f"median {t:6s} {w:7.2f} s  {rows / w:10.0f} rows/s  peak RSS {r / 1024:7.1f} MiB")
print(f"ferry's rate is {med['copy'][0] / med['ferry'][0]:.2f} of psql \\copy's")
EOF
