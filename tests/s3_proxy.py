"""An HTTP proxy in front of the moto server that sees every S3 request.

The S3 the tests talk to stays a real moto server; the proxy forwards each
request to it unchanged and records what it was (``GET``, ``PUT``, ``LIST``,
``HEAD``, ``DELETE``, ``POST``…), so a test can compare what sqlmr counted
with what S3 was asked.  ``fault(kind, n)`` tells it what to do with the n-th
request (0-based) of a kind before forwarding: answer ``503 SlowDown`` (a
storm of throttles) or hold it for a while (a straggling read).

    with S3Proxy(moto_endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        ...
        proxy.counts()   # {"GET": 12, "PUT": 5, "LIST": 2, ...}
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

SLOW_DOWN = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
             b"<Message>Please reduce your request rate.</Message></Error>")


def request_kind(method: str, path: str) -> str:
    """What an S3 REST request is, in the words sqlmr counts it by.

    >>> request_kind("GET", "/b?list-type=2&prefix=x"), request_kind("GET", "/b/k")
    ('LIST', 'GET')
    >>> request_kind("POST", "/b?delete"), request_kind("POST", "/b/k?uploads")
    ('DELETE', 'PUT')
    """
    query = parse_qs(urlsplit(path).query, keep_blank_values=True)
    if method == "GET" and ("list-type" in query or urlsplit(path).path.count("/") <= 1
                            and "uploads" not in query):
        return "LIST"
    if method == "POST" and "delete" in query:
        return "DELETE"
    if method == "POST":   # create / complete a multipart upload: PUT-class requests
        return "PUT"
    return method


class S3Proxy:
    def __init__(self, upstream: str) -> None:
        up = urlsplit(upstream)
        self.upstream = (up.hostname, up.port)
        self.log: list[tuple[str, str]] = []     # (kind, path) of every request, in order
        self.answered_503 = 0
        self.lock = threading.Lock()
        # (kind, n) -> what to do with the n-th request of that kind
        self.faults: Callable[[str, int, str], str | float | None] = lambda k, n, p: None
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if not size:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _any(self):
                body = self._body()
                kind = request_kind(self.command, self.path)
                with proxy.lock:
                    n = sum(1 for k, _ in proxy.log if k == kind)
                    proxy.log.append((kind, self.path))
                    todo = proxy.faults(kind, n, self.path)
                if todo == "503":
                    with proxy.lock:
                        proxy.answered_503 += 1
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOW_DOWN) if self.command != "HEAD" else 0))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(SLOW_DOWN)
                    return
                if isinstance(todo, (int, float)):
                    time.sleep(todo)
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in ("transfer-encoding", "connection")}
                    headers["Content-Length"] = str(len(body))
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("transfer-encoding", "connection", "content-length",
                                             "server", "date"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def counts(self) -> Counter:
        with self.lock:
            return Counter(k for k, _ in self.log)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "S3Proxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
