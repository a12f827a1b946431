"""Fills a ferry journal (already created by ferry, so in its real schema) with N files
fast, straight through SQLite: FILES rows over 5 jobs and 30 days, one output and three
events each, about 3% failed. Used by benches/console_search.sh.

    python3 benches/console_search.py JOURNAL N
"""
import hashlib
import sqlite3
import sys
import time

JOBS = ["invoices", "orders", "prices", "returns", "payroll"]


def rows(n, now_ms):
    span = 30 * 24 * 3600 * 1000
    for i in range(1, n + 1):
        job = JOBS[i % len(JOBS)]
        name = f"{job[:3].upper()}-{i:07d}.xml"
        seen = now_ms - span + (span * i) // n
        failed = i % 33 == 0
        h = hashlib.sha256(str(i).encode()).hexdigest()
        yield (i, job, f"/srv/in/{job}/{name}", name, "", 1000 + i % 5000, seen * 1000000,
               h, i // len(JOBS), "failed" if failed else "done", 1, seen, seen + 5,
               seen + 40, seen + 40, "archive",
               None if failed else f"/srv/archive/{job}/{name}",
               "boom: line 3: expected a number" if failed else None,
               f"/srv/error/{job}/{name}" if failed else None)


def main():
    db, n = sys.argv[1], int(sys.argv[2])
    c = sqlite3.connect(db)
    c.execute("PRAGMA journal_mode = WAL")
    c.execute("PRAGMA synchronous = OFF")
    now_ms = int(time.time() * 1000)
    t = time.time()
    c.execute("BEGIN")
    c.executemany(
        "INSERT INTO files (id, job, path, name, dir, size, mtime_ns, hash, seq, state, attempts,"
        " first_seen, taken_at, finished_at, updated_at, disposition, dest, error, error_dest)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows(n, now_ms))
    c.executemany(
        "INSERT INTO outputs (file_id, idx, temp, final, hash, size, policy) VALUES (?,0,'',?,?,?,'fail')",
        ((r[0], r[2].replace("/in/", "/out/"), r[7], r[5]) for r in rows(n, now_ms) if r[9] == "done"))
    c.executemany(
        "INSERT INTO events (file_id, at, state, detail) VALUES (?,?,?,?)",
        ((r[0], r[11] + k, s, d) for r in rows(n, now_ms)
         for k, (s, d) in enumerate([("seen", "ready"), ("taken", "claimed"),
                                     (r[9], r[17] or "delivered")])))
    c.execute("COMMIT")
    c.close()
    print(f"filled {n} files in {time.time() - t:.1f} s", file=sys.stderr)


main()
