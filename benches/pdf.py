#!/usr/bin/env python3
"""ferry PDF benchmarks, side by side with poppler-utils in the same run.

Run through benches/pdf.sh (builds the release binary, installs poppler-utils if missing):

    bash benches/pdf.sh [text|attachments|huge|all]

- text:        a 200-page text PDF (made here), copied COPIES times; ferry reads every
               page's text (`format = "pdf"`, lines to JSON Lines, through the whole
               pipeline: readiness, journal, outputs) vs `pdftotext FILE OUT.txt` per file.
               Pages per second, median of BENCH_RUNS.
- attachments: the Factur-X corpus (tests/data/pdf/factur-x, 6 PDFs) copied COPIES times;
               ferry `extract = "attachments"` vs `pdfdetach -saveall` per file. Files/s.
- huge:        a 500 MB PDF (one page with text and a 500 MB image stream); ferry's peak
               RSS (/usr/bin/time -v) with the default limit (256 MiB: refused before
               reading) and with `max_size` raised above the file (read in full). No crash
               either way; the outcome is printed.

Python standard library only. Environment: FERRY_BIN, BENCH_TMP, BENCH_RUNS (3),
TEXT_COPIES (20), ATTACH_COPIES (20), HUGE_MB (500).
"""

import os
import re
import shutil
import statistics
import subprocess
import sys
import time

FERRY = os.path.abspath(os.environ.get("FERRY_BIN", "target/release/ferry"))
ROOT = os.path.abspath(os.environ.get("BENCH_TMP") or f"/tmp/ferry-pdf-bench.{os.getpid()}")
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_pdf(path, pages, lines_per_page=45, image_bytes=0):
    """A plain PDF: Helvetica text on every page, optionally one big image on page 1."""
    objs = []  # (number, bytes)

    def add(body):
        objs.append(body)
        return len(objs)

    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    page_ids = []
    pages_id_placeholder = len(objs) + 1
    add(b"")  # the page tree, filled in below
    image = None
    for p in range(pages):
        ops = [b"BT /F1 9 Tf 40 800 Td 11 TL"]
        for i in range(lines_per_page):
            line = f"Page {p + 1} line {i + 1}: Invoice INV-{p:04d}-{i:02d} amount {p * 7 + i}.50 EUR"
            ops.append(b"(" + line.encode() + b") Tj T*")
        ops.append(b"ET")
        if p == 0 and image_bytes:
            ops.append(b"q 200 0 0 200 100 100 cm /Im1 Do Q")
        content = b"\n".join(ops)
        c = add(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
        res = b"<< /Font << /F1 %d 0 R >>" % font
        if p == 0 and image_bytes:
            image = len(objs) + 2
            res += b" /XObject << /Im1 %d 0 R >>" % image
        res += b" >>"
        page_ids.append(add(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] /Resources %s /Contents %d 0 R >>" % (pages_id_placeholder, res, c)))
    if image_bytes:
        side = int((image_bytes // 3) ** 0.5)
        add(None)  # the image, streamed to the file below
    kids = b" ".join(b"%d 0 R" % k for k in page_ids)
    objs[pages_id_placeholder - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids))
    catalog = add(b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id_placeholder)
    offsets = []
    with open(path, "wb") as f:
        f.write(b"%PDF-1.4\n")
        for n, body in enumerate(objs, 1):
            offsets.append(f.tell())
            f.write(b"%d 0 obj\n" % n)
            if body is None:
                size = side * side * 3
                f.write(b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB /BitsPerComponent 8 /Length %d >>\nstream\n" % (side, side, size))
                chunk = bytes(range(256)) * 4096
                left = size
                while left:
                    w = min(left, len(chunk))
                    f.write(chunk[:w])
                    left -= w
                f.write(b"\nendstream")
            else:
                f.write(body)
            f.write(b"\nendobj\n")
        xref = f.tell()
        f.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1))
        for o in offsets:
            f.write(b"%010d 00000 n \n" % o)
        f.write(b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, catalog, xref))


def deployment(name, job):
    d = os.path.join(ROOT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "jobs"))
    os.makedirs(os.path.join(d, "in"))
    with open(os.path.join(d, "jobs", "bench.toml"), "w") as f:
        f.write(job)
    return d


def reset(d):
    for sub in ["out", "var"]:
        shutil.rmtree(os.path.join(d, sub), ignore_errors=True)


def timed(args, cwd=None):
    t = time.perf_counter()
    r = subprocess.run(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    el = time.perf_counter() - t
    if r.returncode not in (0,):
        sys.exit(f"{args[0]} failed ({r.returncode}): {r.stderr.decode()[-2000:]}")
    return el


def ferry_once(d):
    return timed([FERRY, "--log", "warn", "run", "--once"], cwd=d)


def fmt(xs):
    return f"{statistics.median(xs):.3f} s (min {min(xs):.3f}, max {max(xs):.3f})"


def bench_text():
    copies = int(os.environ.get("TEXT_COPIES", "20"))
    d = deployment("text", """
[source]
folder = "in"
include = "*.pdf"
settle = "0s"

[input]
format = "pdf"

[[output]]
folder = "out"
name = "{stem}.jsonl"
format = "jsonl"

[after]
success = "keep"
""")
    src = os.path.join(d, "in", "doc000.pdf")
    make_pdf(src, 200)
    for i in range(1, copies):
        shutil.copy(src, os.path.join(d, "in", f"doc{i:03d}.pdf"))
    pages = 200 * copies
    f_times, p_times = [], []
    for _ in range(RUNS):
        reset(d)
        f_times.append(ferry_once(d))
        # Every page's text made it: 45 lines per page, one record per line.
        n = sum(1 for _ in open(os.path.join(d, "out", "doc000.jsonl")))
        assert n == 200 * 45, n
        out = os.path.join(d, "pdftotext")
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        t = time.perf_counter()
        for i in range(copies):
            subprocess.run(["pdftotext", os.path.join(d, "in", f"doc{i:03d}.pdf"), os.path.join(out, f"doc{i:03d}.txt")], check=True)
        p_times.append(time.perf_counter() - t)
    fm, pm = statistics.median(f_times), statistics.median(p_times)
    print(f"text, {copies} x 200-page PDF ({os.path.getsize(src)} bytes each), {pages} pages:")
    print(f"  ferry run --once (pdf -> jsonl, journal, fsync): {fmt(f_times)} = {pages / fm:.0f} pages/s")
    print(f"  pdftotext, one process per file:                 {fmt(p_times)} = {pages / pm:.0f} pages/s")


def bench_attachments():
    copies = int(os.environ.get("ATTACH_COPIES", "20"))
    d = deployment("attach", """
[source]
folder = "in"
include = "*.pdf"
settle = "0s"

[[output]]
folder = "out"
name = "{stem}/{attachment}"
extract = "attachments"

[after]
success = "keep"
""")
    corpus = os.path.join(REPO, "tests", "data", "pdf", "factur-x")
    files = sorted(f for f in os.listdir(corpus) if f.endswith(".pdf"))
    for i in range(copies):
        for f in files:
            shutil.copy(os.path.join(corpus, f), os.path.join(d, "in", f"{i:03d}-{f}"))
    n = copies * len(files)
    f_times, p_times = [], []
    for _ in range(RUNS):
        reset(d)
        f_times.append(ferry_once(d))
        got = sum(len(fs) for _, _, fs in os.walk(os.path.join(d, "out")))
        assert got == copies * 8, got  # 8 attachments in the 6 files
        out = os.path.join(d, "pdfdetach")
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        for f in sorted(os.listdir(os.path.join(d, "in"))):
            o = os.path.join(out, f)
            os.makedirs(o)
            subprocess.run(["pdfdetach", "-saveall", "-o", o, os.path.join(d, "in", f)], check=True, stdout=subprocess.DEVNULL)
        p_times.append(time.perf_counter() - t)
    fm, pm = statistics.median(f_times), statistics.median(p_times)
    print(f"attachments, Factur-X corpus x {copies} = {n} PDFs:")
    print(f"  ferry run --once (extract = attachments): {fmt(f_times)} = {n / fm:.0f} files/s")
    print(f"  pdfdetach -saveall, one process per file: {fmt(p_times)} = {n / pm:.0f} files/s")


def peak_rss(d):
    r = subprocess.run(["/usr/bin/time", "-v", FERRY, "--log", "warn", "run", "--once"], cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = r.stderr.decode()
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", err).group(1)
    return r.returncode, kb, wall


def bench_huge():
    mb = int(os.environ.get("HUGE_MB", "500"))
    job = """
[source]
folder = "in"
include = "*.pdf"
settle = "0s"
{pdf}
[input]
format = "pdf"

[[output]]
folder = "out"
name = "{{stem}}.jsonl"
format = "jsonl"

[after]
success = "keep"
"""
    d = deployment("huge", job.format(pdf=""))
    src = os.path.join(d, "in", "huge.pdf")
    make_pdf(src, 3, image_bytes=mb * 1024 * 1024)
    size = os.path.getsize(src)
    print(f"huge: one {size / 1e6:.0f} MB PDF (3 text pages, a {mb} MiB image):")
    reset(d)
    code, kb, wall = peak_rss(d)
    err = os.listdir(os.path.join(d, "var", "error", "bench")) if os.path.isdir(os.path.join(d, "var", "error", "bench")) else []
    print(f"  default limits (max_size 256 MiB): exit {code}, peak RSS {kb / 1024:.0f} MiB, {wall}; error folder: {sorted(err)}")
    with open(os.path.join(d, "jobs", "bench.toml"), "w") as f:
        f.write(job.format(pdf=f"\n[pdf]\nmax_size = {size + 1}\nmax_stream = {size + 1}\n"))
    reset(d)
    code, kb, wall = peak_rss(d)
    lines = sum(1 for _ in open(os.path.join(d, "out", "huge.jsonl"))) if os.path.exists(os.path.join(d, "out", "huge.jsonl")) else 0
    print(f"  max_size raised above the file:    exit {code}, peak RSS {kb / 1024:.0f} MiB, {wall}; {lines} text lines read")


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    os.makedirs(ROOT, exist_ok=True)
    try:
        if what in ("text", "all"):
            bench_text()
        if what in ("attachments", "all"):
            bench_attachments()
        if what in ("huge", "all"):
            bench_huge()
    finally:
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(ROOT, ignore_errors=True)


if __name__ == "__main__":
    main()
