#!/usr/bin/env bash
# ferry core benchmarks, side by side with an `inotifywait | cp | mv` bash loop.
#
#   bash benches/core.sh [throughput|latency|backlog|idle|crash|all] ...
#
# FERRY_BIN overrides the binary (default target/release/ferry, built when missing; set
# CARGO_TARGET_DIR to build elsewhere). BENCH_TMP sets the work folder (default
# /tmp/ferry-bench.<pid>); it must be on the file system under test. Other knobs are listed
# at the top of benches/core.py. Results are printed and written as JSON next to BENCH_TMP
# (or to BENCH_RESULTS). Every background process is killed on exit, even on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${FERRY_BIN:-}" ]; then
  FERRY_BIN="${CARGO_TARGET_DIR:-target}/release/ferry"
  if [ ! -x "$FERRY_BIN" ]; then
    echo "core.sh: building $FERRY_BIN" >&2
    cargo build --release >&2
  fi
fi
FERRY_BIN="$(realpath "$FERRY_BIN")"
[ -x "$FERRY_BIN" ] || { echo "core.sh: $FERRY_BIN is not executable" >&2; exit 2; }
export FERRY_BIN

missing=()
command -v inotifywait >/dev/null || missing+=(inotify-tools)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
  echo "core.sh: missing ${missing[*]}; install with: apt-get install -y ${missing[*]}" >&2
  exit 2
fi

export BENCH_TMP="${BENCH_TMP:-/tmp/ferry-bench.$$}"
export BENCH_PIDFILE="$BENCH_TMP.pgids"
: >"$BENCH_PIDFILE"

cleanup() {
  # Only the process groups this run started (recorded by core.py as it starts them).
  if [ -s "$BENCH_PIDFILE" ]; then
    while read -r pg; do
      [ -n "$pg" ] && kill -KILL -- "-$pg" 2>/dev/null || true
    done <"$BENCH_PIDFILE"
  fi
  rm -f "$BENCH_PIDFILE"
  if [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$BENCH_TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

python3 benches/core.py "${@:-all}"
