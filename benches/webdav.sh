#!/usr/bin/env bash
# WebDAV upload (issue 17): one big file (default 500 MB) uploaded by ferry (a job with a
# `webdav` output: the whole `ferry run --once`, with its journal, the durable outbox copy,
# MKCOL/PROPFIND checks, the PUT under a hidden name and the MOVE) next to `curl -T` (one
# PUT) to the same local server, in alternating rounds. The server is the test suite's,
# tests/webdav_server/server.py (wsgidav on cheroot, plain HTTP on loopback), from the
# venv scripts/test.sh makes.
#   bash benches/webdav.sh [MB] [ROUNDS]        (defaults 500 3)
# FERRY_BIN picks the binary (default target/release/ferry, built here).
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-500}
ROUNDS=${2:-3}
if [ -z "${FERRY_BIN:-}" ]; then
  cargo build --release --locked -q
  FERRY_BIN=$PWD/target/release/ferry
fi
PY=${FERRY_HTTP_PYTHON:-/opt/ferry-http-venv/bin/python}
W=$(mktemp -d)
sleep 100000 & PARENT=$!
trap 'kill "$PARENT" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$W"' EXIT
mkdir -p "$W/root" "$W/dep/jobs"
echo unused > "$W/password"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$PY" tests/webdav_server/server.py "$W" "$PARENT" "$PORT" >/dev/null 2>"$W/server.log" &
for _ in $(seq 300); do [ -f "$W/ports-$PORT.json" ] && break; sleep 0.1; done
[ -f "$W/ports-$PORT.json" ] || { cat "$W/server.log"; exit 1; }
head -c "$((MB * 1000 * 1000))" /dev/urandom > "$W/big.bin"
cat > "$W/dep/jobs/up.toml" <<TOML
[source]
folder = "in"
settle = "0s"

[[output]]
webdav = "http://127.0.0.1:$PORT/open/ferry"
exists = "overwrite"

[after]
success = "delete"
TOML
mbps() { python3 -c "print(f'{$MB/$1:.0f} MB/s ({$1:.2f} s)')"; }
now() { date +%s.%N; }
for r in $(seq "$ROUNDS"); do
  rm -rf "$W/root/open/ferry" "$W/root/open/curl" "$W/dep/var" "$W/dep/in"
  mkdir -p "$W/root/open/curl" "$W/dep/in"
  ln "$W/big.bin" "$W/dep/in/big.bin"
  sync
  t0=$(now)
  (cd "$W/dep" && "$FERRY_BIN" run --once 2>"$W/ferry.log") || { cat "$W/ferry.log"; exit 1; }
  t1=$(now)
  cmp -s "$W/big.bin" "$W/root/open/ferry/big.bin" || { echo "ferry's upload differs"; exit 1; }
  sync
  t2=$(now)
  curl -sS -f -o /dev/null -T "$W/big.bin" "http://127.0.0.1:$PORT/open/curl/big.bin"
  t3=$(now)
  cmp -s "$W/big.bin" "$W/root/open/curl/big.bin" || { echo "curl's upload differs"; exit 1; }
  f=$(echo "$t1 - $t0" | bc); c=$(echo "$t3 - $t2" | bc)
  echo "round $r: ferry $(mbps "$f")   curl -T $(mbps "$c")   ferry/curl $(python3 -c "print(f'{$c/$f:.2f}')")"
done
