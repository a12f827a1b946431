#!/usr/bin/env python3
"""ferry's FTP source and destination side by side with lftp, against a real vsftpd on
127.0.0.1 (started here, on free ports, with its own config). Python standard library only.

    bash benches/ftp.sh            # builds ferry --release, then runs this

Cases (each run BENCH_RUNS times, default 3, reported as median (min..max)):
  upload-small  N files of 10 KiB (FTP_FILES, default 1000) from a local folder to the
                server: `ferry run --once` (folder source, FTP output) vs
                `lftp -e "mput -O inbound ..."`; files/s.
                FTP_CONNECTIONS=N sets `connections` of ferry's output (unset: the
                default). FTP_UPLOAD_SUCCESS=archive|delete sets `[after] success`
                (default keep; the originals are then made again before each ferry run).
  upload-big    one file of FTP_BIG_MB (default 500) MB; MB/s.
                Uploads also run `lftp-same`: lftp doing what ferry does, uploading
                under a temporary name renamed when complete (`set xfer:use-temp-file
                yes`), and with FTP_UPLOAD_SUCCESS=delete deleting the sources (`mput -E`).
  pickup        N files of 10 KiB taken from the server and deleted there:
                `ferry run --once` (FTP source, success = "delete") vs
                `lftp -e "mirror --Remove-source-files ..."`; files/s.
FERRY_BIN_B=path runs a second ferry binary in the same loop (A/B, interleaved: ferry,
ferry-b, lftp, ferry, ...). The load average is printed at the end.
Passive mode, binary transfers. ferry's time is
the whole run: local processing, journal (fsync per file), temp name + rename per upload.
Needs root (a local FTP account is created: ferryftp), vsftpd and lftp (scripts/test.sh
installs them).
"""

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

FERRY = os.path.abspath(os.environ.get("FERRY_BIN", "target/release/ferry"))
# A second ferry binary (e.g. the previous version), run in the same loop: A/B interleaved.
FERRY_B = os.environ.get("FERRY_BIN_B")
TOOLS = ["ferry"] + (["ferry-b"] if FERRY_B else []) + ["lftp"]
# For uploads, lftp also run the way ferry works: under a temporary name renamed when
# complete (`xfer:use-temp-file`), and deleting the sources when ferry does (`mput -E`).
UP_TOOLS = TOOLS + ["lftp-same"]
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
N = int(os.environ.get("FTP_FILES", "1000"))
BIG_MB = int(os.environ.get("FTP_BIG_MB", "500"))
# `connections` of ferry's FTP output (lftp's mput uses one).
# Unset: the job does not say (ferry's default applies).
CONNS = os.environ.get("FTP_CONNECTIONS")
# `[after] success` of the upload jobs (the originals are made again before each run).
UP_SUCCESS = os.environ.get("FTP_UPLOAD_SUCCESS", "keep")
ROOT = os.path.abspath(os.environ.get("BENCH_TMP") or f"/tmp/ferry-ftp-bench.{os.getpid()}")
USER, PW = "ferryftp", "ferry-secret-pw"


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, capture_output=True, text=True, **kw)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} did not open")


class Vsftpd:
    def __init__(self, base):
        self.base = base
        self.root = os.path.join(base, "root")
        os.makedirs(self.root, exist_ok=True)
        os.makedirs(os.path.join(base, "empty"), exist_ok=True)
        sh(f"id {USER} >/dev/null 2>&1 || useradd -M -d / -s /bin/sh {USER}; "
           f"usermod -d / {USER}; echo '{USER}:{PW}' | chpasswd")
        p = base
        while len(p) > 4:
            os.chmod(p, 0o755)
            p = os.path.dirname(p)
        os.chmod(self.root, 0o777)
        self.port = free_port()
        conf = os.path.join(base, "vsftpd.conf")
        with open(conf, "w") as f:
            f.write(f"""listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port={self.port}
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
local_root={self.root}
chroot_local_user=YES
allow_writeable_chroot=YES
pam_service_name=vsftpd
pasv_enable=YES
pasv_address=127.0.0.1
pasv_min_port=41000
pasv_max_port=41999
secure_chroot_dir={base}/empty
seccomp_sandbox=NO
delay_failed_login=0
max_per_ip=0
max_clients=0
xferlog_enable=NO
""")
        self.proc = subprocess.Popen(["/usr/sbin/vsftpd", conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self):
        self.proc.kill()
        self.proc.wait()

    def clear(self, rel):
        p = os.path.join(self.root, rel)
        shutil.rmtree(p, ignore_errors=True)
        os.makedirs(p)
        os.chmod(p, 0o777)


def make_files(folder, n, size):
    os.makedirs(folder, exist_ok=True)
    block = os.urandom(size)
    for i in range(n):
        with open(os.path.join(folder, f"f{i:05}.dat"), "wb") as f:
            f.write(block[i % 97:] + block[: i % 97])


def ferry_deploy(base, job):
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(os.path.join(base, "jobs"))
    with open(os.path.join(base, "jobs", "bench.toml"), "w") as f:
        f.write(job)


def run_ferry(base, binary=FERRY):
    env = dict(os.environ, FTP_PW=PW, RUST_LOG="warn")
    t = time.perf_counter()
    r = subprocess.run([os.path.abspath(binary), "run", "--once"], cwd=base, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"ferry failed: {r.stderr[-2000:]}")
    return dt


def run_lftp(script, cwd):
    t = time.perf_counter()
    r = subprocess.run(["lftp", "-u", f"{USER},{PW}", "-p", str(SRV.port),
                        "-e", "set ftp:passive-mode on; set ftp:ssl-allow no; " + script + "; quit",
                        "127.0.0.1"], cwd=cwd, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"lftp failed: {r.stderr[-2000:]}")
    return dt


def count(folder):
    return len([n for n in os.listdir(folder) if not n.startswith(".")])


def upload(n, size, label, unit):
    src = os.path.join(ROOT, "src")
    total_mb = n * size / 1e6
    res = {t: [] for t in UP_TOOLS}
    conns = f"connections = {CONNS}\n" if CONNS else ""
    made = False
    for _ in range(RUNS):
        for tool in UP_TOOLS:
            if not made or (UP_SUCCESS != "keep" and tool != "lftp") or count(src) != n:
                shutil.rmtree(src, ignore_errors=True)
                make_files(src, n, size)
                sh("sync")
                made = True
            SRV.clear("inbound")
            if tool == "lftp":
                dt = run_lftp(f"mput -O inbound {src}/*", ROOT)
            elif tool == "lftp-same":
                remove = "-E " if UP_SUCCESS == "delete" else ""
                dt = run_lftp(f"set xfer:use-temp-file yes; mput {remove}-O inbound {src}/*", ROOT)
            else:
                base = os.path.join(ROOT, "ferry")
                ferry_deploy(base, f"""[source]
folder = "{src}"
settle = "0s"

[[output]]
ftp = "ftp://{USER}@127.0.0.1:{SRV.port}/inbound"
password = "${{env:FTP_PW}}"
{conns}
[after]
success = "{UP_SUCCESS}"
""")
                dt = run_ferry(base, FERRY if tool == "ferry" else FERRY_B)
            assert count(os.path.join(SRV.root, "inbound")) == n, f"{tool} delivered everything"
            res[tool].append(dt)
    return report(label, res, n if unit == "files/s" else total_mb, unit)


def pickup(n):
    res = {t: [] for t in TOOLS}
    for _ in range(RUNS):
        for tool in TOOLS:
            SRV.clear("out")
            make_files(os.path.join(SRV.root, "out"), n, 10 * 1024)
            sh(f"chmod -R a+rw '{SRV.root}/out'")
            if tool == "lftp":
                dest = os.path.join(ROOT, "lftp-got")
                shutil.rmtree(dest, ignore_errors=True)
                dt = run_lftp(f"mirror --Remove-source-files out {dest}", ROOT)
                assert count(dest) == n and count(os.path.join(SRV.root, "out")) == 0
            else:
                base = os.path.join(ROOT, "ferry")
                ferry_deploy(base, f"""[source]
ftp = "ftp://{USER}@127.0.0.1:{SRV.port}/out"
password = "${{env:FTP_PW}}"
settle = "0s"
success = "delete"

[[output]]
folder = "got"

[after]
success = "delete"
""")
                dt = run_ferry(base, FERRY if tool == "ferry" else FERRY_B)
                assert count(os.path.join(base, "got")) == n and count(os.path.join(SRV.root, "out")) == 0
            res[tool].append(dt)
    return report("pickup", res, n, "files/s")


def report(label, res, amount, unit):
    out = {}
    for tool, times in res.items():
        rates = sorted(amount / t for t in times)
        out[tool] = {"median": statistics.median(rates), "min": rates[0], "max": rates[-1],
                     "seconds": [round(t, 3) for t in times]}
        print(f"{label:13} {tool:7} {statistics.median(rates):9.1f} {unit} "
              f"({rates[0]:.1f}..{rates[-1]:.1f})  seconds {out[tool]['seconds']}", flush=True)
    return out


if __name__ == "__main__":
    cases = sys.argv[1:] or ["upload-small", "upload-big", "pickup"]
    os.makedirs(ROOT, exist_ok=True)
    SRV = Vsftpd(os.path.join(ROOT, "srv"))
    results = {}
    try:
        if "upload-small" in cases:
            results["upload-small"] = upload(N, 10 * 1024, "upload-small", "files/s")
        if "upload-big" in cases:
            results["upload-big"] = upload(1, BIG_MB * 1_000_000, "upload-big", "MB/s")
        if "pickup" in cases:
            results["pickup"] = pickup(N)
    finally:
        SRV.stop()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(ROOT, ignore_errors=True)
    print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(json.dumps(results))
