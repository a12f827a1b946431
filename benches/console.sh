#!/usr/bin/env bash
# The cost of the HTTP endpoint (issue 18): `ferry run --once` over N files with `--http`
# off, and with `--http` on while /metrics is scraped every second, alternated in the same
# run (REPS times each), on the release build.
#
#   bash benches/console.sh [N_FILES] [REPS]        (default 5000 files of 1 KiB, 5 reps)
#
# FERRY_BIN overrides the binary (default target/release/ferry, built when missing).
# BENCH_TMP sets the work folder (default /tmp/ferry-console-bench.<pid>). Prints one line
# per run and the median files/s of each mode. Only 127.0.0.1 is used; every process
# started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

N="${1:-5000}"
REPS="${2:-5}"
if [ -z "${FERRY_BIN:-}" ]; then
  FERRY_BIN="${CARGO_TARGET_DIR:-target}/release/ferry"
  if [ ! -x "$FERRY_BIN" ]; then
    echo "console.sh: building $FERRY_BIN" >&2
    cargo build --release >&2
  fi
fi
FERRY_BIN="$(realpath "$FERRY_BIN")"
command -v curl >/dev/null || { echo "console.sh: curl is missing (apt-get install -y curl)" >&2; exit 2; }

BENCH_TMP="${BENCH_TMP:-/tmp/ferry-console-bench.$$}"
SCRAPER=""
cleanup() {
  [ -n "$SCRAPER" ] && kill "$SCRAPER" 2>/dev/null || true
  rm -rf "$BENCH_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$BENCH_TMP/jobs"
cd "$BENCH_TMP"
cat >jobs/bench.toml <<'EOF'
[source]
folder = "in"
settle = "0s"

[[output]]
folder = "out"

[after]
success = "delete"
EOF
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# N files of 1 KiB in in/, a fresh journal and output folder.
prepare() {
  rm -rf in out var
  mkdir in
  python3 - "$N" <<'EOF'
import os, sys
block = b"x" * 1023 + b"\n"
for i in range(int(sys.argv[1])):
    with open(f"in/f{i:06d}.txt", "wb") as f:
        f.write(block)
EOF
  sync
}

# One timed run; prints files/s. $1: off | on.
one() {
  prepare
  local args=(run --once)
  if [ "$1" = on ]; then
    args+=(--http "127.0.0.1:$PORT")
    (while sleep 1; do curl -s -o /dev/null "http://127.0.0.1:$PORT/metrics" || true; done) &
    SCRAPER=$!
  fi
  local t0 t1
  t0=$(date +%s.%N)
  "$FERRY_BIN" "${args[@]}" 2>/dev/null
  t1=$(date +%s.%N)
  if [ -n "$SCRAPER" ]; then kill "$SCRAPER" 2>/dev/null || true; wait "$SCRAPER" 2>/dev/null || true; SCRAPER=""; fi
  local done_files
  done_files=$(find out -type f | wc -l)
  [ "$done_files" -eq "$N" ] || { echo "console.sh: $done_files of $N delivered" >&2; exit 1; }
  python3 -c "print(f'{$N / ($t1 - $t0):.0f}')"
}

declare -a OFF ON
for r in $(seq 1 "$REPS"); do
  off=$(one off); on=$(one on)
  OFF+=("$off"); ON+=("$on")
  echo "rep $r: --http off $off files/s, --http on + scrape/s $on files/s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)] " (" a[1] ".." a[NR] ")"}'; }
echo "median files/s, $N files x $REPS: --http off $(median "${OFF[@]}"); --http on, scraped every second: $(median "${ON[@]}")"
