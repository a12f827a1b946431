#!/usr/bin/env python3
"""ferry mail benchmarks, side by side with a peer in the same run:

    FERRY_BIN=target/release/ferry python3 benches/mail.py [imap|smtp|all]

  imap  N (default 1,000) messages with one 50 KiB attachment each in a mailbox (dovecot,
        Maildir, IMAPS with the test CA): attachments per second taken by
        `ferry run --once` (job: mailbox source, `include = ["*.csv"]`, `success = "seen"`,
        each attachment staged, journaled, copied to an output folder and archived, all
        fsynced) versus the peer: a Python imaplib script (stdlib) that logs in over TLS,
        searches UNSEEN, fetches each message with BODY.PEEK[], parses it with the email
        package, writes each matching attachment to a folder (no fsync) and marks the
        message \\Seen. Each tool reads its own copy of the mailbox (users alice, bob).
  smtp  N files of 2 KiB sent by SMTP to postfix (submission port: STARTTLS + AUTH), one
        mail per file with the file base64-attached: messages per second by
        `ferry run --once` (email output, outbox, journal) versus `curl smtp://` in a loop
        (one curl process per message, --ssl-reqd, same CA, same credentials, a prebuilt
        MIME message per file). Both are timed until postfix accepted every message.

Servers come from scripts/mail-servers.sh (127.0.0.1 only). BENCH_RUNS (default 3) runs
per figure, interleaved, median (min..max). Python standard library only.
"""

import email
import email.policy
import imaplib
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FERRY = os.environ.get("FERRY_BIN", os.path.join(ROOT, "target/release/ferry"))
N = int(os.environ.get("BENCH_N", "1000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
BASE = int(os.environ.get("BENCH_PORT", "24100"))


def servers_start(d):
    subprocess.run(["bash", os.path.join(ROOT, "scripts/mail-servers.sh"), "start", d, str(BASE)], check=True)


def servers_stop(d):
    subprocess.run(["bash", os.path.join(ROOT, "scripts/mail-servers.sh"), "stop", d], check=False)


def payload(i, size):
    line = ("%08d;" % i + "x" * 70 + "\n").encode()
    return (line * (size // len(line) + 1))[:size]


def message(i, att):
    import base64
    b64 = base64.encodebytes(att).decode().replace("\n", "\r\n")
    return (
        "From: supplier@example.test\r\nTo: alice@example.test\r\nSubject: Orders %d\r\n"
        "Message-ID: <bench-%d@example.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nOrders attached.\r\n"
        "--B\r\nContent-Type: text/csv; name=\"orders-%d.csv\"\r\nContent-Disposition: attachment; filename=\"orders-%d.csv\"\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n%s--B--\r\n" % (i, i, i, i, b64)
    ).encode()


def fill(d, user):
    md = os.path.join(d, "mail", user, "Maildir")
    for sub in ("new", "cur"):
        for f in os.listdir(os.path.join(md, sub)):
            os.unlink(os.path.join(md, sub, f))
    for f in ("dovecot.index", "dovecot.index.cache", "dovecot.index.log", "dovecot-uidlist"):
        try:
            os.unlink(os.path.join(md, f))
        except FileNotFoundError:
            pass
    for i in range(N):
        p = os.path.join(md, "tmp", "b%d" % i)
        with open(p, "wb") as f:
            f.write(message(i, payload(i, 50 * 1024)))
        os.rename(p, os.path.join(md, "new", "b%d" % i))
    subprocess.run(["chown", "-R", "65534:65534", os.path.join(d, "mail", user)], check=True)


def ferry_imap(d, work):
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "jobs"))
    with open(os.path.join(work, "jobs", "orders.toml"), "w") as f:
        f.write(
            '[source]\nmailbox = "imaps://alice@127.0.0.1:%d/INBOX"\npassword = "${env:BENCH_PW}"\n'
            'ca_file = "%s/tls/ca.pem"\ninclude = ["*.csv"]\nsuccess = "seen"\n\n[[output]]\nfolder = "var/out"\n'
            % (BASE + 1, d)
        )
    t = time.monotonic()
    subprocess.run([FERRY, "run", "--once"], cwd=work, env=dict(os.environ, BENCH_PW="secret"),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dt = time.monotonic() - t
    got = len(os.listdir(os.path.join(work, "var", "out")))
    assert got == N, got
    return dt


def peer_imap(d, work):
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    ctx = ssl.create_default_context(cafile=os.path.join(d, "tls", "ca.pem"))
    t = time.monotonic()
    m = imaplib.IMAP4_SSL("127.0.0.1", BASE + 1, ssl_context=ctx)
    m.login("bob", "secret")
    m.select("INBOX")
    _, data = m.uid("SEARCH", None, "UNSEEN")
    uids = data[0].split()
    got = 0
    for uid in uids:
        _, msg = m.uid("FETCH", uid, "(BODY.PEEK[])")
        parsed = email.message_from_bytes(msg[0][1], policy=email.policy.default)
        for part in parsed.iter_attachments():
            name = os.path.basename(part.get_filename() or "")
            if name.endswith(".csv"):
                with open(os.path.join(work, name), "wb") as f:
                    f.write(part.get_payload(decode=True))
                got += 1
        m.uid("STORE", uid, "+FLAGS.SILENT", "(\\Seen)")
    m.logout()
    dt = time.monotonic() - t
    assert got == N, got
    return dt


def ferry_smtp(d, work, files):
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "jobs"))
    shutil.copytree(files, os.path.join(work, "var", "in"))
    with open(os.path.join(work, "jobs", "send.toml"), "w") as f:
        f.write(
            '[source]\nfolder = "var/in"\nsettle = "0s"\n\n[[output]]\nemail = "mailto:bob@example.test"\n'
            'smtp = "smtp://alice@127.0.0.1:%d"\npassword = "${env:BENCH_PW}"\nca_file = "%s/tls/ca.pem"\n'
            'from = "alice@example.test"\n' % (BASE + 5, d)
        )
    t = time.monotonic()
    subprocess.run([FERRY, "run", "--once"], cwd=work, env=dict(os.environ, BENCH_PW="secret"),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dt = time.monotonic() - t
    left = os.listdir(os.path.join(work, "var", "outbox", "send", "1"))
    assert not left, len(left)
    return dt


def peer_smtp(d, work, files):
    import base64
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    msgs = []
    for name in sorted(os.listdir(files)):
        with open(os.path.join(files, name), "rb") as f:
            b64 = base64.encodebytes(f.read()).decode().replace("\n", "\r\n")
        p = os.path.join(work, name + ".eml")
        with open(p, "w") as f:
            f.write(
                "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: %s\r\nMIME-Version: 1.0\r\n"
                "Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nAttached.\r\n"
                "--B\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=\"%s\"\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n%s--B--\r\n" % (name, name, b64)
            )
        msgs.append(p)
    t = time.monotonic()
    for p in msgs:
        subprocess.run(
            ["curl", "-sS", "--ssl-reqd", "--cacert", os.path.join(d, "tls", "ca.pem"), "--user", "alice:secret",
             "smtp://127.0.0.1:%d" % (BASE + 5), "--mail-from", "alice@example.test",
             "--mail-rcpt", "bob@example.test", "-T", p],
            check=True,
        )
    return time.monotonic() - t


def fmt(rates):
    return "%.0f (%.0f..%.0f)" % (statistics.median(rates), min(rates), max(rates))


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    d = tempfile.mkdtemp(prefix="ferry-mail-bench.")
    os.chmod(d, 0o755)
    servers_start(d)
    try:
        if what in ("imap", "all"):
            f, p = [], []
            for _ in range(RUNS):
                fill(d, "alice")
                fill(d, "bob")
                f.append(N / ferry_imap(d, os.path.join(d, "w-ferry")))
                p.append(N / peer_imap(d, os.path.join(d, "w-peer")))
            print("imap: %d messages, one 50 KiB attachment each; attachments/s" % N)
            print("  ferry run --once      %s" % fmt(f))
            print("  python imaplib script %s" % fmt(p))
        if what in ("smtp", "all"):
            files = os.path.join(d, "files")
            os.makedirs(files)
            for i in range(N):
                with open(os.path.join(files, "r%05d.csv" % i), "wb") as fh:
                    fh.write(payload(i, 2048))
            f, p = [], []
            for _ in range(RUNS):
                f.append(N / ferry_smtp(d, os.path.join(d, "w-ferry-smtp"), files))
                p.append(N / peer_smtp(d, os.path.join(d, "w-peer-smtp"), files))
            print("smtp: %d files of 2 KiB to postfix submission (STARTTLS + AUTH); messages/s" % N)
            print("  ferry run --once      %s" % fmt(f))
            print("  curl smtp:// loop     %s" % fmt(p))
    finally:
        servers_stop(d)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
