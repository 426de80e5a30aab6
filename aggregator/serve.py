"""Serve the output directory read-only over HTTP, plus /healthz and /metrics; never writes."""

from __future__ import annotations

import gzip
import hashlib
import html
import logging
import os
import re
import socket
import socketserver
import stat
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC
from email.message import Message
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["CONTENT_TYPES", "Health", "OutputServer", "make_server", "start_server"]

log = logging.getLogger(__name__)

Health = Callable[[], tuple[bool, str]]

CONTENT_TYPES = {
    ".atom": "application/atom+xml; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".json": "application/feed+json; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
}
_DEFAULT_TYPE = "application/octet-stream"
_TEXT = "text/plain; charset=utf-8"
_ALLOW = "GET, HEAD"
_GZIP_MIN_BYTES = 256  # below this the gzip header and trailer eat the saving
_GZIP_CACHE_ENTRIES = 64
_IDLE_TIMEOUT_S = 60  # drop idle keep-alive connections so handler threads do not pile up
_ETAG = re.compile(r'(?:W/)?"([^"]*)"')


class GzipCache:
    """A small, thread-safe LRU of gzipped bodies keyed by ETag.

    Outputs are replaced atomically and the ETag is a content hash, so it names one exact body
    whichever URL (alias, ``//`` variant) it was read through.
    """

    def __init__(self, max_entries: int = _GZIP_CACHE_ENTRIES) -> None:
        self._max_entries = max_entries
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def compress(self, etag: str, data: bytes) -> bytes:
        """The gzipped ``data``, compressed once per ETag; deterministic (mtime=0)."""
        with self._lock:
            cached = self._entries.get(etag)
            if cached is not None:
                self._entries.move_to_end(etag)
                return cached
        packed = gzip.compress(data, mtime=0)
        with self._lock:
            self._entries[etag] = packed
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return packed


class OutputServer(ThreadingHTTPServer):
    """The HTTP server: one daemon thread per connection, state shared with the handlers."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        directory: Path,
        health: Health,
        registry: CollectorRegistry,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.directory = directory.resolve()
        self.health = health
        self.registry = registry
        self.gzip_cache = GzipCache()
        super().__init__(address, OutputHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (socket.getfqdn) nothing here needs.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: object, client_address: object) -> None:
        log.exception("http: error while handling a request from %s", client_address)


def make_server(
    directory: Path,
    *,
    host: str,
    port: int,
    health: Health,
    registry: CollectorRegistry,
) -> OutputServer:
    """Bind a server for ``directory`` on ``host:port`` (port 0 picks a free one)."""
    return OutputServer((host, port), directory=directory, health=health, registry=registry)


def start_server(
    directory: Path,
    *,
    host: str,
    port: int,
    health: Health,
    registry: CollectorRegistry,
) -> tuple[OutputServer, threading.Thread]:
    """Bind and run the server in a daemon thread; stop it with ``shutdown()`` then
    ``server_close()``."""
    server = make_server(directory, host=host, port=port, health=health, registry=registry)
    thread = threading.Thread(target=server.serve_forever, name="aggregator-http", daemon=True)
    thread.start()
    log.debug("http: serving %s on %s", server.directory, server.server_address[:2])
    return server, thread


class OutputHandler(BaseHTTPRequestHandler):
    """GET/HEAD of output files with validators and gzip; everything else is refused."""

    server: OutputServer
    protocol_version = "HTTP/1.1"
    server_version = "aggregator"
    timeout = _IDLE_TIMEOUT_S

    def version_string(self) -> str:
        return self.server_version  # no Python version in the Server header

    def log_message(self, format: str, *args: object) -> None:
        message = format % args
        log.debug("http %s %s", self.address_string(), message)

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError) as exc:
            log.debug("http %s went away: %s", self.address_string(), exc)

    def do_GET(self) -> None:
        path = request_path(self.path)
        if path is None:
            self._send_text(HTTPStatus.BAD_REQUEST, "bad request")
        elif path == "/healthz":
            self._send_health()
        elif path == "/metrics":
            self._send(HTTPStatus.OK, _metrics_headers(), generate_latest(self.server.registry))
        elif path == "/":
            self._send_index()
        else:
            self._send_file(path)

    def do_HEAD(self) -> None:
        self.do_GET()

    def _not_allowed(self) -> None:
        self._send_text(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed", allow=_ALLOW)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed

    def _send_health(self) -> None:
        try:
            ok, detail = self.server.health()
        except Exception as exc:  # a broken probe is an unhealthy daemon, not a dead server
            log.exception("http: health check raised")
            ok, detail = False, str(exc) or type(exc).__name__
        status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
        self._send_text(status, f"{'ok' if ok else 'unhealthy'}: {detail}", no_store=True)

    def _send_index(self) -> None:
        root = self.server.directory
        if (root / "index.html").is_file():
            self._send_file("/index.html")
            return
        self._send_body(_index_html(root), content_type=CONTENT_TYPES[".html"])

    def _send_file(self, path: str) -> None:
        target = resolve_inside(self.server.directory, path)
        try:
            found = _read_regular_file(target) if target is not None else None
        except OSError as exc:
            log.warning("http: cannot read %s: %s", target, exc)
            self._send_text(HTTPStatus.INTERNAL_SERVER_ERROR, "cannot read file")
            return
        if found is None:
            self._send_text(HTTPStatus.NOT_FOUND, "not found")
            return
        data, mtime = found
        content_type = CONTENT_TYPES.get(Path(path).suffix.lower(), _DEFAULT_TYPE)
        self._send_body(data, content_type=content_type, mtime=mtime)

    def _send_body(self, data: bytes, *, content_type: str, mtime: float | None = None) -> None:
        """Send ``data`` with ETag/Last-Modified, honouring conditionals and gzip."""
        use_gzip = len(data) >= _GZIP_MIN_BYTES and accepts_gzip(
            self.headers.get("Accept-Encoding")
        )
        etag = make_etag(data, gzipped=use_gzip)
        headers = {"ETag": etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
        if mtime is not None:
            headers["Last-Modified"] = formatdate(mtime, usegmt=True)
        if is_not_modified(self.headers, etag=etag, mtime=mtime):
            self._send(HTTPStatus.NOT_MODIFIED, headers, b"")
            return
        if use_gzip:
            data = self.server.gzip_cache.compress(etag, data)
            headers["Content-Encoding"] = "gzip"
        headers["Content-Type"] = content_type
        headers["X-Content-Type-Options"] = "nosniff"
        self._send(HTTPStatus.OK, headers, data)

    def _send_text(
        self, status: HTTPStatus, text: str, *, allow: str = "", no_store: bool = False
    ) -> None:
        headers = {"Content-Type": _TEXT, "X-Content-Type-Options": "nosniff"}
        headers["Cache-Control"] = "no-store" if no_store else "no-cache"
        if allow:
            headers["Allow"] = allow
        self._send(status, headers, f"{text}\n".encode())

    def _send(self, status: HTTPStatus, headers: Mapping[str, str], body: bytes) -> None:
        """Write one response; HEAD and 304 get the headers only."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if status != HTTPStatus.NOT_MODIFIED:
            self.send_header("Content-Length", str(len(body)))
        if self._has_request_body():
            self.send_header("Connection", "close")  # we never read it, so it cannot be reused
        self.end_headers()
        if self.command != "HEAD" and status != HTTPStatus.NOT_MODIFIED:
            self.wfile.write(body)

    def _has_request_body(self) -> bool:
        length = self.headers.get("Content-Length", "0").strip()
        return "Transfer-Encoding" in self.headers or length not in ("", "0")


def _metrics_headers() -> dict[str, str]:
    return {"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"}


def request_path(target: str) -> str | None:
    """The percent-decoded path of a request target, query dropped; None if malformed."""
    if target[:8].lower().startswith(("http://", "https://")):  # absolute-form, RFC 9112 3.2.2
        target = urllib.parse.urlsplit(target).path or "/"
    path = target.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        return None
    try:
        decoded = urllib.parse.unquote(path, errors="strict")
    except UnicodeDecodeError:
        return None
    return None if "\0" in decoded else decoded


def resolve_inside(root: Path, path: str) -> Path | None:
    """``path`` (decoded, ``/``-separated) as a real path inside ``root``; None if it escapes.

    Refuses backslashes and any segment starting with a dot (``..``, hidden files and the
    renderer's ``.name.*.tmp`` files), then resolves symlinks and checks containment.
    """
    if "\\" in path or "\0" in path:
        return None
    parts = [part for part in path.split("/") if part]
    if any(part.startswith(".") for part in parts):
        return None
    try:
        resolved = root.joinpath(*parts).resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop on Python < 3.13
        return None
    return resolved if resolved.is_relative_to(root) else None


def _read_regular_file(path: Path) -> tuple[bytes, float] | None:
    """The bytes and mtime of a regular file, from one open; None if missing or not a file.

    O_NONBLOCK keeps a FIFO from hanging the handler; it does nothing for regular files.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks), status.st_mtime
    finally:
        os.close(fd)


def _index_html(root: Path) -> bytes:
    """A minimal listing of the top-level output files, names escaped."""
    try:
        names = sorted(entry.name for entry in root.iterdir() if _is_listed(root, entry.name))
    except OSError:
        names = []
    items = "".join(
        f'<li><a href="{html.escape(urllib.parse.quote(name))}">{html.escape(name)}</a></li>\n'
        for name in names
    )
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8"><title>aggregator outputs</title>'
        f"</head>\n<body>\n<h1>Outputs</h1>\n<ul>\n{items}</ul>\n</body></html>\n"
    ).encode()


def _is_listed(root: Path, name: str) -> bool:
    resolved = resolve_inside(root, name)
    return resolved is not None and resolved.is_file()


def make_etag(data: bytes, *, gzipped: bool) -> str:
    """A strong ETag from the content hash; the gzip variant differs so caches keep them apart."""
    digest = hashlib.sha256(data).hexdigest()[:32]
    return f'"{digest}-gzip"' if gzipped else f'"{digest}"'


def accepts_gzip(value: str | None) -> bool:
    """Whether an Accept-Encoding value admits gzip (``gzip;q=0`` refuses it; ``*`` counts)."""
    if not value:
        return False
    gzip_q: float | None = None
    star_q: float | None = None
    for item in value.split(","):
        name, _, params = item.partition(";")
        coding = name.strip().lower()
        if coding in ("gzip", "x-gzip"):
            gzip_q = _qvalue(params)
        elif coding == "*":
            star_q = _qvalue(params)
    q = gzip_q if gzip_q is not None else star_q
    return q is not None and q > 0


def _qvalue(params: str) -> float:
    """The ``q`` weight in ``;q=0.5`` parameters (1 when absent, 0 when malformed)."""
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0
    return 1.0


def is_not_modified(headers: Message, *, etag: str, mtime: float | None) -> bool:
    """RFC 9110 13.2.2: If-None-Match decides when present, else If-Modified-Since."""
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        return etag_matches(if_none_match, etag)
    since = headers.get("If-Modified-Since")
    if since is None or mtime is None:
        return False
    try:
        since_at = parsedate_to_datetime(since)
    except (TypeError, ValueError, IndexError, OverflowError):
        return False  # an invalid date is ignored (RFC 9110 13.1.3)
    if since_at.tzinfo is None:  # "-0000" parses naive; HTTP dates are GMT
        since_at = since_at.replace(tzinfo=UTC)
    return int(mtime) <= since_at.timestamp()


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 13.1.2: allowed for If-None-Match on GET/HEAD)."""
    if if_none_match.strip() == "*":
        return True
    ours = etag.removeprefix("W/").strip('"')
    return any(tag == ours for tag in _ETAG.findall(if_none_match))
