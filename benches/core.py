#!/usr/bin/env python3
"""ferry core benchmarks: ferry side by side with an `inotifywait | cp | mv` loop.

Run through benches/core.sh, which finds (or builds) the binary and cleans up:

    bash benches/core.sh [throughput|latency|backlog|idle|crash|all]

Python standard library only. inotify is used through ctypes, so timestamps are taken in
this process the moment the kernel reports an event. Every measurement is repeated
(BENCH_RUNS, default 3) and reported as median (min..max). Every wait is bounded in time.

Environment:
  FERRY_BIN        the ferry binary (core.sh sets it)
  FERRY_BIN_ALT    optional second binary measured alongside (latency, backlog) as "ferry_alt"
  BENCH_TMP        work folder (default /tmp/ferry-bench.<pid>; must be on the disk under test)
  BENCH_RUNS       repetitions per figure (default 3)
  BENCH_KEEP=1     keep the work folder
  BENCH_RESULTS    where to write the JSON results (default <BENCH_TMP>/../ferry-bench-results.json)
  FERRY_LOG        ferry's log level during runs (default info, logged to a file)
  THROUGHPUT_FILES (10000) THROUGHPUT_WORKERS ("8 32 64")
  LATENCY_FILES (200)
  BACKLOG_SIZES ("25000 100000") BACKLOG_PEER_MAX (25000: the cp/mv peer runs only up to this)
  IDLE_JOBS (100) IDLE_SECONDS (60)
  CRASH_FILES (3000) CRASH_KILLS (40) CRASH_MAX_ATTEMPTS (1000)
"""

import ctypes
import hashlib
import json
import os
import random
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import time

FERRY = os.environ.get("FERRY_BIN", "target/release/ferry")
# A second binary (an older commit, say) measured alongside in latency and backlog.
FERRY_ALT = os.environ.get("FERRY_BIN_ALT")
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
FERRY_LOG = os.environ.get("FERRY_LOG", "info")
ROOT = os.path.abspath(os.environ.get("BENCH_TMP") or f"/tmp/ferry-bench.{os.getpid()}")
RESULTS_PATH = os.environ.get("BENCH_RESULTS") or os.path.join(
    os.path.dirname(ROOT), "ferry-bench-results.json"
)
PIDFILE = os.environ.get("BENCH_PIDFILE") or os.path.join(ROOT + ".pgids")
RESULTS = {}

# ---------------------------------------------------------------------------------------
# Processes: every child runs in its own session; its pgid goes to PIDFILE so that core.sh
# can kill exactly these groups even if this script dies.

CHILDREN = []


def spawn(args, **kw):
    p = subprocess.Popen(args, start_new_session=True, **kw)
    CHILDREN.append(p)
    save_pids()
    return p


def save_pids():
    with open(PIDFILE, "w") as f:
        f.write("".join(f"{c.pid}\n" for c in CHILDREN))


def stop(p, sig=signal.SIGTERM, timeout=30.0):
    """Signals a child's process group and waits for the child, escalating to SIGKILL."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(10)
    # The rest of its group (inotifywait of a pipeline, say).
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if p in CHILDREN:
        CHILDREN.remove(p)
        save_pids()
    return p.returncode


def cleanup_children():
    for p in list(CHILDREN):
        stop(p, signal.SIGKILL, 5)


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


# ---------------------------------------------------------------------------------------
# inotify through ctypes

IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_Q_OVERFLOW = 0x4000
_libc = ctypes.CDLL(None, use_errno=True)


class Inotify:
    def __init__(self):
        self.fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.dirs = {}
        self.overflow = False

    def watch(self, path, mask):
        wd = _libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")
        self.dirs[wd] = path

    def read(self, timeout):
        """Events as (time, dir, name, mask); [] after `timeout` seconds without any."""
        r, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not r:
            return []
        now = time.perf_counter()
        try:
            buf = os.read(self.fd, 1 << 20)
        except BlockingIOError:
            return []
        out = []
        i = 0
        while i + 16 <= len(buf):
            wd, mask, _cookie, ln = struct.unpack_from("iIII", buf, i)
            name = buf[i + 16 : i + 16 + ln].rstrip(b"\0").decode("utf-8", "replace")
            i += 16 + ln
            if mask & IN_Q_OVERFLOW:
                self.overflow = True
                continue
            out.append((now, self.dirs.get(wd), name, mask))
        return out

    def close(self):
        os.close(self.fd)


# ---------------------------------------------------------------------------------------
# Helpers


def log(*a):
    print(*a, flush=True)


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def spread(xs, fmt="{:.0f}"):
    """'median (min..max)'"""
    if not xs:
        return "n/a"
    return f"{fmt.format(med(xs))} ({fmt.format(min(xs))}..{fmt.format(max(xs))})"


def pct(xs, p):
    """Nearest-rank percentile."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, -(-p * len(s) // 100) - 1))
    return s[int(k)]


def fresh(name):
    d = os.path.join(ROOT, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    return d


def mkdirs(base, *names):
    out = []
    for n in names:
        p = os.path.join(base, n)
        os.makedirs(p, exist_ok=True)
        out.append(p)
    return out


PAYLOAD = bytes(random.Random(1).getrandbits(8) for _ in range(1024))


def make_files(folder, n, prefix="f", size=1024):
    names = []
    for i in range(n):
        name = f"{prefix}{i:06d}.dat"
        with open(os.path.join(folder, name), "wb") as f:
            f.write(PAYLOAD[:size] if size <= 1024 else PAYLOAD * (size // 1024))
        names.append(name)
    return names


def count_entries(folder):
    try:
        with os.scandir(folder) as it:
            return sum(1 for _ in it)
    except FileNotFoundError:
        return 0


def write_job(jobs_dir, name, src, outs, arch, err, settle="0s", poll="5s", extra_after=""):
    os.makedirs(jobs_dir, exist_ok=True)
    lines = [
        "[source]",
        f'folder = "{src}"',
        'include = ["*"]',
        f'settle = "{settle}"',
        f'poll = "{poll}"',
        "",
    ]
    for folder, exists in outs:
        lines += ["[[output]]", f'folder = "{folder}"', 'name = "{name}"', f'exists = "{exists}"', ""]
    lines += ["[after]", 'success = "archive"', f'archive = "{arch}"', f'error = "{err}"']
    if extra_after:
        lines.append(extra_after)
    with open(os.path.join(jobs_dir, f"{name}.toml"), "w") as f:
        f.write("\n".join(lines) + "\n")


def start_ferry(base, workers=32, once=False, extra=(), binary=None):
    args = [binary or FERRY, "run", "--jobs", os.path.join(base, "jobs"), "--state", os.path.join(base, "state")]
    args += ["--workers", str(workers), "--log", FERRY_LOG]
    if once:
        args.append("--once")
    args += list(extra)
    logf = open(os.path.join(base, "ferry.log"), "ab")
    return spawn(args, stdout=subprocess.DEVNULL, stderr=logf)


PEER_LOOP = r"""
src="$1"; out="$2"; arch="$3"; ready="$4"
inotifywait -m -e close_write,moved_to --format '%f' "$src" 2>"$ready" |
while IFS= read -r f; do
  cp -- "$src/$f" "$out/$f" && mv -- "$src/$f" "$arch/$f"
done
"""


def start_peer(base, src, out, arch):
    ready = os.path.join(base, f"peer-ready-{os.path.basename(src)}")
    p = spawn(["bash", "-c", PEER_LOOP, "peer", src, out, arch, ready], stdout=subprocess.DEVNULL)
    return p, ready


def wait_peer_ready(ready, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if "Watches established" in open(ready).read():
                return
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"inotifywait not ready after {timeout}s ({ready})")


def probe(src, arch, timeout=30):
    """Drops one file and waits until it is archived: the engine is up and watching."""
    name = "probe.dat"
    tmp = os.path.join(os.path.dirname(src), "probe.tmp.x")
    with open(tmp, "wb") as f:
        f.write(b"probe")
    t0 = time.monotonic()
    os.rename(tmp, os.path.join(src, name))
    end = t0 + timeout
    while time.monotonic() < end:
        if os.path.exists(os.path.join(arch, name)):
            return time.monotonic() - t0
        time.sleep(0.005)
    raise RuntimeError(f"probe not archived after {timeout}s: is the engine running?")


def wait_count(ino, n, timeout, folder, prefix="f"):
    """Waits until `n` names with `prefix` arrived in `folder` (inotify; a directory count
    when the event queue overflowed). Returns the perf_counter time of the last one."""
    seen = set()
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        for t, _d, name, _m in ino.read(0.2):
            if name.startswith(prefix) and name not in seen:
                seen.add(name)
                last = t
        if ino.overflow:
            c = count_entries(folder)
            if c >= n:
                return time.perf_counter()
            time.sleep(0.02)
            continue
        if len(seen) >= n:
            return last
    raise RuntimeError(f"only {len(seen)} of {n} files arrived in {folder} within {timeout}s")


def pss_kb(pid):
    """Proportional set size: shared pages split between the processes sharing them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def proc_stat(pid):
    """(utime+stime ticks, VmRSS kB, VmHWM kB) of one process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return ticks, rss, hwm


def group_pids(pgid):
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                pids.append(int(d))
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return pids


def group_stat(pgid):
    """Sums over a process group: (ticks, RSS kB, PSS kB, processes)."""
    ticks = rss = pss = n = 0
    for pid in group_pids(pgid):
        try:
            t, r, _h = proc_stat(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
        ticks += t
        rss += r
        pss += pss_kb(pid)
        n += 1
    return ticks, rss, pss, n


CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------
# 1. Throughput


def tp_setup(name, n):
    base = fresh(name)
    src, out, arch, err, stage = mkdirs(base, "src", "out", "arch", "err", "stage")
    make_files(stage, n)
    names = sorted(os.listdir(stage))
    os.sync()
    return base, src, out, arch, err, stage, names


def drop(stage, src, names):
    for n in names:
        os.rename(os.path.join(stage, n), os.path.join(src, n))


def tp_engine(kind, n, workers=32):
    base, src, out, arch, err, stage, names = tp_setup(f"tp-{kind}-{workers}", n)
    if kind == "ferry":
        write_job(os.path.join(base, "jobs"), "tp", src, [(out, "fail")], arch, err)
        p = start_ferry(base, workers)
    else:
        p, ready = start_peer(base, src, out, arch)
        wait_peer_ready(ready)
    try:
        probe(src, arch)
        ino = Inotify()
        ino.watch(arch, IN_MOVED_TO | IN_CREATE)
        t0 = time.perf_counter()
        drop(stage, src, names)
        t_dropped = time.perf_counter()
        t1 = wait_count(ino, n, 600, arch)
        ino.close()
        if p.poll() is not None:
            raise RuntimeError(f"{kind} exited early with {p.returncode}")
    finally:
        rc = stop(p)
    got_out = count_entries(out) - 1  # minus the probe
    got_arch = count_entries(arch) - 1
    left = count_entries(src)
    rate = n / (t1 - t0)
    ok = got_out == n and got_arch == n and left == 0
    log(f"  {kind:5s} workers={workers if kind == 'ferry' else '-':>3}: {rate:7.0f} files/s "
        f"({t1 - t0:.2f}s, drop took {t_dropped - t0:.2f}s) out={got_out} arch={got_arch} src={left} "
        f"rc={rc}{'' if ok else '  !! INCOMPLETE'}")
    return rate


def tp_raw(n, fsync):
    base, src, out, arch, err, stage, names = tp_setup(f"tp-raw-{int(fsync)}", n)
    drop(stage, src, names)
    os.sync()
    t0 = time.perf_counter()
    raw_loop(src, out, arch, names, fsync)
    t1 = time.perf_counter()
    rate = n / (t1 - t0)
    log(f"  raw python loop, {'fsync per file' if fsync else 'no fsync     '}: {rate:7.0f} files/s ({t1 - t0:.2f}s)")
    return rate


def raw_loop(src, out, arch, names, fsync):
    """The bare file-system work, single-threaded: read, write a temporary file, (fsync,)
    rename it into place, move the original to the archive. No directory fsyncs."""
    for name in names:
        sp = os.path.join(src, name)
        with open(sp, "rb") as f:
            data = f.read()
        tmp = os.path.join(out, "." + name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
        os.close(fd)
        os.rename(tmp, os.path.join(out, name))
        os.rename(sp, os.path.join(arch, name))


def bench_throughput():
    n = int(os.environ.get("THROUGHPUT_FILES", "10000"))
    workers = [int(w) for w in os.environ.get("THROUGHPUT_WORKERS", "8 32 64").split()]
    log(f"\n== throughput: {n} x 1 KiB files renamed into a watched folder at once ==")
    res = {"files": n, "ferry": {}, "peer": [], "raw_fsync": [], "raw_nofsync": []}
    for r in range(RUNS):
        log(f" run {r + 1}/{RUNS}")
        for w in workers:
            res["ferry"].setdefault(str(w), []).append(tp_engine("ferry", n, w))
        res["peer"].append(tp_engine("peer", n))
        res["raw_fsync"].append(tp_raw(n, True))
        res["raw_nofsync"].append(tp_raw(n, False))
    log("\n throughput summary, files/s, median (min..max):")
    for w, xs in res["ferry"].items():
        log(f"  ferry --workers {w:>3}: {spread(xs)}   ({med(xs) / med(res['peer']):.2f}x the peer)")
    log(f"  inotifywait cp/mv loop: {spread(res['peer'])}")
    log(f"  raw python, fsync:      {spread(res['raw_fsync'])}")
    log(f"  raw python, no fsync:   {spread(res['raw_nofsync'])}")
    RESULTS["throughput"] = res


# ---------------------------------------------------------------------------------------
# 2. Latency


def latency_fsync(n):
    """The disk's own latency for one durable small file, paced like the samples above:
    create, write 1 KiB, fsync, close. ferry's path to a visible output holds three of
    these in series (claim commit, output fsync, plan commit)."""
    base = fresh("lat-fsync")
    rng = random.Random(7)
    lat = []
    for i in range(n):
        t0 = time.perf_counter()
        fd = os.open(os.path.join(base, f"s{i}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, PAYLOAD)
        os.fsync(fd)
        os.close(fd)
        lat.append((time.perf_counter() - t0) * 1000)
        time.sleep(rng.uniform(0.02, 0.05))
    p50, p99 = pct(lat, 50), pct(lat, 99)
    log(f"  fsync: p50 {p50:6.2f} ms  p90 {pct(lat, 90):6.2f}  p99 {p99:6.2f}  max {max(lat):6.2f}  (n={len(lat)}, create+write+fsync of 1 KiB)")
    return {"p50": p50, "p90": pct(lat, 90), "p99": p99, "max": max(lat), "samples": lat}


def latency_engine(kind, n):
    if kind == "fsync":
        return latency_fsync(n)
    base = fresh(f"lat-{kind}")
    src, out, arch, err, stage = mkdirs(base, "src", "out", "arch", "err", "stage")
    names = make_files(stage, n, prefix="l")
    os.sync()
    if kind.startswith("ferry"):
        write_job(os.path.join(base, "jobs"), "lat", src, [(out, "fail")], arch, err)
        p = start_ferry(base, binary=FERRY_ALT if kind == "ferry_alt" else FERRY)
        out_mask = IN_MOVED_TO  # ferry renames a complete, fsynced temporary file into place
    else:
        p, ready = start_peer(base, src, out, arch)
        wait_peer_ready(ready)
        out_mask = IN_CLOSE_WRITE  # cp writes the final name; complete when closed
    lat = []
    rng = random.Random(7)
    try:
        probe(src, arch)
        ino = Inotify()
        ino.watch(out, out_mask)
        ino.watch(arch, IN_MOVED_TO)
        time.sleep(0.5)
        for name in names:
            t0 = time.perf_counter()
            os.rename(os.path.join(stage, name), os.path.join(src, name))
            got_out = got_arch = None
            end = time.monotonic() + 10
            while (got_out is None or got_arch is None) and time.monotonic() < end:
                for t, d, nm, m in ino.read(0.5):
                    if nm != name:
                        continue
                    if d == out and m & out_mask and got_out is None:
                        got_out = t
                    elif d == arch:
                        got_arch = t
            if got_out is None:
                raise RuntimeError(f"{kind}: no output for {name} within 10s")
            lat.append((got_out - t0) * 1000)
            # The folder goes idle again before the next file.
            time.sleep(rng.uniform(0.02, 0.05))
        ino.close()
    finally:
        stop(p)
    p50, p99 = pct(lat, 50), pct(lat, 99)
    log(f"  {kind:9s}: p50 {p50:6.2f} ms  p90 {pct(lat, 90):6.2f}  p99 {p99:6.2f}  max {max(lat):6.2f}  (n={len(lat)})")
    return {"p50": p50, "p90": pct(lat, 90), "p99": p99, "max": max(lat), "samples": lat}


def bench_latency():
    n = int(os.environ.get("LATENCY_FILES", "200"))
    log(f"\n== latency: {n} files renamed one at a time into an idle watched folder ==")
    kinds = ["ferry"] + (["ferry_alt"] if FERRY_ALT else []) + ["peer", "fsync"]
    res = {"files": n, **{k: [] for k in kinds}}
    for r in range(RUNS):
        log(f" run {r + 1}/{RUNS}")
        for k in kinds:
            res[k].append(latency_engine(k, n))
    log("\n latency summary, ms, median over runs (min..max):")
    for k in kinds:
        runs = res[k]
        pooled = [x for r in runs for x in r["samples"]]
        log(f"  {k:9s}: p50 {spread([r['p50'] for r in runs], '{:.2f}')}  p99 {spread([r['p99'] for r in runs], '{:.2f}')}"
            f"  | pooled p50 {pct(pooled, 50):.2f} p99 {pct(pooled, 99):.2f}")
    RESULTS["latency"] = {k: ([{kk: vv for kk, vv in r.items() if kk != "samples"} for r in v] if isinstance(v, list) else v)
                          for k, v in res.items()}
    for k in kinds:
        RESULTS["latency"][k + "_pooled"] = {
            "p50": pct([x for r in res[k] for x in r["samples"]], 50),
            "p99": pct([x for r in res[k] for x in r["samples"]], 99),
        }


# ---------------------------------------------------------------------------------------
# 3. Backlog


def parse_time_v(path):
    """(peak RSS kB, user s, system s) from `/usr/bin/time -v`."""
    rss = user = sys_ = None
    for line in open(path, errors="replace"):
        if "Maximum resident set size" in line:
            rss = int(line.rsplit(":", 1)[1])
        elif "User time (seconds)" in line:
            user = float(line.rsplit(":", 1)[1])
        elif "System time (seconds)" in line:
            sys_ = float(line.rsplit(":", 1)[1])
    return rss, user, sys_


def backlog_ferry(n, mode, binary=None):
    base = fresh(f"backlog-{n}")
    src, out, arch, err = mkdirs(base, "src", "out", "arch", "err")
    make_files(src, n)
    os.sync()
    write_job(os.path.join(base, "jobs"), "bl", src, [(out, "fail")], arch, err)
    ino = Inotify()
    ino.watch(out, IN_MOVED_TO)
    tv = os.path.join(base, "time-v.txt")
    args = ["/usr/bin/time", "-v", "-o", tv, binary or FERRY, "run", "--jobs", os.path.join(base, "jobs"),
            "--state", os.path.join(base, "state"), "--workers", "32", "--log", FERRY_LOG]
    if mode == "once":
        args.append("--once")
    logf = open(os.path.join(base, "ferry.log"), "ab")
    t0 = time.perf_counter()
    p = spawn(args, stdout=subprocess.DEVNULL, stderr=logf)
    first = None
    hwm = 0
    try:
        end = time.monotonic() + 30
        while first is None and time.monotonic() < end:
            evs = ino.read(0.5)
            if evs:
                first = evs[0][0]
        ino.close()
        if first is None:
            raise RuntimeError("no first output within 30 s")
        if mode == "once":
            rc = p.wait(1800)
            t1 = time.perf_counter()
        else:
            # Daemon: done when the archive holds every file; sample the peak RSS meanwhile.
            end = time.monotonic() + 1800
            pid = next((c for c in group_pids(p.pid) if c != p.pid), p.pid)
            while time.monotonic() < end:
                try:
                    hwm = max(hwm, proc_stat(pid)[2])
                except FileNotFoundError:
                    pass
                if count_entries(arch) >= n:
                    break
                time.sleep(0.25)
            t1 = time.perf_counter()
            rc = stop(p)
    finally:
        stop(p)
    rss, user, sys_ = parse_time_v(tv)
    rss = rss or hwm
    got = count_entries(arch)
    left = count_entries(src)
    res = {"first_ms": (first - t0) * 1000, "total_s": t1 - t0, "rate": n / (t1 - t0), "rss_mb": rss / 1024,
           "user_s": user, "sys_s": sys_, "rc": rc, "archived": got, "left": left}
    who = "ferry_alt" if binary and binary != FERRY else "ferry"
    log(f"  {who} run{' --once' if mode == 'once' else '       '} n={n:6d}: first output {res['first_ms']:7.1f} ms, total {res['total_s']:6.2f}s "
        f"({res['rate']:.0f} files/s), CPU user {user}s sys {sys_}s, peak RSS {res['rss_mb']:.1f} MB, rc={rc}, archived={got}, left={left}")
    return res


PEER_BATCH = r"""
src="$1"; out="$2"; arch="$3"
for p in "$src"/*; do
  f="${p##*/}"
  cp -- "$p" "$out/$f" && mv -- "$p" "$arch/$f"
done
"""


def backlog_peer(n):
    base = fresh(f"backlog-peer-{n}")
    src, out, arch = mkdirs(base, "src", "out", "arch")
    make_files(src, n)
    os.sync()
    ino = Inotify()
    ino.watch(out, IN_CLOSE_WRITE)
    t0 = time.perf_counter()
    p = spawn(["bash", "-c", PEER_BATCH, "peer", src, out, arch], stdout=subprocess.DEVNULL)
    first = None
    try:
        evs = ino.read(30)
        first = evs[0][0] if evs else None
        ino.close()
        p.wait(3600)
        t1 = time.perf_counter()
    finally:
        stop(p)
    res = {"first_ms": (first - t0) * 1000 if first else None, "total_s": t1 - t0, "rate": n / (t1 - t0)}
    log(f"  bash cp/mv loop  n={n:6d}: first output {res['first_ms']:7.1f} ms, total {res['total_s']:6.2f}s ({res['rate']:.0f} files/s)")
    return res


def backlog_raw(n):
    base = fresh(f"backlog-raw-{n}")
    src, out, arch = mkdirs(base, "src", "out", "arch")
    names = make_files(src, n)
    os.sync()
    t0 = time.perf_counter()
    raw_loop(src, out, arch, names, True)
    t1 = time.perf_counter()
    shutil.rmtree(base)
    res = {"total_s": t1 - t0, "rate": n / (t1 - t0)}
    log(f"  raw python fsync n={n:6d}: total {res['total_s']:6.2f}s ({res['rate']:.0f} files/s)")
    return res


def bench_backlog():
    sizes = [int(s) for s in os.environ.get("BACKLOG_SIZES", "25000 100000").split()]
    peer_max = int(os.environ.get("BACKLOG_PEER_MAX", "25000"))
    modes = os.environ.get("BACKLOG_MODES", "once daemon").split()
    log(f"\n== backlog: files waiting before start, sizes {sizes} ==")
    res = {}
    for n in sizes:
        for r in range(RUNS):
            log(f" n={n} run {r + 1}/{RUNS}")
            for mode in modes:
                res.setdefault(f"ferry_{mode}_{n}", []).append(backlog_ferry(n, mode))
                if FERRY_ALT:
                    res.setdefault(f"ferry_alt_{mode}_{n}", []).append(backlog_ferry(n, mode, FERRY_ALT))
            if n <= peer_max:
                res.setdefault(f"peer_{n}", []).append(backlog_peer(n))
            res.setdefault(f"raw_fsync_{n}", []).append(backlog_raw(n))
        if os.path.exists(os.path.join(ROOT, f"backlog-{n}")):
            shutil.rmtree(os.path.join(ROOT, f"backlog-{n}"))
            shutil.rmtree(os.path.join(ROOT, f"backlog-peer-{n}"), ignore_errors=True)
    log("\n backlog summary, median (min..max):")
    for k, runs in res.items():
        line = (f"  {k:20s} first output {spread([x['first_ms'] for x in runs if x.get('first_ms') is not None], '{:.1f}')} ms,"
                f" total {spread([x['total_s'] for x in runs], '{:.2f}')} s, rate {spread([x['rate'] for x in runs])} files/s")
        if "rss_mb" in runs[0]:
            line += f", peak RSS {spread([x['rss_mb'] for x in runs], '{:.1f}')} MB"
            if all(x.get("user_s") is not None for x in runs):
                line += (f", CPU user {spread([x['user_s'] for x in runs], '{:.1f}')} s"
                         f" sys {spread([x['sys_s'] for x in runs], '{:.1f}')} s")
        log(line)
    keys = [f"ferry_{m}" for m in modes] + ([f"ferry_alt_{m}" for m in modes] if FERRY_ALT else []) + ["raw_fsync"]
    for key in keys:
        mode = key
        a = res.get(f"{key}_{sizes[0]}")
        b = res.get(f"{key}_{sizes[-1]}")
        if a and b and sizes[-1] != sizes[0]:
            k = sizes[-1] / sizes[0]
            t = med([x["total_s"] for x in b]) / med([x["total_s"] for x in a])
            log(f"  scaling ({mode}): {k:.0f}x the files took {t:.2f}x the time (linear = {k:.0f}x, quadratic = {k * k:.0f}x)")
    RESULTS["backlog"] = res


# ---------------------------------------------------------------------------------------
# 4. Idle


PEER_IDLE = r"""
base="$1"; jobs="$2"
for i in $(seq 1 "$jobs"); do
  src="$base/src/j$i"; out="$base/out/j$i"; arch="$base/arch/j$i"
  inotifywait -m -q -e close_write,moved_to --format '%f' "$src" |
  while IFS= read -r f; do cp -- "$src/$f" "$out/$f" && mv -- "$src/$f" "$arch/$f"; done &
done
wait
"""


def idle_run(kind, jobs, secs):
    base = fresh(f"idle-{kind}")
    for i in range(1, jobs + 1):
        mkdirs(base, f"src/j{i}", f"out/j{i}", f"arch/j{i}", f"err/j{i}")
        if kind == "ferry":
            write_job(os.path.join(base, "jobs"), f"j{i:03d}", os.path.join(base, f"src/j{i}"),
                      [(os.path.join(base, f"out/j{i}"), "fail")], os.path.join(base, f"arch/j{i}"),
                      os.path.join(base, f"err/j{i}"))
    if kind == "ferry":
        p = start_ferry(base)
    else:
        p = spawn(["bash", "-c", PEER_IDLE, "peer", base, str(jobs)], stdout=subprocess.DEVNULL)
    # The whole process group: ferry alone, or every bash and inotifywait of the peer.
    sample = lambda: group_stat(p.pid)  # noqa: E731
    try:
        time.sleep(3)  # start-up is not idle time
        if p.poll() is not None:
            raise RuntimeError(f"{kind} exited early")
        t0 = time.monotonic()
        ticks0, rss0, pss0, procs = sample()
        rss_series = [rss0]
        step = secs / 6
        for _ in range(6):
            time.sleep(max(0.0, min(step, secs - (time.monotonic() - t0))))
            rss_series.append(sample()[1])
        ticks1, rss1, pss1, _ = sample()
        wall = time.monotonic() - t0
    finally:
        stop(p)
    cpu = (ticks1 - ticks0) / CLK_TCK / wall * 100
    res = {"cpu_pct": cpu, "rss_start_mb": rss0 / 1024, "rss_end_mb": rss1 / 1024, "pss_start_mb": pss0 / 1024,
           "pss_end_mb": pss1 / 1024, "rss_series_mb": [round(x / 1024, 2) for x in rss_series], "secs": wall,
           "procs": procs}
    log(f"  {kind:5s}: CPU {cpu:.3f}% of one core over {wall:.0f}s, {procs} process(es), RSS {rss0 / 1024:.1f} -> "
        f"{rss1 / 1024:.1f} MB, PSS {pss0 / 1024:.1f} -> {pss1 / 1024:.1f} MB (RSS samples {res['rss_series_mb']})")
    return res


def bench_idle():
    jobs = int(os.environ.get("IDLE_JOBS", "100"))
    secs = float(os.environ.get("IDLE_SECONDS", "60"))
    log(f"\n== idle: {jobs} jobs each watching an empty folder, {secs:.0f}s ==")
    res = {"jobs": jobs, "secs": secs, "ferry": [], "peer": []}
    for r in range(RUNS):
        log(f" run {r + 1}/{RUNS}")
        res["ferry"].append(idle_run("ferry", jobs, secs))
        res["peer"].append(idle_run("peer", jobs, secs))
    log("\n idle summary, median (min..max):")
    for k in ("ferry", "peer"):
        runs = res[k]
        log(f"  {k:5s}: CPU {spread([x['cpu_pct'] for x in runs], '{:.3f}')} %, RSS start {spread([x['rss_start_mb'] for x in runs], '{:.1f}')} MB,"
            f" end {spread([x['rss_end_mb'] for x in runs], '{:.1f}')} MB; PSS start {spread([x['pss_start_mb'] for x in runs], '{:.1f}')} MB,"
            f" end {spread([x['pss_end_mb'] for x in runs], '{:.1f}')} MB")
    RESULTS["idle"] = res


# ---------------------------------------------------------------------------------------
# 5. Crash


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def bench_crash():
    n = int(os.environ.get("CRASH_FILES", "3000"))
    kills = int(os.environ.get("CRASH_KILLS", "40"))
    max_attempts = int(os.environ.get("CRASH_MAX_ATTEMPTS", "1000"))
    seed = int(os.environ.get("CRASH_SEED", str(int(time.time()))))
    log(f"\n== crash: {n} files, 2 outputs (unique), archive; {kills} SIGKILLs at 50-500 ms; seed {seed} ==")
    rng = random.Random(seed)
    base = fresh("crash")
    src, o1, o2, arch, err = mkdirs(base, "src", "out1", "out2", "arch", "err")
    want = {}
    for i in range(n):
        name = f"c{i:05d}.dat"
        # Mostly small files, some large ones so that kills land in the middle of copies.
        size = rng.randint(100, 16384) if rng.random() < 0.5 else rng.randint(65536, 2 << 20)
        data = f"{name}\n".encode() + rng.randbytes(size)
        with open(os.path.join(src, name), "wb") as f:
            f.write(data)
        want[name] = hashlib.sha256(data).hexdigest()
    os.sync()
    extra = f"max_attempts = {max_attempts}" if max_attempts else ""
    write_job(os.path.join(base, "jobs"), "crash", src, [(o1, "unique"), (o2, "unique")], arch, err,
              extra_after=extra)
    landed = 0
    for k in range(kills):
        before = count_entries(src)
        p = start_ferry(base)
        time.sleep(rng.uniform(0.05, 0.5))
        early = p.poll()
        stop(p, signal.SIGKILL)
        after = count_entries(src)
        if before and after and early is None:
            landed += 1
        if (k + 1) % 10 == 0 or k == kills - 1:
            log(f"  kill {k + 1:2d}: source {before} -> {after}, archived {count_entries(arch)}"
                + (f"  (ferry had exited by itself: {early})" if early is not None else ""))
    p = start_ferry(base, once=True)
    try:
        rc = p.wait(600)
    finally:
        stop(p)
    # Verify.
    problems = []
    left = sorted(os.listdir(src))
    if left:
        problems.append(f"{len(left)} entries left in the source: {left[:5]}")
    temps = []
    for dirpath, dirnames, files in os.walk(base):
        if os.path.abspath(dirpath).startswith(os.path.join(base, "state")):
            continue
        temps += [os.path.join(dirpath, f) for f in files if f.startswith(".ferry-")]
    if temps:
        problems.append(f"{len(temps)} .ferry- temporary files: {temps[:5]}")
    counts = {}
    for label, folder in (("out1", o1), ("out2", o2), ("arch", arch)):
        names = set(os.listdir(folder))
        missing = sorted(set(want) - names)
        extra_names = sorted(names - set(want))
        bad = sorted(nm for nm in set(want) & names if sha(os.path.join(folder, nm)) != want[nm])
        counts[label] = {"files": len(names), "missing": len(missing), "extra": len(extra_names), "differ": len(bad)}
        if missing:
            problems.append(f"{label}: {len(missing)} inputs missing, e.g. {missing[:5]}")
        if extra_names:
            problems.append(f"{label}: {len(extra_names)} unexpected files (duplicates?), e.g. {extra_names[:5]}")
        if bad:
            problems.append(f"{label}: {len(bad)} files differ from their input, e.g. {bad[:5]}")
    errs = [f for _d, _s, fs in os.walk(err) for f in fs]
    if errs:
        problems.append(f"{len(errs)} files in the error folder: {errs[:5]}")
    hist = subprocess.run([FERRY, "history", "--jobs", os.path.join(base, "jobs"), "--state",
                           os.path.join(base, "state"), "--json", "--limit", "0"],
                          capture_output=True, text=True, timeout=120)
    done = {}
    states = {}
    attempts = {}
    for line in hist.stdout.splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        states[rec["state"]] = states.get(rec["state"], 0) + 1
        attempts[rec.get("attempts")] = attempts.get(rec.get("attempts"), 0) + 1
        if rec["state"] == "done":
            nm = os.path.basename(rec["path"])
            done[nm] = done.get(nm, 0) + 1
    not_once = sorted(nm for nm in want if done.get(nm, 0) != 1)
    if not_once:
        problems.append(f"history: {len(not_once)} inputs without exactly one 'done' record, e.g. "
                        f"{[(x, done.get(x, 0)) for x in not_once[:5]]}")
    if hist.returncode != 0:
        problems.append(f"ferry history exited {hist.returncode}: {hist.stderr[:300]}")
    if rc != 0:
        problems.append(f"final ferry run --once exited {rc}")
    verdict = "PASS" if not problems else "FAIL"
    log(f"  final run --once rc={rc}; kills that landed with files left in the source: {landed}/{kills}")
    log(f"  counts: {json.dumps(counts)}")
    log(f"  history records by state: {states}; by attempts: {attempts}")
    for pr in problems:
        log(f"  PROBLEM: {pr}")
    log(f"  crash: {verdict} ({n} inputs, {kills} kills, seed {seed})")
    RESULTS.setdefault("crash", []).append({"verdict": verdict, "files": n, "kills": kills, "landed": landed,
                                            "seed": seed, "rc": rc, "counts": counts, "states": states,
                                            "attempts": {str(k): v for k, v in attempts.items()},
                                            "max_attempts": max_attempts, "problems": problems})
    return verdict == "PASS"


# ---------------------------------------------------------------------------------------


def machine():
    info = {"nproc": os.cpu_count(), "kernel": os.uname().release}
    try:
        info["df"] = subprocess.run(["df", "-T", ROOT], capture_output=True, text=True).stdout.splitlines()[-1]
    except Exception:  # noqa: BLE001
        pass
    try:
        info["ferry"] = subprocess.run([FERRY, "--version"], capture_output=True, text=True).stdout.strip()
    except Exception:  # noqa: BLE001
        pass
    return info


def main():
    what = sys.argv[1:] or ["all"]
    order = ["throughput", "latency", "backlog", "idle", "crash"]
    if "all" in what:
        what = order
    for w in what:
        if w not in order:
            sys.exit(f"unknown benchmark {w!r}; choose from {order + ['all']}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    os.makedirs(ROOT, exist_ok=True)
    info = machine()
    RESULTS["machine"] = info
    log(f"ferry benchmarks in {ROOT}: {info}")
    ok = True
    try:
        for w in what:
            r = {"throughput": bench_throughput, "latency": bench_latency, "backlog": bench_backlog,
                 "idle": bench_idle, "crash": bench_crash}[w]()
            if r is False:
                ok = False
    finally:
        cleanup_children()
        try:
            old = json.load(open(RESULTS_PATH)) if os.path.exists(RESULTS_PATH) else {}
        except ValueError:
            old = {}
        old.update(RESULTS)
        with open(RESULTS_PATH, "w") as f:
            json.dump(old, f, indent=1)
        log(f"\nresults written to {RESULTS_PATH}")
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(ROOT, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
