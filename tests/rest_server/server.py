"""A REST service of orders for ferry's REST source tests (tests/rest_server/mod.rs), on
127.0.0.1 only, with Python's standard library (http.server, threaded).

The orders of a test are the JSON array in DIR/orders/TAG.json (written by the test; each
order has "id" and "changed_at"). GET /TAG/MODE/orders?changed_since=W answers the orders
whose changed_at is above W (all of them when W is empty), sorted by changed_at then id,
SIZE (default 2) at a time, paged as MODE says:

  next   {"data": {"items": [...]}, "links": {"next": "/TAG/next/orders?...&cursor=N"}}
         (a relative URL; null on the last page)
  link   the array itself, and a Link: <http://127.0.0.1:PORT/...&cursor=N>; rel="next"
         header (absolute) while more follow
  page   {"items": [...]} for ?page=P (from 1); a page past the end has no items
  loop   {"items": [...], "next": the same URL again}: a service that never ends
  far    {"items": [...], "next": "http://localhost:PORT/..."}: another origin

Every request must carry "Authorization: Bearer rest-secret-8Hq2" (else 401). While the
file DIR/fail-TAG exists every request of TAG is answered 500. Every request is appended
to DIR/requests.jsonl (method, path, query, headers, status). The server exits, removing
DIR, when the process PARENT (the test binary) is gone.
"""

import json
import os
import shutil
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

DIR = sys.argv[1]
PARENT = int(sys.argv[2])
TOKEN = "Bearer rest-secret-8Hq2"
LOCK = threading.Lock()


def log(entry):
    with LOCK:
        with open(os.path.join(DIR, "requests.jsonl"), "a") as f:
            f.write(json.dumps(entry) + "\n")


CACHE = {}


def orders_of(tag, since):
    """The orders of TAG above SINCE, sorted; the file is read again when it changes."""
    path = os.path.join(DIR, "orders", tag + ".json")
    try:
        stamp = os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return []
    with LOCK:
        cached = CACHE.get(tag)
    if cached is None or cached[0] != stamp:
        with open(path) as f:
            orders = sorted(json.load(f), key=lambda o: (o["changed_at"], o["id"]))
        cached = (stamp, orders)
        with LOCK:
            CACHE[tag] = cached
    return [o for o in cached[1] if not since or o["changed_at"] > since]


class Rest(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def answer(self, status, body, headers=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        return status

    def do_GET(self):
        url = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        parts = [p for p in url.path.split("/") if p]
        status = self.route(parts, q)
        log({
            "method": "GET",
            "path": url.path,
            "query": q,
            "headers": dict(self.headers.items()),
            "status": status,
        })

    def route(self, parts, q):
        if self.headers.get("Authorization") != TOKEN:
            return self.answer(401, {"error": "who are you?"})
        if len(parts) != 3 or parts[2] != "orders":
            return self.answer(404, {"error": "no such resource"})
        tag, mode = parts[0], parts[1]
        if os.path.exists(os.path.join(DIR, "fail-" + tag)):
            return self.answer(500, {"error": "the order database is down"})
        since = q.get("changed_since", "")
        size = int(q.get("size", "2"))
        orders = orders_of(tag, since)
        if mode == "page":
            page = int(q.get("page", "1"))
            return self.answer(200, {"items": orders[(page - 1) * size:page * size]})
        cursor = int(q.get("cursor", "0"))
        items = orders[cursor:cursor + size]
        more = cursor + size < len(orders)
        nq = dict(q, cursor=str(cursor + size))
        rel = "/%s/%s/orders?%s" % (tag, mode, urlencode(nq))
        if mode == "next":
            return self.answer(200, {"data": {"items": items}, "links": {"next": rel if more else None}})
        if mode == "link":
            port = self.server.server_address[1]
            link = {"Link": '<http://127.0.0.1:%d%s>; rel="next"' % (port, rel)} if more else {}
            return self.answer(200, items, link)
        if mode == "loop":
            return self.answer(200, {"items": items, "next": self.path})
        if mode == "far":
            port = self.server.server_address[1]
            return self.answer(200, {"items": items, "next": "http://localhost:%d%s" % (port, rel)})
        return self.answer(404, {"error": "no such mode"})


def watch_parent():
    while True:
        try:
            os.kill(PARENT, 0)
        except OSError:
            shutil.rmtree(DIR, ignore_errors=True)
            os._exit(0)
        time.sleep(0.5)


def main():
    os.makedirs(os.path.join(DIR, "orders"), exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Rest)
    server.daemon_threads = True
    threading.Thread(target=watch_parent, daemon=True).start()
    tmp = os.path.join(DIR, "ports.json.tmp")
    with open(tmp, "w") as f:
        json.dump({"http": server.server_address[1]}, f)
    os.rename(tmp, os.path.join(DIR, "ports.json"))
    server.serve_forever()


if __name__ == "__main__":
    main()
