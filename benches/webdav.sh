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
# The server's folder is in memory (/dev/shm): the server stands for another machine, whose
# disk writes must not be charged to ferry. On one shared ext4 disk ferry's fsyncs would
# wait for the server's 500 MB to be written out as well (data=ordered), and curl, which
# fsyncs nothing, would not.
S=$(mktemp -d -p /dev/shm)
sleep 100000 & PARENT=$!
trap 'kill "$PARENT" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$W" "$S"' EXIT
mkdir -p "$S/root" "$W/dep/jobs"
echo unused > "$S/password"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$PY" tests/webdav_server/server.py "$S" "$PARENT" "$PORT" >/dev/null 2>"$W/server.log" &
for _ in $(seq 300); do [ -f "$S/ports-$PORT.json" ] && break; sleep 0.1; done
[ -f "$S/ports-$PORT.json" ] || { cat "$W/server.log"; exit 1; }
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
  rm -rf "$S/root/open/ferry" "$S/root/open/curl" "$W/dep/var" "$W/dep/in"
  mkdir -p "$S/root/open/curl" "$W/dep/in"
  ln "$W/big.bin" "$W/dep/in/big.bin"
  # Both tools start with the file in the page cache (read just before): otherwise the
  # one that runs first pays the disk reads and warms the cache for the other.
  sync; cat "$W/big.bin" > /dev/null
  t0=$(now)
  (cd "$W/dep" && "$FERRY_BIN" run --once ${FERRY_ARGS:-} 2>"$W/ferry.log") || { cat "$W/ferry.log"; exit 1; }
  t1=$(now)
  cmp -s "$W/big.bin" "$S/root/open/ferry/big.bin" || { echo "ferry's upload differs"; exit 1; }
  sync; cat "$W/big.bin" > /dev/null
  t2=$(now)
  curl -sS -f -o /dev/null -T "$W/big.bin" "http://127.0.0.1:$PORT/open/curl/big.bin"
  t3=$(now)
  cmp -s "$W/big.bin" "$S/root/open/curl/big.bin" || { echo "curl's upload differs"; exit 1; }
  f=$(echo "$t1 - $t0" | bc); c=$(echo "$t3 - $t2" | bc)
  # The upload alone: from the local output's "File done." to the deliverer's "Delivered."
  # (the PUT, the size check and the MOVE), without start-up and the content hash.
  u=$(python3 - "$W/ferry.log" <<'PY'
import re, sys, datetime
t = {}
for line in open(sys.argv[1]):
    for key in ("File done.", "Delivered."):
        if key in line:
            stamp = re.match(r"(\S+?)Z", line).group(1)
            t[key] = datetime.datetime.fromisoformat(stamp)
print(f"{(t['Delivered.'] - t['File done.']).total_seconds():.3f}")
PY
)
  echo "round $r: ferry $(mbps "$f")   curl -T $(mbps "$c")   ferry/curl $(python3 -c "print(f'{$c/$f:.2f}')")   upload alone $(mbps "$u") ($(python3 -c "print(f'{$c/$u:.2f}')") of curl)"
done
