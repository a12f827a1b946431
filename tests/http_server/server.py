"""Test servers for ferry's HTTP outputs, on 127.0.0.1 only (tests/http_server/mod.rs).

A REST endpoint (Python's http.server, threaded) on plain HTTP, on HTTPS, and on HTTPS
that requires a client certificate; and a SOAP service (spyne, from PyPI) with a WSDL.
Every request is appended to DIR/requests.jsonl (path, headers, body, the status
answered). What the REST endpoint answers depends on the path:

  /ok/TAG                       201 {"order": N, "key": KEY}
  /auth/TAG                     401 unless basic auth ferry:Basic-Pw-77q
  /fail/N/STATUS/TAG            STATUS for the first N requests with a given idempotency
                                key (429 and 503 with Retry-After: 2), then 201
  /bad/TAG                      400 with a long explanation
  /reject/TAG                   400 when the body holds REJECT, else 201
  /slow/MS/TAG                  waits MS milliseconds, then 201

The server exits, removing DIR, when the process PARENT (the test binary) is gone.
"""

import base64
import json
import os
import shutil
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from wsgiref.simple_server import WSGIRequestHandler, make_server
from socketserver import ThreadingMixIn

DIR = sys.argv[1]
PARENT = int(sys.argv[2])
LOCK = threading.Lock()
COUNTS = {}
ORDERS = [0]


def log(entry):
    with LOCK:
        with open(os.path.join(DIR, "requests.jsonl"), "a") as f:
            f.write(json.dumps(entry) + "\n")


class Rest(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, Nagle's algorithm holds the
    # body until the client's delayed ACK (40 ms per request on Linux).
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace")
        parts = [p for p in self.path.split("/") if p]
        key = self.headers.get("Idempotency-Key") or self.headers.get("X-Request-Key") or ""
        status, extra, answer = 201, {}, None
        kind = parts[0] if parts else ""
        if kind == "auth":
            want = "Basic " + base64.b64encode(b"ferry:Basic-Pw-77q").decode()
            if self.headers.get("Authorization") != want:
                status, answer = 401, "who are you?"
        elif kind == "fail":
            times, code = int(parts[1]), int(parts[2])
            with LOCK:
                seen = COUNTS.get((self.path, key), 0)
                COUNTS[(self.path, key)] = seen + 1
            if seen < times:
                status, answer = code, "busy, try later"
                if code in (429, 503):
                    extra["Retry-After"] = "2"
        elif kind == "bad":
            status = 400
            answer = "invalid order: the field customer is missing. " + "x" * 600
        elif kind == "reject":
            if "REJECT" in body:
                status, answer = 400, "record refused: REJECT is not a product"
        elif kind == "slow":
            time.sleep(int(parts[1]) / 1000.0)
        if answer is None:
            with LOCK:
                ORDERS[0] += 1
                answer = json.dumps({"order": ORDERS[0], "key": key})
        data = answer.encode()
        log({
            "t": time.time(),
            "port": self.server.server_address[1],
            "method": self.command,
            "path": self.path,
            "headers": {k.title(): v for k, v in self.headers.items()},
            "body": body,
            "status": status,
            "client_cert": bool(getattr(self.connection, "getpeercert", lambda: None)()),
        })
        self.send_response(status)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json" if answer.startswith("{") else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def rest(port_ctx=None):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Rest)
    srv.daemon_threads = True
    if port_ctx is not None:
        srv.socket = port_ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]


def soap_app():
    from spyne import Application, ServiceBase, Unicode, Decimal, rpc
    from spyne.model.fault import Fault
    from spyne.protocol.soap import Soap11
    from spyne.server.wsgi import WsgiApplication

    class InvoiceService(ServiceBase):
        @rpc(Unicode, Decimal, Unicode, _returns=Unicode)
        def SubmitInvoice(ctx, number, amount, customer):
            if customer == "nobody":
                raise Fault(faultcode="Client.UnknownCustomer",
                            faultstring="unknown customer %s for invoice %s" % (customer, number))
            return "accepted %s for %s" % (number, amount)

    app = Application([InvoiceService], tns="urn:example:invoices",
                      in_protocol=Soap11(validator="lxml"), out_protocol=Soap11())
    wsgi = WsgiApplication(app)

    def logged(environ, start_response):
        n = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(n) if n else b""
        import io
        environ["wsgi.input"] = io.BytesIO(raw)
        seen = {}

        def start(status, headers, exc_info=None):
            seen["status"] = int(status.split()[0])
            return start_response(status, headers, exc_info)

        out = b"".join(wsgi(environ, start))
        log({
            "t": time.time(),
            "port": -1,
            "method": environ["REQUEST_METHOD"],
            "path": environ.get("PATH_INFO", "") + ("?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING") else ""),
            "headers": {"SOAPAction": environ.get("HTTP_SOAPACTION", ""),
                        "Content-Type": environ.get("CONTENT_TYPE", ""),
                        "Idempotency-Key": environ.get("HTTP_IDEMPOTENCY_KEY", "")},
            "body": raw.decode("utf-8", "replace"),
            "status": seen.get("status", 0),
            "answer": out.decode("utf-8", "replace"),
        })
        return [out]

    return logged


class Quiet(WSGIRequestHandler):
    disable_nagle_algorithm = True
    def log_message(self, *args):
        pass


class ThreadingWSGIServer(ThreadingMixIn, __import__("wsgiref.simple_server").simple_server.WSGIServer):
    daemon_threads = True


def main():
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(os.path.join(DIR, "tls/cert.pem"), os.path.join(DIR, "tls/key.pem"))
    mtls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    mtls.load_cert_chain(os.path.join(DIR, "tls/cert.pem"), os.path.join(DIR, "tls/key.pem"))
    mtls.verify_mode = ssl.CERT_REQUIRED
    mtls.load_verify_locations(os.path.join(DIR, "tls/ca.pem"))
    ports = {"http": rest(), "https": rest(tls), "mtls": rest(mtls)}
    try:
        soap = make_server("127.0.0.1", 0, soap_app(), server_class=ThreadingWSGIServer,
                           handler_class=Quiet)
        threading.Thread(target=soap.serve_forever, daemon=True).start()
        ports["soap"] = soap.server_address[1]
    except ImportError as e:
        ports["soap"] = 0
        ports["soap_error"] = str(e)
    tmp = os.path.join(DIR, "ports.json.tmp")
    with open(tmp, "w") as f:
        json.dump(ports, f)
    os.rename(tmp, os.path.join(DIR, "ports.json"))
    while True:
        time.sleep(0.5)
        try:
            os.kill(PARENT, 0)
        except OSError:
            # The test binary is gone: so are its servers' files.
            shutil.rmtree(DIR, ignore_errors=True)
            os._exit(0)


main()
