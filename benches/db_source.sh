#!/usr/bin/env bash
# Database source (issue 16): a query of N rows (default 1,000,000) to a CSV file, with
# ferry (`ferry run --once`: connect, run the query with `:since` bound, stream the rows
# into the staged CSV, fsync, journal, deliver) next to `psql -c "\copy (query) to file"`
# on the same server in the same run. Prints the wall time and peak RSS of each
# (/usr/bin/time -v), and checks that both files hold N rows.
#
#   bash benches/db_source.sh            N=5000000 bash benches/db_source.sh
#
# Starts its own PostgreSQL (scripts/db-servers.sh) on a free port under
# /tmp/ferry-dbsrc-bench.PID, removed at the end with everything it made.
# FERRY_BIN overrides the binary (default target/release/ferry).
set -euo pipefail
cd "$(dirname "$0")/.."

N="${N:-1000000}"
FERRY_BIN="$(realpath "${FERRY_BIN:-${CARGO_TARGET_DIR:-target}/release/ferry}")"
[ -x "$FERRY_BIN" ] || { echo "db_source.sh: build ferry first (cargo build --release)" >&2; exit 2; }
command -v psql >/dev/null || bash scripts/db-servers.sh install

ROOT="/tmp/ferry-dbsrc-bench.$$"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cleanup() {
  bash scripts/db-servers.sh stop postgres "$ROOT/pg" >/dev/null 2>&1 || true
  rm -rf "$ROOT"
}
trap cleanup EXIT
mkdir -p "$ROOT/d/jobs"
bash scripts/db-servers.sh start postgres "$ROOT/pg" "$PORT" $$ >/dev/null
sql() { bash scripts/db-servers.sh sql postgres "$ROOT/pg" "$PORT" "$1"; }
sql "CREATE TABLE bench (id bigint PRIMARY KEY, customer text NOT NULL, amount numeric(14,2),
       status text, changed_at timestamptz NOT NULL);
     INSERT INTO bench SELECT i, 'Customer ' || i || ' \"Ünïcode\", Ltd', (i % 100000) / 7.0,
       CASE WHEN i % 3 = 0 THEN NULL ELSE 'open' END,
       timestamptz '2026-01-01 00:00:00+00' + i * interval '1 second'
     FROM generate_series(1, $N) i;
     CREATE INDEX ON bench (changed_at); ANALYZE bench; GRANT SELECT ON bench TO ferry;" >/dev/null

QUERY="SELECT id, customer, amount, status, changed_at FROM bench WHERE changed_at > :since ORDER BY changed_at"
URL="postgres://ferry:secret@127.0.0.1:$PORT/ferry"
cat >"$ROOT/d/jobs/bench.toml" <<TOML
[source]
database = "$URL"
query = "$QUERY"
watermark = "changed_at"

[[output]]
folder = "out"
name = "rows.csv"

[after]
success = "delete"
TOML

measure() { # label, command...
  local label=$1; shift
  /usr/bin/time -v "$@" 2>"$ROOT/time.txt" >/dev/null || { cat "$ROOT/time.txt" >&2; exit 1; }
  local wall rss
  wall=$(grep 'Elapsed (wall clock)' "$ROOT/time.txt" | awk '{print $NF}')
  rss=$(grep 'Maximum resident set size' "$ROOT/time.txt" | awk '{print $NF}')
  printf '%-8s wall %s  peak RSS %d MB\n' "$label" "$wall" $((rss / 1024))
}

echo "N=$N rows, PostgreSQL $(sql 'SHOW server_version' | cut -d' ' -f1), same query, same server"
(cd "$ROOT/d" && measure ferry "$FERRY_BIN" run --once)
LOWEST="'-infinity'"
PSQL_QUERY="${QUERY/:since/$LOWEST}"
measure psql psql "postgresql://ferry:secret@127.0.0.1:$PORT/ferry" \
  -c "\\copy ($PSQL_QUERY) to '$ROOT/psql.csv' with (format csv, header)"
ferry_rows=$(($(wc -l <"$ROOT/d/out/rows.csv") - 1))
psql_rows=$(($(wc -l <"$ROOT/psql.csv") - 1))
echo "rows: ferry $ferry_rows, psql $psql_rows; sizes: ferry $(stat -c %s "$ROOT/d/out/rows.csv") B, psql $(stat -c %s "$ROOT/psql.csv") B"
[ "$ferry_rows" -eq "$N" ] && [ "$psql_rows" -eq "$N" ]
