#!/usr/bin/env bash
# ferry with huge records: peak RSS, exit code and outcome of `ferry run --once` over one
# file per case, with the default `[input] max_record` (64 MiB).
#
#   bash benches/limits.sh [case ...]
#
# Cases (all of them by default):
#   csv-nonl   1 GiB of CSV without a line break (the header row never ends)
#   csv-field  a CSV whose second row has a 100 MiB field
#   jsonl      JSON Lines, one 300 MiB record
#   json       a JSON array holding one 300 MiB object
#   xml        an XML record element holding 300 MiB of text
#   fixed      a fixed-width file whose one line is 300 MiB long
#   csv-many   a CSV of 6 rows with a 60 MiB field each: under the limit, converted
#
# FERRY_BIN overrides the binary (default target/release/ferry, built when missing).
# BENCH_TMP sets the work folder (default /tmp/ferry-limits-bench.<pid>); the generated
# files are deleted at the end. Peak RSS comes from `/usr/bin/time -v`. Prints one
# Markdown table row per case.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
if [ -z "${FERRY_BIN:-}" ]; then
  FERRY_BIN="$target/release/ferry"
  if [ ! -x "$FERRY_BIN" ]; then
    echo "limits.sh: building $FERRY_BIN" >&2
    cargo build --release >&2
  fi
fi
FERRY_BIN="$(realpath "$FERRY_BIN")"
[ -x /usr/bin/time ] || { echo "limits.sh: needs /usr/bin/time (apt-get install -y time)" >&2; exit 2; }

ROOT="${BENCH_TMP:-/tmp/ferry-limits-bench.$$}"
mkdir -p "$ROOT"
trap 'rm -rf "$ROOT"' EXIT

MiB=$((1024 * 1024))

# x repeated $1 times, no line break.
xs() { head -c "$1" /dev/zero | tr '\0' x; }

# Writes the input of case $1 to $2.
generate() {
  case "$1" in
    csv-nonl) xs $((1024 * MiB)) >"$2" ;;
    csv-field) { printf 'a,b\n1,'; xs $((100 * MiB)); printf '\n2,y\n'; } >"$2" ;;
    csv-many)
      printf 'a,b\n' >"$2"
      for i in 1 2 3 4 5 6; do { printf '%d,' "$i"; xs $((60 * MiB)); printf '\n'; } >>"$2"; done
      ;;
    jsonl) { printf '{"a":"'; xs $((300 * MiB)); printf '"}\n'; } >"$2" ;;
    json) { printf '[{"a":"'; xs $((300 * MiB)); printf '"}]\n'; } >"$2" ;;
    xml) { printf '<r><rec><a>'; xs $((300 * MiB)); printf '</a></rec></r>\n'; } >"$2" ;;
    fixed) { xs $((300 * MiB)); printf '\n'; } >"$2" ;;
  esac
}

# The [input] table of case $1.
input_table() {
  case "$1" in
    csv-*) printf 'format = "csv"\n' ;;
    jsonl) printf 'format = "jsonl"\n' ;;
    json) printf 'format = "json"\n' ;;
    xml) printf 'format = "xml"\nrecord = "/r/rec"\n[input.fields]\nA = "a"\n' ;;
    fixed) printf 'format = "fixed"\n[[input.column]]\nname = "A"\nstart = 1\nlength = 10\n' ;;
  esac
}

ext() {
  case "$1" in csv-*) echo csv ;; *) echo "$1" | sed 's/fixed/txt/' ;; esac
}

run_case() {
  local c="$1" d="$ROOT/dep-$1"
  rm -rf "$d" && mkdir -p "$d/jobs" "$d/in"
  {
    printf '[source]\nfolder = "in"\nsettle = "0s"\n\n[input]\n'
    input_table "$c"
    printf '\n[[output]]\nfolder = "out"\nname = "{stem}.csv"\nformat = "csv"\n\n[after]\nsuccess = "keep"\n'
  } >"$d/jobs/big.toml"
  generate "$c" "$d/in/big.$(ext "$c")"
  local size rc=0
  size=$(stat -c %s "$d/in/big.$(ext "$c")")
  (cd "$d" && /usr/bin/time -v -o "$d/time.txt" "$FERRY_BIN" --log warn run --once \
    --jobs jobs >"$d/stdout" 2>"$d/stderr") || rc=$?
  local rss wall outcome
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$d/time.txt")
  wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$d/time.txt")
  local report
  report=$(find "$d/var/error" -name '*.error.txt' 2>/dev/null | head -1 || true)
  if [ -n "$report" ]; then
    outcome="failed: $(grep -oE 'record [0-9]+ \(line [0-9]+, byte [0-9]+\): [^;]*' "$report" | head -1)"
  elif [ -d "$d/out" ] && [ -n "$(ls -A "$d/out")" ]; then
    outcome="done, $(ls "$d/out" | wc -l) output(s)"
  else
    outcome="no output, no error report"
  fi
  printf '| %s | %d MB | %d MB | %s | %s | %s |\n' "$c" $((size / 1000000)) $((rss / 1024)) \
    "$wall" "$rc" "$outcome"
  rm -rf "$d"
}

cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(csv-nonl csv-field jsonl json xml fixed csv-many)
echo "ferry: $FERRY_BIN" >&2
printf '| case | input | peak RSS | wall | exit | outcome |\n|---|---|---|---|---|---|\n'
for c in "${cases[@]}"; do
  run_case "$c"
done
