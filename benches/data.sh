#!/usr/bin/env bash
# ferry data-path benchmarks, side by side with Miller, xmlstarlet and the csv crate.
#
#   bash benches/data.sh [csv|xml|json|rss|all]
#
# FERRY_BIN overrides the binary (default target/release/ferry, or
# $CARGO_TARGET_DIR/release/ferry; built when missing). The csv crate yardstick is
# examples/csv_raw.rs, built with `cargo build --release --example csv_raw` (CSV_RAW_BIN
# overrides it); the quick-xml yardstick is examples/xml_raw.rs (XML_RAW_BIN). sha256sum
# (coreutils) times the integrity floor. BENCH_TMP sets the work folder (default /tmp/ferry-data-bench.<pid>);
# BENCH_RUNS (3), DATA_MB (200) and BIG_MB (2048) are described in benches/data.py.
# Peers come from Debian: apt-get install -y miller xmlstarlet time.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
if [ -z "${FERRY_BIN:-}" ]; then
  FERRY_BIN="$target/release/ferry"
  if [ ! -x "$FERRY_BIN" ]; then
    echo "data.sh: building $FERRY_BIN" >&2
    cargo build --release >&2
  fi
fi
FERRY_BIN="$(realpath "$FERRY_BIN")"
[ -x "$FERRY_BIN" ] || { echo "data.sh: $FERRY_BIN is not executable" >&2; exit 2; }
export FERRY_BIN

what="${1:-all}"
if [ "$what" = csv ] || [ "$what" = all ]; then
  if [ -z "${CSV_RAW_BIN:-}" ]; then
    CSV_RAW_BIN="$target/release/examples/csv_raw"
    if [ ! -x "$CSV_RAW_BIN" ]; then
      echo "data.sh: building $CSV_RAW_BIN" >&2
      cargo build --release --example csv_raw >&2
    fi
  fi
  export CSV_RAW_BIN="$(realpath "$CSV_RAW_BIN")"
fi

if [ "$what" = xml ] || [ "$what" = all ]; then
  if [ -z "${XML_RAW_BIN:-}" ]; then
    XML_RAW_BIN="$target/release/examples/xml_raw"
    if [ ! -x "$XML_RAW_BIN" ]; then
      echo "data.sh: building $XML_RAW_BIN" >&2
      cargo build --release --example xml_raw >&2
    fi
  fi
  export XML_RAW_BIN="$(realpath "$XML_RAW_BIN")"
fi

missing=()
case "$what" in csv | all) command -v mlr >/dev/null || missing+=(miller) ;; esac
case "$what" in xml | all) command -v xmlstarlet >/dev/null || missing+=(xmlstarlet) ;; esac
[ -x /usr/bin/time ] || missing+=(time)
command -v sha256sum >/dev/null || missing+=(coreutils)
if [ ${#missing[@]} -gt 0 ]; then
  echo "data.sh: missing ${missing[*]}; install with: apt-get install -y ${missing[*]}" >&2
  exit 2
fi

export BENCH_TMP="${BENCH_TMP:-/tmp/ferry-data-bench.$$}"
mkdir -p "$BENCH_TMP"
cleanup() {
  if [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$BENCH_TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

python3 benches/data.py "$what"
