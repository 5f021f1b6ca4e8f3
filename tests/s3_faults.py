"""A loopback S3 that fails on purpose: stands in for S3 answering 503 SlowDown or dropping the
connection mid-body, which moto never does. Every request is forwarded to the real moto server;
faults are armed per key for a number of GETs, then S3 recovers."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
# What S3 answers for an object in Glacier: about the object, not the service.
ARCHIVED = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidObjectState</Code>'
    b"<Message>The operation is not valid for the object's storage class</Message></Error>"
)


class S3FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.faults: dict[str, tuple[str, int]] = {}  # key suffix -> (kind, GETs left)
        self.failed: list[tuple[str, str]] = []  # (kind, path) of every fault served
        self._lock = threading.Lock()

    def fail(self, key_suffix: str, kind: str, times: int) -> None:
        """The next `times` GETs of a key ending so answer 503 ("slowdown"), 403
        InvalidObjectState ("archived"), or send half their body and close ("drop")."""
        with self._lock:
            self.faults[key_suffix] = (kind, times)

    def take_fault(self, path: str) -> str | None:
        with self._lock:
            for suffix, (kind, left) in self.faults.items():
                if left > 0 and unquote(path.split("?", 1)[0]).endswith(suffix):
                    self.faults[suffix] = (kind, left - 1)
                    self.failed.append((kind, path))
                    return kind
        return None

    @contextmanager
    def serving(self) -> Iterator[str]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                fault = proxy.take_fault(self.path) if self.command == "GET" else None
                if fault in ("slowdown", "archived"):
                    status, error = (503, SLOW_DOWN) if fault == "slowdown" else (403, ARCHIVED)
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                upstream = http.client.HTTPConnection(
                    proxy.upstream.hostname, proxy.upstream.port, timeout=30
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                upstream.close()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if fault == "drop":  # half the body, then the connection goes away
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
