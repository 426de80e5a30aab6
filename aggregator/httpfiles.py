"""HTTP pieces of the output server that know nothing of sockets: safe paths, validators,
conditional requests, gzip. No I/O beyond reading the files asked for.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import os
import re
import stat
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from pathlib import Path

_GZIP_CACHE_ENTRIES = 64
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


def read_regular_file(path: Path) -> tuple[bytes, float] | None:
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


def index_html(root: Path) -> bytes:
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


def is_not_modified(headers: Mapping[str, str], *, etag: str, mtime: float | None) -> bool:
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
