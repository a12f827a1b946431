#!/usr/bin/env bash
# ferry PDF benchmarks, side by side with poppler's pdftotext and pdfdetach.
#
#   bash benches/pdf.sh [text|attachments|huge|all]
#
# FERRY_BIN overrides the binary (default $CARGO_TARGET_DIR/release/ferry, built when
# missing). BENCH_TMP, BENCH_RUNS (3), TEXT_COPIES (20), ATTACH_COPIES (20) and HUGE_MB
# (500) are described in benches/pdf.py. poppler-utils (and time) are installed with
# apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
if [ -z "${FERRY_BIN:-}" ]; then
  FERRY_BIN="$target/release/ferry"
  if [ ! -x "$FERRY_BIN" ]; then
    echo "pdf.sh: building $FERRY_BIN" >&2
    cargo build --release >&2
  fi
fi
FERRY_BIN="$(realpath "$FERRY_BIN")"
export FERRY_BIN

missing=()
command -v pdftotext >/dev/null || missing+=(poppler-utils)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
  echo "pdf.sh: installing ${missing[*]}" >&2
  apt-get install -y "${missing[@]}" >&2
fi
exec python3 benches/pdf.py "${1:-all}"
