"""A real HTTP feed server on 127.0.0.1 for daemon tests: scripted routes, recorded requests.

Each route answers from a ``Route``: a body with ETag/Last-Modified (and 304s), a redirect,
an error status, a gzip bomb, or a response that blocks until the test releases it.
"""

from __future__ import annotations

import gzip
import hashlib
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    location: str | None = None  # for 3xx
    conditional: bool = True  # honour If-None-Match / If-Modified-Since with a 304
    last_modified: str = "Wed, 25 Nov 2026 10:00:00 GMT"
    gzip: bool = False
    block: threading.Event | None = None  # respond only once this is set
    hold_s: float = 0.0  # keep the request in flight up to this long (for concurrency caps)
    content_type: str = "application/rss+xml; charset=utf-8"

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)  # when it arrived
    lines: tuple[tuple[str, str], ...] = ()  # the header lines as sent, in order


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up (a pooled keep-alive connection closed, a cancelled fetch) is
    not an error worth a traceback on stderr, where tests read what the CLI printed."""

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class FeedServer:
    """Serves ``routes`` (path -> Route); thread-safe request log and in-flight counters."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._cond = threading.Condition()
        self.released = threading.Event()  # set at teardown: unblocks every blocked route
        self.httpd = _QuietServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def count(self, path: str) -> int:
        with self._cond:
            return sum(1 for r in self.requests if r.path == path)

    def _enter(self, seen: Seen) -> None:
        with self._cond:
            self.requests.append(seen)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._cond.notify_all()

    def _leave(self) -> None:
        with self._cond:
            self.in_flight -= 1
            self._cond.notify_all()

    def hold(self, seconds: float, *, until_in_flight: int) -> None:
        """Keep a request in flight until ``until_in_flight`` are, or ``seconds`` pass."""
        with self._cond:
            self._cond.wait_for(lambda: self.in_flight >= until_in_flight, timeout=seconds)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                pairs = tuple(self.headers.items())
                seen = Seen(self.path, {k.lower(): v for k, v in pairs}, lines=pairs)
                server._enter(seen)
                try:
                    server._respond(self, server.routes.get(self.path))
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    server._leave()

        return Handler

    def _respond(self, handler: BaseHTTPRequestHandler, route: Route | None) -> None:
        if route is None:
            return _send(handler, 404, {}, b"not found")
        if route.block is not None:
            route.block.wait(timeout=30)
        if route.hold_s:
            self.hold(route.hold_s, until_in_flight=10**6)
        if route.location is not None:
            return _send(handler, route.status, {"Location": route.location, **route.headers}, b"")
        if route.status != 200:
            return _send(handler, route.status, route.headers, route.body)
        validators = {"ETag": route.etag, "Last-Modified": route.last_modified}
        if route.conditional and handler.headers.get("If-None-Match") == route.etag:
            return _send(handler, 304, {**validators, **route.headers}, b"")
        headers = {"Content-Type": route.content_type, **validators, **route.headers}
        body = route.body
        if route.gzip:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        return _send(handler, 200, headers, body)


def _send(
    handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes
) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@contextmanager
def running_feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.released.set()
        for route in server.routes.values():
            if route.block is not None:
                route.block.set()
        server.httpd.shutdown()
        server.httpd.server_close()
        server.thread.join(timeout=5)


def rss(title: str, items: list[tuple[str, str]], *, extra: str = "") -> bytes:
    """A small RSS 2.0 document: ``items`` are (guid, title)."""
    body = "".join(
        f"<item><guid>{g}</guid><title>{t}</title><link>https://example.org/{g}</link>"
        f"<description>&lt;p&gt;{t}&lt;/p&gt;</description>"
        f"<pubDate>Wed, 25 Nov 2026 0{i % 10}:00:00 GMT</pubDate></item>"
        for i, (g, t) in enumerate(items)
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>'
        f"<link>https://example.org/</link>{extra}{body}</channel></rss>"
    ).encode()
