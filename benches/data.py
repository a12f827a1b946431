#!/usr/bin/env python3
"""ferry data-path benchmarks, side by side with Miller, xmlstarlet and the csv crate.

Run through benches/data.sh, which finds (or builds) the binaries and cleans up:

    bash benches/data.sh [csv|xml|json|rss|all]

  csv  a CSV of order lines (DATA_MB, default 200 MB): (a) CSV to JSON, ferry vs
       `mlr --icsv --ojson cat`; (b) rename two fields, filter Qty > 5, compute Qty*Price,
       ferry [transform] vs `mlr ... rename then filter then put`; (c) the csv crate's raw
       parsing (examples/csv_raw.rs) on the same file, and ferry's CSV reader alone
       (`csv_raw --ferry`: decoding and records, no output, hashing or fsync); (d) the
       integrity floor: `sha256sum` of the input and of ferry's JSON output (the two hashes
       ferry computes and the peers do not), next to the csv crate's parse.
  xml  a UBL-like XML of invoices (DATA_MB), invoice lines to CSV: ferry vs
       `xmlstarlet sel -t -m //cac:InvoiceLine ...`; then quick-xml's own speed
       (examples/xml_raw.rs: NsReader events with namespaces resolved, counting the
       invoice lines) and ferry's XML reader alone (`xml_raw --ferry`).
  json a JSON array of orders (DATA_MB; nested customer object, numbers, booleans, null,
       an array, escapes) and the same records as JSON Lines, each to CSV. With
       FERRY_BASE_BIN set, that second ferry binary runs too, interleaved with FERRY_BIN
       (an A/B of two builds; issue 12 measured the JSON reader this way).
  rss  peak RSS and time of ferry on a BIG_MB (default 2048 MB) input of each format: CSV to
       JSON, XML to CSV, fixed-width to CSV. One big file at a time, deleted afterwards.

Python standard library only. Inputs come from a deterministic generator (no randomness:
every value is a function of the row number), so every run reads the same bytes. Every
figure is BENCH_RUNS (default 3) runs, ferry and its peer interleaved, reported as median
(min..max). Wall time is measured here; peak RSS and CPU time come from `/usr/bin/time -v`.
Inputs are read once before timing, so all tools read from the page cache.

Environment:
  FERRY_BIN      the ferry binary (data.sh sets it)
  FERRY_BASE_BIN a second ferry binary for the json part's A/B (optional)
  CSV_RAW_BIN    the csv_raw example binary (data.sh sets it)
  XML_RAW_BIN    the xml_raw example binary (data.sh sets it)
  BENCH_TMP      work folder (default /tmp/ferry-data-bench.<pid>)
  BENCH_RUNS     repetitions per figure (default 3)
  DATA_MB        size of the CSV and XML inputs (default 200)
  BIG_MB         size of the rss inputs (default 2048)
  BENCH_RESULTS  where to write the JSON results (default <BENCH_TMP>/../ferry-data-bench-results.json)
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

FERRY = os.environ.get("FERRY_BIN", "target/release/ferry")
FERRY_BASE = os.environ.get("FERRY_BASE_BIN", "")
CSV_RAW = os.environ.get("CSV_RAW_BIN", "")
XML_RAW = os.environ.get("XML_RAW_BIN", "")
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
DATA_MB = float(os.environ.get("DATA_MB", "200"))
BIG_MB = float(os.environ.get("BIG_MB", "2048"))
ROOT = os.path.abspath(os.environ.get("BENCH_TMP") or f"/tmp/ferry-data-bench.{os.getpid()}")
RESULTS_PATH = os.environ.get("BENCH_RESULTS") or os.path.join(
    os.path.dirname(ROOT), "ferry-data-bench-results.json"
)
RESULTS = {}

UBL_CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
UBL_CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
UBL_INV = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"

# ---------------------------------------------------------------------------------------
# Deterministic generators. Values are picked from precomputed tables by cheap integer
# hashes of the row number, so a 2 GB file takes well under a minute.

WORDS = [
    "Schraube", "Mutter", "Dübel", "Scheibe", "Winkel", "Bolzen", "Nagel", "Kabel",
    "Stecker", "Hülse", "Feder", "Lager", "Ventil", "Dichtung", "Rohr", "Klemme",
]
CITIES = ["Köln", "Bonn", "Ulm", "Hamburg", "München", "Berlin", "Essen", "Kiel", "Jena", "Gera"]


def h(i, k):
    return ((i * 2654435761 + k * 40503) ^ (i >> 7)) & 0x7FFFFFFF


def _customers():
    out = []
    for c in range(1000):
        name = f"Kunde {c:04d} {WORDS[c % 16]}handel GmbH"
        if c % 50 == 7:
            name = f'"Meier, Schulz & Co. {c:04d} KG"'  # needs quotes: a comma inside
        elif c % 97 == 3:
            name = f'"Zum ""Anker"" {c:04d}"'  # doubled quotes
        out.append(name)
    return out


def gen_csv(path, size):
    cust = _customers()
    items = [f"ART-{n:05d} {WORDS[n % 16]} M{4 + n % 9}x{10 * (1 + n % 8)}" for n in range(5000)]
    prices = [f"{(n * 37 % 99999) / 100 + 0.05:.2f}" for n in range(1000)]
    dates = [f"2026-{1 + d // 28:02d}-{1 + d % 28:02d}" for d in range(336)]
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("OrderNo,Line,Customer,Item,Qty,Price,Date\n")
        written, i, chunk = 0, 0, 50000
        while written < size:
            rows = []
            for r in range(i, i + chunk):
                x = h(r, 1)
                rows.append(
                    f"{1000000 + r // 4},{1 + r % 4},{cust[(r // 4) % 1000]},{items[x % 5000]},"
                    f"{1 + (x >> 13) % 12},{prices[(x >> 5) % 1000]},{dates[(r // 4000) % 336]}\n"
                )
            s = "".join(rows)
            f.write(s)
            written += len(s.encode())
            i += chunk
    return i


def gen_json(path, size, lines=False):
    """Orders as a JSON array (one object per line) or as JSON Lines: a nested customer
    object, numbers written with their decimals, a boolean, a null, an array of tags and,
    now and then, escapes."""
    cust = _customers()
    items = [f"ART-{n:05d} {WORDS[n % 16]} M{4 + n % 9}x{10 * (1 + n % 8)}" for n in range(5000)]
    prices = [f"{(n * 37 % 99999) / 100 + 0.05:.2f}" for n in range(1000)]
    with open(path, "w", encoding="utf-8", newline="") as f:
        if not lines:
            f.write("[\n")
        written, i, chunk = 0, 0, 20000
        while written < size:
            rows = []
            for r in range(i, i + chunk):
                x = h(r, 5)
                name = json.dumps(cust[(r // 4) % 1000].strip('"'), ensure_ascii=(x % 7 == 0))
                rows.append(
                    f'{{"order": {1000000 + r // 4}, "line": {1 + r % 4}, '
                    f'"customer": {{"name": {name}, "city": "{CITIES[x % 10]}", "vip": {"true" if x % 5 == 0 else "false"}}}, '
                    f'"item": "{items[x % 5000]}", "qty": {1 + (x >> 13) % 12}, '
                    f'"price": {prices[(x >> 5) % 1000]}, "note": null, "tags": ["{WORDS[x % 16]}", {x % 100}]}}'
                )
            sep = "\n" if lines else ",\n"
            s = sep.join(rows)
            if i > 0:
                s = sep + s
            f.write(s)
            written += len(s.encode())
            i += chunk
        f.write("\n" if lines else "\n]\n")
    return i


UNITS = ["H87", "KGM", "MTR", "LTR", "DAY", "C62"]


def gen_xml(path, size):
    lines_tpl = []
    for n in range(2000):
        lines_tpl.append(
            (
                UNITS[n % 6],
                f"{WORDS[n % 16]} M{4 + n % 9} verzinkt {CITIES[n % 10]}er Ausführung",
                f"SKU-{n:06d}",
            )
        )
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<Invoices xmlns="{UBL_INV}" xmlns:cac="{UBL_CAC}" xmlns:cbc="{UBL_CBC}">\n'
        )
        written, inv, nlines = 0, 0, 0
        while written < size:
            parts = []
            for k in range(inv, inv + 2000):
                x = h(k, 2)
                parts.append(
                    f"<Invoice>\n <cbc:ID>INV-{k:08d}</cbc:ID>\n"
                    f" <cbc:IssueDate>2026-{1 + x % 12:02d}-{1 + x % 28:02d}</cbc:IssueDate>\n"
                    f" <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>\n"
                    f" <cac:AccountingSupplierParty><cac:Party><cac:PartyName><cbc:Name>Lieferant {x % 300}"
                    f" AG</cbc:Name></cac:PartyName></cac:Party></cac:AccountingSupplierParty>\n"
                    f" <cac:AccountingCustomerParty><cac:Party><cac:PartyName><cbc:Name>Kunde {x % 1000}"
                    f" GmbH &amp; Co. KG</cbc:Name></cac:PartyName></cac:Party></cac:AccountingCustomerParty>\n"
                )
                for ln in range(1 + x % 8):
                    y = h(k * 8 + ln, 3)
                    unit, name, sku = lines_tpl[y % 2000]
                    qty = 1 + (y >> 11) % 40
                    price = (y >> 3) % 10000
                    amount = qty * price
                    parts.append(
                        f" <cac:InvoiceLine>\n  <cbc:ID>{ln + 1}</cbc:ID>\n"
                        f'  <cbc:InvoicedQuantity unitCode="{unit}">{qty}</cbc:InvoicedQuantity>\n'
                        f'  <cbc:LineExtensionAmount currencyID="EUR">{amount // 100}.{amount % 100:02d}</cbc:LineExtensionAmount>\n'
                        f"  <cac:Item>\n   <cbc:Name>{name}</cbc:Name>\n"
                        f"   <cac:SellersItemIdentification><cbc:ID>{sku}</cbc:ID></cac:SellersItemIdentification>\n"
                        f"  </cac:Item>\n"
                        f'  <cac:Price><cbc:PriceAmount currencyID="EUR">{price // 100}.{price % 100:02d}</cbc:PriceAmount></cac:Price>\n'
                        f" </cac:InvoiceLine>\n"
                    )
                    nlines += 1
                parts.append("</Invoice>\n")
            s = "".join(parts)
            f.write(s)
            written += len(s.encode())
            inv += 2000
        f.write("</Invoices>\n")
    return nlines


# Fixed-width layout: (name, start, length, align, pad)
FIXED_COLUMNS = [
    ("CustomerNo", 1, 8, "right", "0"),
    ("Name", 9, 30, "left", " "),
    ("Street", 39, 30, "left", " "),
    ("Zip", 69, 5, "left", " "),
    ("City", 74, 20, "left", " "),
    ("Country", 94, 2, "left", " "),
    ("CreditLimit", 96, 10, "right", "0"),
    ("Updated", 106, 8, "left", " "),
]


def gen_fixed(path, size):
    names = [f"{WORDS[n % 16]}werk {n:05d} GmbH"[:30].ljust(30) for n in range(3000)]
    streets = [f"{WORDS[n % 16]}straße {1 + n % 180}"[:30].ljust(30) for n in range(3000)]
    cities = [c.ljust(20) for c in CITIES]
    with open(path, "w", encoding="utf-8", newline="") as f:
        written, i, chunk = 0, 0, 50000
        while written < size:
            rows = []
            for r in range(i, i + chunk):
                x = h(r, 4)
                rows.append(
                    f"{r % 100000000:08d}{names[x % 3000]}{streets[(x >> 4) % 3000]}"
                    f"{10000 + x % 89999:05d}{cities[x % 10]}DE{(x >> 9) % 10000000:010d}"
                    f"2026{1 + x % 12:02d}{1 + x % 28:02d}\r\n"
                )
            s = "".join(rows)
            f.write(s)
            written += len(s.encode())
            i += chunk
    return i


# ---------------------------------------------------------------------------------------
# Jobs

CSV_JSON_JOB = """
[source]
folder = "in"
settle = "0s"

[input]
format = "csv"

[[output]]
folder = "out"
name = "{stem}.json"
format = "json"

[after]
success = "keep"
"""

# The transform: Qty -> Quantity and Price -> UnitPrice (renames), rows with Qty > 5,
# Total = Qty * Price. A rename is a field listed under its new name, so every field is
# listed, in Miller's output order.
CSV_TRANSFORM_JOB = """
[source]
folder = "in"
settle = "0s"

[input]
format = "csv"

[transform]
filter = "(Qty | num) > 5"
[transform.fields]
OrderNo = "OrderNo"
Line = "Line"
Customer = "Customer"
Item = "Item"
Quantity = "Qty"
UnitPrice = "Price"
Date = "Date"
Total = "(Qty | num) * (Price | num)"

[[output]]
folder = "out"
name = "{stem}.json"
format = "json"

[after]
success = "keep"
"""

MLR_TRANSFORM = [
    "rename", "Qty,Quantity,Price,UnitPrice",
    "then", "filter", "$Quantity > 5",
    "then", "put", "$Total = $Quantity * $UnitPrice",
]

JSON_CSV_JOB = """
[source]
folder = "in"
settle = "0s"

[input]
format = "{fmt}"

[[output]]
folder = "out"
name = "{{stem}}.csv"
format = "csv"

[after]
success = "keep"
"""

XML_CSV_JOB = f"""
[source]
folder = "in"
settle = "0s"

[input]
format = "xml"
record = "//cac:InvoiceLine"
[input.namespaces]
cac = "{UBL_CAC}"
cbc = "{UBL_CBC}"
[input.fields]
Line = "cbc:ID"
Quantity = "cbc:InvoicedQuantity"
Unit = "cbc:InvoicedQuantity/@unitCode"
Item = "cac:Item/cbc:Name"
Amount = "cbc:LineExtensionAmount"

[[output]]
folder = "out"
name = "{{stem}}.csv"
format = "csv"
header = false

[after]
success = "keep"
"""

XMLSTARLET = [
    "xmlstarlet", "sel", "-N", f"cac={UBL_CAC}", "-N", f"cbc={UBL_CBC}",
    "-t", "-m", "//cac:InvoiceLine",
    "-v", "cbc:ID", "-o", ",",
    "-v", "cbc:InvoicedQuantity", "-o", ",",
    "-v", "cbc:InvoicedQuantity/@unitCode", "-o", ",",
    "-v", "cac:Item/cbc:Name", "-o", ",",
    "-v", "cbc:LineExtensionAmount", "-n",
]


def fixed_job():
    cols = "".join(
        f'[[input.column]]\nname = "{n}"\nstart = {s}\nlength = {l}\nalign = "{a}"\npad = "{p}"\n'
        for n, s, l, a, p in FIXED_COLUMNS
    )
    return f"""
[source]
folder = "in"
settle = "0s"

[input]
format = "fixed"
{cols}
[[output]]
folder = "out"
name = "{{stem}}.csv"
format = "csv"

[after]
success = "keep"
"""


# ---------------------------------------------------------------------------------------
# Running and measuring


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def parse_time_v(path):
    text = open(path).read()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    user = float(re.search(r"User time \(seconds\): ([\d.]+)", text).group(1))
    sys_ = float(re.search(r"System time \(seconds\): ([\d.]+)", text).group(1))
    return rss * 1024, user + sys_


def measured(args, stdout_path=None, cwd=None):
    """Runs args under /usr/bin/time -v; returns (wall s, peak RSS bytes, cpu s)."""
    tfile = os.path.join(ROOT, "time.txt")
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    t0 = time.monotonic()
    p = subprocess.run(
        ["/usr/bin/time", "-v", "-o", tfile, *args],
        stdout=out, stderr=subprocess.PIPE, cwd=cwd, timeout=3600,
    )
    wall = time.monotonic() - t0
    if stdout_path:
        out.close()
    if p.returncode != 0:
        raise SystemExit(f"{args[0]} failed ({p.returncode}): {p.stderr.decode()[-2000:]}")
    rss, cpu = parse_time_v(tfile)
    return wall, rss, cpu


def ferry_once(name, job, input_path, binary=None):
    """A fresh deployment with the input hard-linked into its source folder, `ferry run
    --once` over it; returns (wall, rss, cpu, output path)."""
    d = os.path.join(ROOT, f"dep-{name}")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "jobs"))
    os.makedirs(os.path.join(d, "in"))
    with open(os.path.join(d, "jobs", f"{name}.toml"), "w") as f:
        f.write(job)
    os.link(input_path, os.path.join(d, "in", os.path.basename(input_path)))
    wall, rss, cpu = measured(
        [binary or FERRY, "--log", "warn", "run", "--once", "--jobs", os.path.join(d, "jobs")]
    )
    outs = os.listdir(os.path.join(d, "out"))
    if len(outs) != 1:
        raise SystemExit(f"ferry {name}: expected one output, found {outs} (see {d}/var/error)")
    return wall, rss, cpu, os.path.join(d, "out", outs[0])


def drop(path):
    shutil.rmtree(os.path.dirname(os.path.dirname(path)), ignore_errors=True)


def warm(path):
    with open(path, "rb") as f:
        while f.read(1 << 22):
            pass


def summary(samples, size):
    walls = [s[0] for s in samples]
    rss = [s[1] for s in samples]
    cpu = [s[2] for s in samples]
    mbs = [size / 1e6 / w for w in walls]
    return {
        "runs": len(samples),
        "wall_s": {"median": statistics.median(walls), "min": min(walls), "max": max(walls)},
        "mb_per_s": {"median": statistics.median(mbs), "min": min(mbs), "max": max(mbs)},
        "cpu_s": {"median": statistics.median(cpu), "min": min(cpu), "max": max(cpu)},
        "peak_rss_mb": {"median": statistics.median(rss) / 2**20, "min": min(rss) / 2**20,
                        "max": max(rss) / 2**20},
    }


def fmt(s):
    m = s["mb_per_s"]
    r = s["peak_rss_mb"]
    w = s["wall_s"]
    c = s["cpu_s"]
    return (f"{m['median']:7.1f} MB/s ({m['min']:.1f}..{m['max']:.1f})  wall {w['median']:6.2f} s"
            f"  cpu {c['median']:6.2f} s  peak RSS {r['median']:7.1f} MB ({r['min']:.1f}..{r['max']:.1f})")


def count_json_records(path):
    """Records in a JSON array output: ferry writes one object per line; Miller writes
    `{` alone on a line for each record."""
    n = 0
    with open(path, "rb") as f:
        for line in f:
            if line.startswith(b"{"):
                n += 1
    return n


def count_lines(path):
    n = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 22)
            if not b:
                return n
            n += b.count(b"\n")


def compare(label, runs, size, name_a, fn_a, name_b, fn_b, check=None):
    """Runs fn_a and fn_b RUNS times, interleaved; each returns (wall, rss, cpu, out)."""
    a, b = [], []
    outs = {}
    for i in range(RUNS):
        for name, fn, acc in ((name_a, fn_a, a), (name_b, fn_b, b)):
            if fn is None:
                continue
            wall, rss, cpu, out = fn()
            log(f"  {label} {name} run {i + 1}: {size / 1e6 / wall:.1f} MB/s, {wall:.2f} s, "
                f"cpu {cpu:.2f} s, peak RSS {rss / 2**20:.1f} MB")
            acc.append((wall, rss, cpu))
            if i == RUNS - 1 and check:
                outs[name] = out
            elif out:
                os.unlink(out) if os.path.isfile(out) else None
    res = {name_a: summary(a, size)}
    if b:
        res[name_b] = summary(b, size)
    if check:
        res["check"] = check(outs)
    for o in outs.values():
        if o and os.path.isfile(o):
            os.unlink(o)
    return res


def peer(label, args, out_name, input_path=None):
    out = os.path.join(ROOT, out_name)

    def run():
        wall, rss, cpu = measured(args, stdout_path=out)
        return wall, rss, cpu, out

    return run


# ---------------------------------------------------------------------------------------
# Benchmarks


def bench_csv():
    path = os.path.join(ROOT, "orders.csv")
    log(f"csv: generating {DATA_MB:.0f} MB of order lines")
    t0 = time.monotonic()
    rows = gen_csv(path, int(DATA_MB * 1e6))
    size = os.path.getsize(path)
    log(f"csv: {rows} rows, {size / 1e6:.1f} MB in {time.monotonic() - t0:.1f} s")
    warm(path)
    res = {"input": {"bytes": size, "rows": rows}}

    def check_counts(outs):
        c = {k: count_json_records(v) for k, v in outs.items()}
        return {"records": c, "same": len(set(c.values())) == 1}

    def ferry_fn(name, job):
        def run():
            w, r, c, out = ferry_once(name, job, path)
            return w, r, c, out
        return run

    log("csv (a): CSV to JSON")
    res["to_json"] = compare(
        "csv->json", RUNS, size,
        "ferry", ferry_fn("csvjson", CSV_JSON_JOB),
        "miller", peer("mlr", ["mlr", "--icsv", "--ojson", "cat", path], "mlr.json"),
        check=check_counts,
    )
    log("csv (b): rename, filter, compute")
    res["transform"] = compare(
        "csv transform", RUNS, size,
        "ferry", ferry_fn("csvxf", CSV_TRANSFORM_JOB),
        "miller", peer("mlr", ["mlr", "--icsv", "--ojson", *MLR_TRANSFORM, path], "mlr.json"),
        check=check_counts,
    )
    if CSV_RAW:
        # The same example reads the file with ferry's own reader (decoding and records, no
        # transform, output, hashing or fsync) with --ferry: ferry's reading layer alone.
        log("csv (c): csv crate raw parsing, and ferry's CSV reader alone")
        res["raw"] = compare(
            "csv raw", RUNS, size,
            "csv_crate", lambda: (*measured([CSV_RAW, path]), None),
            "ferry_reader", lambda: (*measured([CSV_RAW, "--ferry", path]), None),
        )
    # (d) The integrity floor: ferry hashes the original and every output (and fsyncs the
    # output); the peers do neither. sha256sum over the input and ferry's JSON output, on
    # one core: what that work costs by itself.
    log("csv (d): sha256sum of the input and of ferry's JSON output")
    _, _, _, out = ferry_once("csvjson", CSV_JSON_JOB, path)
    res["floor"] = compare(
        "sha256", RUNS, size,
        "sha256sum", lambda: (*measured(["sha256sum", path, out]), None),
        "sha2_crate", (lambda: (*measured([CSV_RAW, "--sha256", path, out]), None))
        if CSV_RAW else None,
    )
    res["floor"]["output_bytes"] = os.path.getsize(out)
    drop(out)
    os.unlink(path)
    for d in ("dep-csvjson", "dep-csvxf"):
        shutil.rmtree(os.path.join(ROOT, d), ignore_errors=True)
    RESULTS["csv"] = res
    return res


def bench_xml():
    path = os.path.join(ROOT, "invoices.xml")
    log(f"xml: generating {DATA_MB:.0f} MB of invoices")
    t0 = time.monotonic()
    nlines = gen_xml(path, int(DATA_MB * 1e6))
    size = os.path.getsize(path)
    log(f"xml: {nlines} invoice lines, {size / 1e6:.1f} MB in {time.monotonic() - t0:.1f} s")
    warm(path)
    res = {"input": {"bytes": size, "invoice_lines": nlines}}

    def check_same(outs):
        a = open(outs["ferry"], "rb").read()
        b = open(outs["xmlstarlet"], "rb").read()
        return {"lines": {"ferry": a.count(b"\n"), "xmlstarlet": b.count(b"\n")},
                "identical": a == b}

    res["to_csv"] = compare(
        "xml->csv", RUNS, size,
        "ferry", lambda: ferry_once("xmlcsv", XML_CSV_JOB, path),
        "xmlstarlet", peer("xmlstarlet", [*XMLSTARLET, path], "xmlstarlet.csv"),
        check=check_same,
    )
    if XML_RAW:
        log("xml: quick-xml alone (events, namespaces), and ferry's XML reader alone")
        res["raw"] = compare(
            "xml raw", RUNS, size,
            "quick_xml", lambda: (*measured([XML_RAW, path]), None),
            "ferry_reader", lambda: (*measured([XML_RAW, "--ferry", path]), None),
        )
    os.unlink(path)
    shutil.rmtree(os.path.join(ROOT, "dep-xmlcsv"), ignore_errors=True)
    RESULTS["xml"] = res
    return res


def bench_json():
    res = {}
    for style, fmt_name, lines, fname in (
        ("array", "json", False, "orders.json"),
        ("lines", "jsonl", True, "orders.jsonl"),
    ):
        path = os.path.join(ROOT, fname)
        log(f"json {style}: generating {DATA_MB:.0f} MB of orders")
        rows = gen_json(path, int(DATA_MB * 1e6), lines)
        size = os.path.getsize(path)
        log(f"json {style}: {rows} records, {size / 1e6:.1f} MB")
        warm(path)
        job = JSON_CSV_JOB.format(fmt=fmt_name)

        def check_same(outs):
            c = {k: count_lines(v) for k, v in outs.items()}
            return {"lines": c, "same": len(set(c.values())) == 1}

        r = compare(
            f"json {style}->csv", RUNS, size,
            "ferry", lambda: ferry_once(f"json-{style}", job, path),
            "base", (lambda: ferry_once(f"json-{style}-base", job, path, FERRY_BASE))
            if FERRY_BASE else None,
            check=check_same,
        )
        r["input"] = {"bytes": size, "records": rows}
        res[style] = r
        os.unlink(path)
        for d in (f"dep-json-{style}", f"dep-json-{style}-base"):
            shutil.rmtree(os.path.join(ROOT, d), ignore_errors=True)
    RESULTS["json"] = res
    return res


def bench_rss():
    need = BIG_MB * 1e6 * 3.5  # the input and its (bigger) output
    free = shutil.disk_usage(ROOT).free
    if free < need:
        raise SystemExit(f"rss: needs {need / 1e9:.1f} GB free in {ROOT}, has {free / 1e9:.1f} GB")
    res = {}
    for fmt_name, gen, job, fname in (
        ("csv_to_json", gen_csv, CSV_JSON_JOB, "big.csv"),
        ("xml_to_csv", gen_xml, XML_CSV_JOB, "big.xml"),
        ("fixed_to_csv", gen_fixed, fixed_job(), "big.txt"),
    ):
        path = os.path.join(ROOT, fname)
        log(f"rss {fmt_name}: generating {BIG_MB:.0f} MB")
        t0 = time.monotonic()
        gen(path, int(BIG_MB * 1e6))
        size = os.path.getsize(path)
        log(f"rss {fmt_name}: {size / 1e6:.0f} MB in {time.monotonic() - t0:.1f} s")
        try:
            wall, rss, cpu, out = ferry_once("big", job, path)
            out_size = os.path.getsize(out)
        finally:
            os.unlink(path)
            shutil.rmtree(os.path.join(ROOT, "dep-big"), ignore_errors=True)
        res[fmt_name] = {
            "input_bytes": size, "output_bytes": out_size, "wall_s": wall, "cpu_s": cpu,
            "mb_per_s": size / 1e6 / wall, "peak_rss_mb": rss / 2**20,
        }
        log(f"rss {fmt_name}: {size / 1e6 / wall:.1f} MB/s, {wall:.1f} s, cpu {cpu:.1f} s, "
            f"peak RSS {rss / 2**20:.1f} MB")
    RESULTS["rss"] = res
    return res


def report():
    print()
    print(f"runs per figure: {RUNS}; median (min..max)")
    loads = {k: v["load_before"] for k, v in RESULTS.items() if isinstance(v, dict) and "load_before" in v}
    if loads:
        print("load average before each part: " + ", ".join(f"{k} {v:.1f}" for k, v in loads.items()))
    if "csv" in RESULTS:
        c = RESULTS["csv"]
        print(f"\nCSV input: {c['input']['bytes'] / 1e6:.1f} MB, {c['input']['rows']} rows")
        for k, title in (("to_json", "(a) CSV to JSON"), ("transform", "(b) rename+filter+compute")):
            print(f"  {title}")
            for tool in ("ferry", "miller"):
                print(f"    {tool:10} {fmt(c[k][tool])}")
            ratio = c[k]["ferry"]["mb_per_s"]["median"] / c[k]["miller"]["mb_per_s"]["median"]
            print(f"    ferry/miller throughput: {ratio:.1f}x; records {c[k]['check']['records']}")
        if "raw" in c:
            raw = c["raw"]["csv_crate"]["mb_per_s"]["median"]
            print(f"  (c) csv crate raw parsing, and ferry's CSV reader alone")
            print(f"    {'csv crate':10} {fmt(c['raw']['csv_crate'])}")
            print(f"    {'ferry rdr':10} {fmt(c['raw']['ferry_reader'])}")
            print(f"    csv crate / ferry CSV->JSON end to end: "
                  f"{raw / c['to_json']['ferry']['mb_per_s']['median']:.1f}x; "
                  f"csv crate / ferry reader: {raw / c['raw']['ferry_reader']['mb_per_s']['median']:.1f}x")
        if "floor" in c:
            f = c["floor"]
            hashed = c["input"]["bytes"] + f["output_bytes"]
            w = f["sha256sum"]["wall_s"]["median"]
            print(f"  (d) integrity floor: sha256 of input + JSON output ({hashed / 1e6:.0f} MB), one core")
            print(f"    sha256sum  {w:.2f} s ({hashed / 1e6 / w:.0f} MB/s hashed)")
            if "sha2_crate" in f:
                w = f["sha2_crate"]["wall_s"]["median"]
                print(f"    sha2 crate {w:.2f} s ({hashed / 1e6 / w:.0f} MB/s hashed; ferry's hashing)")
            if "raw" in c:
                parse = c["input"]["bytes"] / 1e6 / raw
                print(f"    csv crate parse {parse:.2f} s + hashes {w:.2f} s = {parse + w:.2f} s of one core; "
                      f"ferry end to end {c['to_json']['ferry']['wall_s']['median']:.2f} s wall, "
                      f"{c['to_json']['ferry']['cpu_s']['median']:.2f} s cpu")
    if "xml" in RESULTS:
        x = RESULTS["xml"]
        print(f"\nXML input: {x['input']['bytes'] / 1e6:.1f} MB, {x['input']['invoice_lines']} invoice lines")
        for tool in ("ferry", "xmlstarlet"):
            print(f"    {tool:10} {fmt(x['to_csv'][tool])}")
        ratio = x["to_csv"]["ferry"]["mb_per_s"]["median"] / x["to_csv"]["xmlstarlet"]["mb_per_s"]["median"]
        print(f"    ferry/xmlstarlet throughput: {ratio:.1f}x; outputs {x['to_csv']['check']}")
        if "raw" in x:
            q = x["raw"]["quick_xml"]["mb_per_s"]["median"]
            xs = x["to_csv"]["xmlstarlet"]["mb_per_s"]["median"]
            print(f"  quick-xml alone (NsReader events, namespaces resolved), and ferry's XML reader alone")
            print(f"    {'quick-xml':10} {fmt(x['raw']['quick_xml'])}")
            print(f"    {'ferry rdr':10} {fmt(x['raw']['ferry_reader'])}")
            print(f"    quick-xml/xmlstarlet: {q / xs:.1f}x (10x xmlstarlet = {10 * xs:.0f} MB/s); "
                  f"quick-xml / ferry end to end: {q / x['to_csv']['ferry']['mb_per_s']['median']:.1f}x")
    if "json" in RESULTS:
        for style, r in RESULTS["json"].items():
            if not isinstance(r, dict):
                continue
            print(f"\nJSON {style} to CSV: {r['input']['bytes'] / 1e6:.1f} MB, {r['input']['records']} records")
            for tool in ("ferry", "base"):
                if tool in r:
                    print(f"    {tool:10} {fmt(r[tool])}")
            if "base" in r:
                a, b = r["ferry"]["cpu_s"]["median"], r["base"]["cpu_s"]["median"]
                print(f"    cpu ferry/base: {a / b:.3f}; outputs {r['check']}")
    if "rss" in RESULTS:
        print("\nBig inputs, ferry, one run each")
        for k, v in RESULTS["rss"].items():
            if not isinstance(v, dict):
                continue
            print(f"    {k:13} {v['input_bytes'] / 1e6:7.0f} MB  {v['mb_per_s']:6.1f} MB/s  "
                  f"wall {v['wall_s']:6.1f} s  cpu {v['cpu_s']:6.1f} s  peak RSS {v['peak_rss_mb']:.1f} MB")


def tool_version(name):
    """The first line of `name --version`; empty when the tool is not installed."""
    if not shutil.which(name):
        return ""
    p = subprocess.run([name, "--version"], capture_output=True, text=True)
    return p.stdout.strip().split("\n")[0]


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    if what in ("gen-csv", "gen-xml", "gen-fixed"):
        # gen-csv FILE MB: just the generator (for profiling by hand)
        {"gen-csv": gen_csv, "gen-xml": gen_xml, "gen-fixed": gen_fixed}[what](
            sys.argv[2], int(float(sys.argv[3]) * 1e6))
        return
    if what not in ("csv", "xml", "json", "rss", "all"):
        raise SystemExit("usage: data.py [csv|xml|json|rss|all]")
    os.makedirs(ROOT, exist_ok=True)
    RESULTS["meta"] = {
        "ferry": FERRY, "runs": RUNS, "data_mb": DATA_MB, "big_mb": BIG_MB,
        "nproc": os.cpu_count(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "mlr": tool_version("mlr"),
        "xmlstarlet": tool_version("xmlstarlet"),
        "ferry_base": FERRY_BASE,
    }
    try:
        # The machine may be shared: the load average before each part goes with it.
        for part, fn in (("csv", bench_csv), ("xml", bench_xml), ("json", bench_json),
                         ("rss", bench_rss)):
            if what in (part, "all"):
                load = os.getloadavg()[0]
                log(f"{part}: load average {load:.2f}")
                fn()
                RESULTS[part]["load_before"] = load
    finally:
        with open(RESULTS_PATH, "w") as f:
            json.dump(RESULTS, f, indent=1)
        report()
        print(f"\nresults: {RESULTS_PATH}")


if __name__ == "__main__":
    main()
