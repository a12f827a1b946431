#!/usr/bin/env bash
# The retry queue (issue 14): N files (default 10,000) queued behind a dead destination that
# comes back. The destination is a tmpfs remounted read-only (so this needs root). Measures:
#   - the time to queue the N files (each is tried once and queued),
#   - the CPU seconds and memory of the daemon over DEAD seconds of deadness (default 60),
#     from /proc/PID/stat and /proc/PID/status: flat means no busy retry loop,
#   - the tries made meanwhile (one probe per pause: "Destination paused" lines),
#   - the time to drain the queue once the share is writable again.
#
#   sudo bash benches/retry.sh            N=2000 DEAD=20 bash benches/retry.sh
#
# FERRY_BIN overrides the binary (default target/release/ferry, else target/debug/ferry).
# The work folder (/tmp/ferry-retry-bench.PID) and the mount are removed at the end, and the
# daemon it started is stopped, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

N="${N:-10000}"
DEAD="${DEAD:-60}"
EVERY="${EVERY:-1s}"
MAX="${MAX:-10s}"
POLL="${POLL:-5s}"
if [ -z "${FERRY_BIN:-}" ]; then
  FERRY_BIN="${CARGO_TARGET_DIR:-target}/release/ferry"
  [ -x "$FERRY_BIN" ] || FERRY_BIN="${CARGO_TARGET_DIR:-target}/debug/ferry"
fi
FERRY_BIN="$(realpath "$FERRY_BIN")"
[ -x "$FERRY_BIN" ] || { echo "retry.sh: build ferry first (cargo build --release)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "retry.sh: needs root (it mounts a tmpfs)" >&2; exit 2; }

ROOT="/tmp/ferry-retry-bench.$$"
PID=""
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  umount -l "$ROOT/mnt" 2>/dev/null || true
  rm -rf "$ROOT"
}
trap cleanup EXIT

mkdir -p "$ROOT/jobs" "$ROOT/in" "$ROOT/mnt" "$ROOT/var"
mount -t tmpfs -o size=512m tmpfs "$ROOT/mnt"
mkdir -p "$ROOT/mnt/out"
cat >"$ROOT/jobs/share.toml" <<EOF
[source]
folder = "in"
settle = "0s"
poll = "$POLL"

[[output]]
folder = "mnt/out"

[after]
success = "delete"

[retry]
every = "$EVERY"
max = "$MAX"
for = "forever"
EOF

now() { date +%s.%N; }
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status"; }
queued() {
  "$FERRY_BIN" --jobs "$ROOT/jobs" status --json 2>/dev/null |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)["retry"]["queued"]))'
}
count_out() { find "$ROOT/mnt/out" -maxdepth 1 -type f ! -name '.*' | wc -l; }
HZ=$(getconf CLK_TCK)

mount -o remount,ro "$ROOT/mnt"
python3 - "$ROOT" "$N" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
os.makedirs(f"{root}/staging", exist_ok=True)
line = b"0123456789abcdef" * 64  # 1 KiB
for i in range(n):
    p = f"{root}/staging/f{i:06}.dat"
    with open(p, "wb") as f:
        f.write(line)
    os.rename(p, f"{root}/in/f{i:06}.dat")
EOF

t0=$(now)
(cd "$ROOT" && exec "$FERRY_BIN" --jobs jobs run) 2>"$ROOT/var/ferry.log" &
PID=$!
until [ "$(queued)" -ge "$N" ]; do sleep 1; done
t_queued=$(now)
queue_s=$(echo "$t_queued - $t0" | bc)

# Deadness: CPU and memory of the daemon with N files queued and the share still read-only.
c0=$(ticks); r0=$(rss_kb); p0=$(grep -c "Destination paused" "$ROOT/var/ferry.log" || true)
samples="$r0"
every10="$r0"
for i in $(seq 1 "$DEAD"); do
  sleep 1
  samples="$samples $(rss_kb)"
  [ $((i % 10)) -eq 0 ] && every10="$every10 $(rss_kb)"
done
c1=$(ticks); r1=$(rss_kb); p1=$(grep -c "Destination paused" "$ROOT/var/ferry.log" || true)
cpu_s=$(echo "scale=2; ($c1 - $c0) / $HZ" | bc)
cpu_pct=$(echo "scale=2; 100 * ($c1 - $c0) / $HZ / $DEAD" | bc)
rss_min=$(echo "$samples" | tr ' ' '\n' | sort -n | head -1)
rss_max=$(echo "$samples" | tr ' ' '\n' | sort -n | tail -1)

# Back: time until every file is on the share.
mount -o remount,rw "$ROOT/mnt"
t_back=$(now)
until [ "$(count_out)" -ge 1 ]; do sleep 0.05; done
t_first=$(now)
until [ "$(count_out)" -ge "$N" ]; do sleep 0.2; done
t_drained=$(now)
probe_s=$(echo "$t_first - $t_back" | bc)
drain_s=$(echo "$t_drained - $t_first" | bc)
left=$(find "$ROOT/in" -type f ! -name '.*' | wc -l)
dupes=$(find "$ROOT/mnt/out" -type f -name '*_1.*' | wc -l)

echo "ferry: $FERRY_BIN ($("$FERRY_BIN" --version))"
echo "files: $N x 1 KiB, [retry] every = \"$EVERY\", max = \"$MAX\", poll = \"$POLL\"; deadness measured over ${DEAD}s"
echo "RSS every 10 s while dead (KiB): $every10"
echo
echo "| queue $N files (each tried once) | CPU while dead | tries while dead | RSS while dead (start -> end, min..max) | first delivery after return (the next probe) | drain after the probe | files in the share / left in source / duplicates |"
echo "|---|---|---|---|---|---|---|"
printf '| %.1f s | %s CPU s in %s s (%s%% of one core) | %s | %s -> %s KiB (%s..%s) | %.1f s | %.1f s (%.0f files/s) | %s / %s / %s |\n' \
  "$queue_s" "$cpu_s" "$DEAD" "$cpu_pct" "$((p1 - p0))" "$r0" "$r1" "$rss_min" "$rss_max" \
  "$probe_s" "$drain_s" "$(echo "$N / $drain_s" | bc -l)" "$(count_out)" "$left" "$dupes"
