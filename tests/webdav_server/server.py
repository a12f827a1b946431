"""A real WebDAV server for ferry's WebDAV tests: wsgidav (from PyPI) on cheroot, on
127.0.0.1 only.

    server.py DIR PARENT_PID [PORT]

Serves DIR/root: `/open` without login, `/auth` with basic authentication (user `ferry`,
password in DIR/password). Plain HTTP and, with DIR/tls/cert.pem, HTTPS; with PORT only
plain HTTP on that port (a server started late, for "down then up"). Writes the ports to
DIR/ports.json (DIR/ports-PORT.json with PORT), and each request to DIR/requests.jsonl
(method, path, Destination, Overwrite, Depth, status; never a header's value that could
carry a credential). Fault helpers, by a tag in the path (allowed by issue 17 for the
fault cases):

- DIR/faults/HEX holding "STATUS COUNT" (HEX: the tag's bytes in hex): the next COUNT requests whose path contains TAG
  are answered STATUS.
- a path containing "slow": request bodies are read at about 2 MB/s.
- a PROPFIND of a path containing "hostile": entries a hostile server could send are
  added to the answer (names with `..`, `/` escaped, an entry outside the folder).

Exits, removing DIR, when PARENT_PID is gone.
"""

import json
import os
import shutil
import sys
import threading
import time

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from wsgidav.wsgidav_app import WsgiDAVApp

DIR = sys.argv[1]
PARENT = int(sys.argv[2])
FIXED_PORT = int(sys.argv[3]) if len(sys.argv) > 3 else None
ROOT = os.path.join(DIR, "root")
LOCK = threading.Lock()


def log(entry):
    with LOCK:
        with open(os.path.join(DIR, "requests.jsonl"), "a") as f:
            f.write(json.dumps(entry) + "\n")


def fault(path):
    folder = os.path.join(DIR, "faults")
    if not os.path.isdir(folder):
        return None
    with LOCK:
        for name in os.listdir(folder):
            try:
                tag = bytes.fromhex(name).decode()
            except ValueError:
                continue
            if tag not in path:
                continue
            p = os.path.join(folder, name)
            try:
                status, count = open(p).read().split()
            except (OSError, ValueError):
                continue
            count = int(count)
            if count <= 0:
                continue
            with open(p, "w") as f:
                f.write(f"{status} {count - 1}")
            return int(status)
    return None


class Slow:
    def __init__(self, inner):
        self.inner = inner

    def read(self, n=-1):
        n = 64 * 1024 if n is None or n < 0 or n > 64 * 1024 else n
        time.sleep(n / 2_000_000)
        return self.inner.read(n)

    def readline(self, *a):
        return self.inner.readline(*a)


HOSTILE = [
    "..%2F..%2Fescaped-1.csv",
    "sub%2F..%2F..%2Fescaped-2.csv",
    "..",
]


def hostile_entries(path):
    base = path.rstrip("/")
    out = []
    for name in HOSTILE:
        out.append(f"<d:response><d:href>{base}/{name}</d:href><d:propstat><d:prop>"
                   "<d:resourcetype/><d:getcontentlength>3</d:getcontentlength>"
                   "<d:getlastmodified>Wed, 02 Dec 2026 10:00:00 GMT</d:getlastmodified>"
                   "<d:getetag>\"h\"</d:getetag></d:prop><d:status>HTTP/1.1 200 OK</d:status>"
                   "</d:propstat></d:response>")
    out.append("<d:response><d:href>/open/escaped-3.csv</d:href><d:propstat><d:prop>"
               "<d:resourcetype/><d:getcontentlength>3</d:getcontentlength></d:prop>"
               "<d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>")
    return "".join(out).encode()


def logged(app):
    def handler(environ, start_response):
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        entry = {
            "method": method,
            "path": path,
            "destination": environ.get("HTTP_DESTINATION"),
            "overwrite": environ.get("HTTP_OVERWRITE"),
            "depth": environ.get("HTTP_DEPTH"),
            "auth": "HTTP_AUTHORIZATION" in environ,
        }
        log(dict(entry, event="start"))
        status = fault(path)
        if status is not None:
            # Read the body first, as a real server would before failing a request.
            length = int(environ.get("CONTENT_LENGTH") or 0)
            while length > 0:
                chunk = environ["wsgi.input"].read(min(length, 65536))
                if not chunk:
                    break
                length -= len(chunk)
            start_response(f"{status} Injected", [("Content-Type", "text/plain"),
                                                   ("Content-Length", "24")])
            log(dict(entry, event="end", status=status))
            return [b"injected fault for test\n"]
        if "slow" in path:
            environ["wsgi.input"] = Slow(environ["wsgi.input"])
        seen = {}

        def sr(st, headers, exc_info=None):
            seen["status"] = int(st.split()[0])
            if method == "PROPFIND" and "hostile" in path:
                headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            return start_response(st, headers, exc_info)

        body = app(environ, sr)
        # wsgidav answers with an iterable that may call start_response only once it is
        # read: read it all (test bodies are small), then log the status.
        try:
            data = b"".join(body)
        finally:
            if hasattr(body, "close"):
                body.close()
        if method == "PROPFIND" and "hostile" in path and seen.get("status") == 207:
            end = data.rfind(b"</d:multistatus>")
            if end < 0:
                end = data.rfind(b"</")
            data = data[:end] + hostile_entries(path) + data[end:]
        log(dict(entry, event="end", status=seen.get("status")))
        return [data]

    return handler


def app():
    password = open(os.path.join(DIR, "password")).read().strip()
    for share in ("open", "auth"):
        os.makedirs(os.path.join(ROOT, share), exist_ok=True)
    config = {
        "provider_mapping": {
            "/open": os.path.join(ROOT, "open"),
            "/auth": os.path.join(ROOT, "auth"),
        },
        "http_authenticator": {
            "accept_basic": True,
            "accept_digest": False,
            "default_to_digest": False,
        },
        "simple_dc": {
            "user_mapping": {
                "/open": True,
                "/auth": {"ferry": {"password": password}},
                "*": True,
            }
        },
        "verbose": 1,
        "logging": {"enable_loggers": []},
        "property_manager": True,
        "lock_storage": True,
        "dir_browser": {"enable": False},
    }
    return logged(WsgiDAVApp(config))


def serve(application, port=0, tls=False):
    server = wsgi.Server(("127.0.0.1", port), application, numthreads=16)
    if tls:
        server.ssl_adapter = BuiltinSSLAdapter(
            os.path.join(DIR, "tls/cert.pem"), os.path.join(DIR, "tls/key.pem"))
    server.prepare()
    threading.Thread(target=server.serve, daemon=True).start()
    return server.bind_addr[1]


def main():
    application = app()
    if FIXED_PORT:
        ports = {"http": serve(application, FIXED_PORT)}
        name = f"ports-{FIXED_PORT}.json"
    else:
        ports = {"http": serve(application), "https": serve(application, tls=True)}
        name = "ports.json"
    tmp = os.path.join(DIR, name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(ports, f)
    os.rename(tmp, os.path.join(DIR, name))
    while True:
        time.sleep(0.5)
        try:
            os.kill(PARENT, 0)
        except OSError:
            if not FIXED_PORT:
                # The test binary is gone: so are its server's files.
                shutil.rmtree(DIR, ignore_errors=True)
            os._exit(0)


main()
