"""Serve the output directory read-only over HTTP on aiohttp, plus /status, /healthz and
/metrics; never writes.

aiohttp's low-level ``web.Server`` (no router: every request comes to one handler, which
resolves the path itself) runs on an event loop of its own thread, bound to a socket opened
beforehand so the address is known at once. File reads, the health probe and the status page
(they touch the disk and the database) run in the loop's thread pool, never on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import formatdate
from http import HTTPStatus
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import BadHttpMethod
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .httpfiles import (
    GzipCache,
    accepts_gzip,
    index_html,
    is_not_modified,
    make_etag,
    read_regular_file,
    request_path,
    resolve_inside,
)
from .render.html import render_status
from .render.status import StatusReport, render_status_json

__all__ = [
    "CONTENT_TYPES",
    "GzipCache",
    "Health",
    "OutputServer",
    "Status",
    "make_server",
    "start_server",
]

log = logging.getLogger(__name__)

Health = Callable[[], tuple[bool, str]]
Status = Callable[[], StatusReport]

CONTENT_TYPES = {
    ".atom": "application/atom+xml; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".json": "application/feed+json; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
    ".opml": "text/x-opml; charset=utf-8",
}
_DEFAULT_TYPE = "application/octet-stream"
_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json; charset=utf-8"
_ALLOW = "GET, HEAD"
_KNOWN_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})
_GZIP_MIN_BYTES = 256  # below this the gzip header and trailer eat the saving
_IDLE_TIMEOUT_S = 60  # drop idle keep-alive connections
_STOP_TIMEOUT_S = 2.0  # on shutdown, how long requests in flight may still finish
# RFC 5005 archive pages never change once written (publish writes each once): cache for good.
_IMMUTABLE_PREFIX = "/archive/"
_IMMUTABLE = "public, max-age=31536000, immutable"


class OutputServer:
    """The HTTP server: a socket bound at construction, served by ``serve_forever`` on the
    calling thread until ``shutdown`` (from any thread); ``server_close`` releases the socket."""

    def __init__(
        self,
        address: tuple[str, int],
        *,
        directory: Path,
        health: Health,
        registry: CollectorRegistry,
        status: Status | None = None,
        site_title: str = "aggregator",
    ) -> None:
        self.directory = directory.resolve()
        self.health = health
        self.registry = registry
        self.status = status
        self.site_title = site_title
        self.gzip_cache = GzipCache()
        self._socket = _bind(address)
        self.server_address: tuple[Any, ...] = self._socket.getsockname()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._done = threading.Event()

    def serve_forever(self) -> None:
        """Serve on this thread (an event loop of its own) until ``shutdown``."""
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve(loop))
        finally:
            loop.close()
            self._done.set()

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._stop = loop, asyncio.Event()
        handler = _Handler(self)
        server = _HttpServer(handler.handle, access_log_class=_AccessLog, access_log=log,
                             keepalive_timeout=_IDLE_TIMEOUT_S)  # fmt: skip
        runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=_STOP_TIMEOUT_S)
        await runner.setup()
        try:
            await web.SockSite(runner, self._socket).start()
            self._ready.set()
            await self._stop.wait()
        finally:
            self._ready.set()
            await runner.cleanup()

    def wait_ready(self, timeout_s: float = 10.0) -> bool:
        return self._ready.wait(timeout_s)

    def shutdown(self) -> None:
        """Stop serving and wait until ``serve_forever`` has returned; a no-op when it is not
        running."""
        loop, stop = self._loop, self._stop
        if loop is None or stop is None or self._done.is_set():
            return
        try:
            loop.call_soon_threadsafe(stop.set)
        except RuntimeError:  # the loop has just closed
            return
        self._done.wait()

    def server_close(self) -> None:
        self._socket.close()


def _bind(address: tuple[str, int]) -> socket.socket:
    """A listening TCP socket on ``address`` (IPv6 when the host has a colon)."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def make_server(
    directory: Path,
    *,
    host: str,
    port: int,
    health: Health,
    registry: CollectorRegistry,
    status: Status | None = None,
    site_title: str = "aggregator",
) -> OutputServer:
    """Bind a server for ``directory`` on ``host:port`` (port 0 picks a free one)."""
    return OutputServer((host, port), directory=directory, health=health, registry=registry,
                        status=status, site_title=site_title)  # fmt: skip


def start_server(
    directory: Path,
    *,
    host: str,
    port: int,
    health: Health,
    registry: CollectorRegistry,
    status: Status | None = None,
    site_title: str = "aggregator",
) -> tuple[OutputServer, threading.Thread]:
    """Bind and run the server in a daemon thread; stop it with ``shutdown()`` then
    ``server_close()``."""
    server = make_server(directory, host=host, port=port, health=health, registry=registry,
                         status=status, site_title=site_title)  # fmt: skip
    thread = threading.Thread(target=server.serve_forever, name="aggregator-http", daemon=True)
    thread.start()
    server.wait_ready()
    log.debug("http: serving %s on %s", server.directory, server.server_address[:2])
    return server, thread


class _Protocol(web.RequestHandler):
    """A method the server does not know is 501 (RFC 9110 15.6.2), not the 400 that aiohttp's
    C parser (llhttp) gives before any handler runs; every other error is aiohttp's."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, BadHttpMethod) and request.writer.output_size == 0:
            log.debug("http %s: unknown method: %s", request.remote, exc)
            response = _reply(request, HTTPStatus.NOT_IMPLEMENTED, _text_headers(),
                              b"not implemented\n")  # fmt: skip
            response.force_close()
            return response
        return super().handle_error(request, status, exc, message)


class _HttpServer(web.Server):
    """``web.Server`` making ``_Protocol`` connections.

    A seam over aiohttp's private ``Server._loop``/``_kwargs`` (aiohttp 3.10-3.14, tested in
    tests/test_serve.py); without them it falls back to aiohttp's own connections (then an
    unknown method is 400).
    """

    def __call__(self) -> web.RequestHandler:
        kwargs = getattr(self, "_kwargs", None)
        loop = getattr(self, "_loop", None)
        if kwargs is None or loop is None:
            return super().__call__()
        return _Protocol(self, loop=loop, **kwargs)


class _AccessLog(AbstractAccessLogger):
    """One DEBUG line per request (an operator reads INFO: requests would drown the polls)."""

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.debug('http %s "%s %s" %d %d %.1fms', request.remote, request.method,
                          request.raw_path, response.status, response.body_length,
                          time * 1000)  # fmt: skip


class _Handler:
    """GET/HEAD of output files with validators and gzip, the status page, health, metrics;
    every other method is refused."""

    def __init__(self, server: OutputServer) -> None:
        self.server = server

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            return await self._route(request)
        except Exception:  # a bug in one request is a 500, logged; the server keeps serving
            log.exception("http: error while handling %s %s", request.method, request.raw_path)
            return _reply(request, HTTPStatus.INTERNAL_SERVER_ERROR, _text_headers(), b"error\n")

    async def _route(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            known = request.method in _KNOWN_METHODS
            status = HTTPStatus.METHOD_NOT_ALLOWED if known else HTTPStatus.NOT_IMPLEMENTED
            text = "method not allowed" if known else "not implemented"
            return _text(request, status, text, allow=_ALLOW)
        path = request_path(request.raw_path)
        if path is None:
            return _text(request, HTTPStatus.BAD_REQUEST, "bad request")
        if path == "/healthz":
            return await self._health(request)
        if path == "/metrics":
            body = generate_latest(self.server.registry)
            return _reply(request, HTTPStatus.OK, _metrics_headers(), body)
        if path in ("/status", "/status.json") and self.server.status is not None:
            return await self._status(request, as_json=path.endswith(".json"))
        if path == "/":
            return await self._index(request)
        return await self._file(request, path)

    async def _blocking(self, call: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, call)

    async def _health(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            ok, detail = await self._blocking(self.server.health)
        except Exception as exc:  # a broken probe is an unhealthy daemon, not a dead server
            log.exception("http: health check raised")
            ok, detail = False, str(exc) or type(exc).__name__
        status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
        return _text(request, status, f"{'ok' if ok else 'unhealthy'}: {detail}", no_store=True)

    async def _status(self, request: web.BaseRequest, *, as_json: bool) -> web.StreamResponse:
        probe = self.server.status
        assert probe is not None
        report: StatusReport = await self._blocking(probe)
        now = datetime.now(UTC)
        if as_json:
            return self._body(request, render_status_json(report, now=now), content_type=_JSON)
        page = render_status(report, site_title=self.server.site_title, now=now)
        return self._body(request, page, content_type=CONTENT_TYPES[".html"])

    async def _index(self, request: web.BaseRequest) -> web.StreamResponse:
        root = self.server.directory
        if (root / "index.html").is_file():
            return await self._file(request, "/index.html")
        page = await self._blocking(lambda: index_html(root))
        return self._body(request, page, content_type=CONTENT_TYPES[".html"])

    async def _file(self, request: web.BaseRequest, path: str) -> web.StreamResponse:
        target = resolve_inside(self.server.directory, path)
        try:
            found = await self._blocking(lambda: read_regular_file(target)) if target else None
        except OSError as exc:
            log.warning("http: cannot read %s: %s", target, exc)
            return _text(request, HTTPStatus.INTERNAL_SERVER_ERROR, "cannot read file")
        if found is None:
            return _text(request, HTTPStatus.NOT_FOUND, "not found")
        data, mtime = found
        content_type = CONTENT_TYPES.get(Path(path).suffix.lower(), _DEFAULT_TYPE)
        immutable = path.startswith(_IMMUTABLE_PREFIX)
        return self._body(request, data, content_type=content_type, mtime=mtime,
                          cache=_IMMUTABLE if immutable else "no-cache")  # fmt: skip

    def _body(
        self,
        request: web.BaseRequest,
        data: bytes,
        *,
        content_type: str,
        mtime: float | None = None,
        cache: str = "no-cache",
    ) -> web.StreamResponse:
        """``data`` with ETag/Last-Modified, honouring conditionals and gzip."""
        use_gzip = len(data) >= _GZIP_MIN_BYTES and accepts_gzip(
            request.headers.get("Accept-Encoding")
        )
        etag = make_etag(data, gzipped=use_gzip)
        headers = {"ETag": etag, "Cache-Control": cache, "Vary": "Accept-Encoding"}
        if mtime is not None:
            headers["Last-Modified"] = formatdate(mtime, usegmt=True)
        if is_not_modified(request.headers, etag=etag, mtime=mtime):
            return _reply(request, HTTPStatus.NOT_MODIFIED, headers, b"")
        if use_gzip:
            data = self.server.gzip_cache.compress(etag, data)
            headers["Content-Encoding"] = "gzip"
        headers["Content-Type"] = content_type
        headers["X-Content-Type-Options"] = "nosniff"
        return _reply(request, HTTPStatus.OK, headers, data)


def _text_headers(*, no_store: bool = False, allow: str = "") -> dict[str, str]:
    headers = {"Content-Type": _TEXT, "X-Content-Type-Options": "nosniff"}
    headers["Cache-Control"] = "no-store" if no_store else "no-cache"
    if allow:
        headers["Allow"] = allow
    return headers


def _text(
    request: web.BaseRequest,
    status: HTTPStatus,
    text: str,
    *,
    allow: str = "",
    no_store: bool = False,
) -> web.StreamResponse:
    headers = _text_headers(no_store=no_store, allow=allow)
    return _reply(request, status, headers, f"{text}\n".encode())


def _reply(
    request: web.BaseRequest, status: HTTPStatus, headers: Mapping[str, str], body: bytes
) -> web.StreamResponse:
    """One response; HEAD keeps the Content-Length of its GET, a 304 has no body."""
    not_modified = status == HTTPStatus.NOT_MODIFIED
    response = web.Response(status=status, headers={**headers, "Server": "aggregator"},
                            body=None if not_modified else body)  # fmt: skip
    if request.can_read_body or request.headers.get("Transfer-Encoding"):
        response.force_close()  # a body we never read: the connection cannot be reused
    return response


def _metrics_headers() -> dict[str, str]:
    return {"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"}
