"""Get a source's document: over HTTP through an injected ``Http``, or from a fixture.

Conditional GET, a byte cap on the decoded body, at most ``MAX_REDIRECTS`` redirects, http(s)
only. A 304 is a value, not an error; 301/308 are reported in ``Fetched.permanent_url``.
No parsing here.

``Http`` sends ``httpx.Request``s straight to an httpx transport (``AiohttpTransport`` in the
daemon, ``httpx.MockTransport`` in tests) instead of through ``httpx.AsyncClient``: the client's
layers (URL merging, cookies, auth, its own redirect loop) cost more CPU per request than
aiohttp's whole exchange, and a fetch uses none of them (see ``aggregator.transport``).

Every request past the source's configured host carries the configured URL (the transport's
``CONFIGURED_URL`` extension), so the transport holds it to the SSRF policy for redirects
(``aggregator.netpolicy``); a refusal fails that source alone.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urljoin

import brotli  # type: ignore[import-untyped]  # (no type hints shipped)
import httpx
from aiohttp.abc import AbstractResolver

from .deadlines import Deadlines
from .errors import FetchError
from .netpolicy import DEFAULT_POLICY, NetPolicy
from .transport import (
    ACCEPT_ENCODING,
    CONFIGURED_URL,
    AiohttpTransport,
    Answer,
    Refused,
    decode_headers,
)
from .types import Fetched, utc_now

MAX_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 5
ACCEPT = (
    "application/atom+xml, application/rss+xml, application/feed+json, application/json;q=0.9, "
    "application/rdf+xml;q=0.9, application/xml;q=0.8, text/xml;q=0.8, text/markdown;q=0.7, "
    "*/*;q=0.5"
)
FIXTURE_SUFFIXES = (".md", ".markdown")


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def read_fixture(source_id: str, path: Path, *, url: str) -> Fetched:
    """Read an offline stand-in: one file, or a directory of Markdown posts (sorted by name)."""
    try:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in FIXTURE_SUFFIXES)
            parts = tuple((p.name, p.read_bytes()) for p in files)
            digest = hashlib.sha256()
            for name, data in parts:
                digest.update(name.encode() + b"\0" + body_hash(data).encode())
            return Fetched(source_id, url, 200, b"", parts=parts, body_hash=digest.hexdigest())
        body = path.read_bytes()
    except OSError as exc:
        raise FetchError(source_id, f"cannot read fixture {path}: {exc.strerror or exc}") from exc
    return Fetched(source_id, url, 200, body, body_hash=body_hash(body))


def retry_after_s(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - utc_now()).total_seconds()) if when.tzinfo else None


def freshness_s(headers: Mapping[str, str], now: datetime) -> float | None:
    """How long the response stays fresh: Cache-Control max-age, else Expires - Date."""
    if "cache-control" not in headers and "expires" not in headers:  # most answers
        return None
    control = headers.get("cache-control", "").lower()
    if "no-store" in control or "no-cache" in control:
        return None
    for directive in control.split(","):
        name, _, value = directive.strip().partition("=")
        if name in ("max-age", "s-maxage") and value.strip('"').isdigit():
            return float(value.strip('"'))
    expires = _http_date(headers.get("expires"))
    if expires is None:
        return None
    date = _http_date(headers.get("date")) or now
    return max(0.0, (expires - date).total_seconds())


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


async def _read_capped(source_id: str, response: Answer, max_bytes: int) -> bytes:
    """The body, decoded (gzip, deflate, br) and capped at ``max_bytes`` of DECODED bytes.

    Decoded here, not by httpx: its decoders inflate a whole network chunk at once, so a few KB
    of brotli could become gigabytes before any cap is checked. Ours never produce more than
    the room left under the cap (zlib's ``max_length``, brotli's ``output_buffer_limit``).
    """
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(source_id, f"body of {declared} bytes is over the {max_bytes}-byte cap")
    if response.content is not None:  # built whole in memory, already decoded (MockTransport)
        return _capped(source_id, response.content, max_bytes)
    decoders = [_decoder(e) for e in response.headers.get("content-encoding", "").split(",")]
    chunks: list[bytes] = []
    size = 0
    try:
        async for raw in response.raw_chunks():
            chunk = raw
            for decode in reversed(decoders):  # the last encoding applied comes off first
                chunk = decode(chunk, max_bytes - size + 1)
            size += len(chunk)
            if size > max_bytes:
                raise FetchError(source_id, f"body is over the {max_bytes}-byte cap (decoded)")
            chunks.append(chunk)
    except (zlib.error, brotli.error) as exc:
        raise FetchError(source_id, f"cannot decode the body: {exc}") from exc
    return b"".join(chunks)


def _capped(source_id: str, body: bytes, max_bytes: int) -> bytes:
    if len(body) > max_bytes:
        raise FetchError(source_id, f"body is over the {max_bytes}-byte cap (decoded)")
    return body


Decode = Callable[[bytes, int], bytes]  # (input, at most this many bytes out) -> output


def _decoder(encoding: str) -> Decode:
    """A bounded decoder for one Content-Encoding (identity for what we did not ask for)."""
    name = encoding.strip().lower()
    if name in ("gzip", "x-gzip"):
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return lambda data, limit: inflate.decompress(data, limit)
    if name == "deflate":
        return _Deflate()
    if name == "br":
        unbrotli = brotli.Decompressor()
        return lambda data, limit: unbrotli.process(data, output_buffer_limit=limit)
    return lambda data, limit: data


class _Deflate:
    """ "deflate" as servers send it: zlib-wrapped (RFC 9110), or raw as some send it."""

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj()
        self._first = True

    def __call__(self, data: bytes, limit: int) -> bytes:
        if self._first:
            self._first = False
            try:
                return self._inflate.decompress(data, limit)
            except zlib.error:
                self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._inflate.decompress(data, limit)


def header_dict(response: httpx.Response) -> dict[str, str]:
    """The response's headers as ``dict(response.headers.items())``: names lower-cased, repeated
    headers joined with ", ", all decoded as UTF-8 or else all as ISO-8859-1, as httpx does.

    Read straight from the raw list: ``Headers.items()`` re-checks the encoding of every header
    on each call, a tenth of a warm poll's CPU time.
    """
    return decode_headers(response.headers.raw)


def _check_scheme(source_id: str, url: str) -> None:
    if not url[:8].lower().startswith(("http://", "https://")):
        raise FetchError(source_id, f"refusing to fetch non-http(s) URL {url!r}")


def _error_for(source_id: str, response: Answer) -> FetchError:
    status = response.status
    wait = retry_after_s(response.headers.get("retry-after")) if status in (429, 503) else None
    reason = "gone" if status == 410 else response.reason or "error"
    return FetchError(source_id, f"HTTP {status} {reason}", status=status, retry_after_s=wait)


_NO_VALIDATORS: list[tuple[str, str]] = []


def validators(etag: str | None, last_modified: str | None) -> list[tuple[str, str]]:
    """The conditional headers for these validators. One that cannot be sent (a header value
    is ISO-8859-1; a server's ETag in UTF-8 reads back as text beyond it) is left out: the poll
    is unconditional, where sending it would fail the source at every poll."""
    if not etag and not last_modified:
        return _NO_VALIDATORS
    lines = []
    if etag and _sendable(etag):
        lines.append(("If-None-Match", etag))
    if last_modified and _sendable(last_modified):
        lines.append(("If-Modified-Since", last_modified))
    return lines


def _sendable(value: str) -> bool:
    return value.isascii() or all(ord(c) < 256 for c in value)


class Http:
    """What ``fetch`` sends through: an httpx transport and the headers every request carries.

    Over ``AiohttpTransport`` (the daemon's) a GET is sent without an ``httpx.Request``
    (``AiohttpTransport.get``): building one costs about as much as aiohttp's whole 304
    exchange, and keeping one per source costs ~3 KB each. Over any other transport (tests,
    record/replay) a source's conditional GET is the same request poll after poll (same URL,
    same validators), so its ``httpx.Request`` is built once and kept, one per URL (requests
    are never modified once built); when a response brings new validators, ``fetch`` builds
    the next poll's request right away (``prepare``), off the path of the poll that sends it.
    """

    CACHE = 100_000  # URLs whose request is kept

    def __init__(self, transport: httpx.AsyncBaseTransport, *, user_agent: str) -> None:
        self.transport = transport
        # The fast path (``AiohttpTransport.get``: an ``Answer`` straight from aiohttp, no
        # ``httpx.Request``) where the transport has it; any other transport is sent a request
        # and its ``httpx.Response`` wrapped (``Answer.of``).
        self._get = transport.get if isinstance(transport, AiohttpTransport) else None
        self.headers = {
            "User-Agent": user_agent,
            "Accept": ACCEPT,
            "Accept-Encoding": ACCEPT_ENCODING,
        }
        # As bytes: httpx takes them as they are (no per-request encoding of every header).
        self._raw = [(k.encode(), v.encode()) for k, v in self.headers.items()]
        self._lines = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self._raw]
        self._requests: dict[str, tuple[str | None, str | None, httpx.Request, str | None]] = {}
        self.deadlines = Deadlines()  # every fetch's total timeout, on one loop timer

    def request(
        self, url: str, etag: str | None, last_modified: str | None, configured: str | None = None
    ) -> httpx.Request:
        """The conditional GET of ``url`` with these validators (built once, then reused).

        ``configured``: the source's configured URL when ``url`` is not it (see the module
        docstring); None for the configured URL itself.
        """
        kept = self._requests.get(url)
        if (
            kept is not None
            and kept[0] == etag
            and kept[1] == last_modified
            and kept[3] == configured  # no tuple built: this runs on every poll
        ):
            return kept[2]
        headers = self._raw.copy()
        headers += [
            (k.encode("latin-1"), v.encode("latin-1")) for k, v in validators(etag, last_modified)
        ]
        target = kept[2].url if kept is not None else httpx.URL(url)
        extensions = {CONFIGURED_URL: configured} if configured is not None else None
        request = httpx.Request("GET", target, headers=headers, extensions=extensions)
        if kept is None and len(self._requests) >= self.CACHE:
            self._requests.clear()
        self._requests[url] = (etag, last_modified, request, configured)
        return request

    def prepare(
        self, url: str, etag: str | None, last_modified: str | None, configured: str | None = None
    ) -> None:
        """Build the request the next poll of ``url`` will send (see the class docstring)."""
        if (etag or last_modified) and self._get is None:
            self.request(url, etag, last_modified, configured)

    def get(
        self, url: str, etag: str | None, last_modified: str | None, configured: str | None = None
    ) -> Awaitable[Answer]:
        """Send a conditional GET; the response's body is not read yet (``aclose`` it).

        Not a coroutine itself: it hands back the transport's (one frame less per poll)."""
        if self._get is not None:
            return self._get(url, self._lines, validators(etag, last_modified), configured)
        return self._send(self.request(url, etag, last_modified, configured))

    async def _send(self, request: httpx.Request) -> Answer:
        return Answer.of(await self.transport.handle_async_request(request))

    async def aclose(self) -> None:
        await self.transport.aclose()


async def fetch(
    http: Http,
    source_id: str,
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    max_bytes: int = MAX_BYTES,
    timeout_s: float = 30.0,
    configured_url: str | None = None,
) -> Fetched:
    """GET ``url`` conditionally, following up to ``MAX_REDIRECTS`` redirects by hand.

    ``timeout_s`` bounds the whole exchange (redirects and body included); the transport's own
    timeouts bound connecting and each read. ``configured_url``: the URL in the source's config
    when ``url`` is where the feed moved to; only requests to its host may reach private
    addresses (``aggregator.netpolicy``). Default: ``url``.
    """
    origin = configured_url or url
    try:
        fetching = _fetch(http, source_id, url, origin, etag, last_modified, max_bytes)
        return await http.deadlines.within(timeout_s, fetching)
    except TimeoutError as exc:
        message = f"total timeout: no complete answer in {timeout_s:g}s"
        raise FetchError(source_id, message, timed_out=True) from exc
    except Refused as exc:
        raise FetchError(source_id, f"refused: {exc}") from exc
    except httpx.InvalidURL as exc:  # a Location httpx cannot read ("http://0177.0.0.1/")
        raise FetchError(source_id, f"invalid URL: {exc}") from exc
    except httpx.HTTPError as exc:
        timed_out = isinstance(exc, httpx.TimeoutException)
        raise FetchError(source_id, f"{type(exc).__name__}: {exc}", timed_out=timed_out) from exc


async def _fetch(
    http: Http,
    source_id: str,
    url: str,
    origin: str,
    etag: str | None,
    last_modified: str | None,
    max_bytes: int,
) -> Fetched:
    permanent: str | None = None  # where the feed now lives, if every hop so far was permanent
    all_permanent = True
    hops: list[str] = []  # "301 https://...": for ``sources show`` (issue #14)
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        _check_scheme(source_id, current)
        configured = None if current == origin else origin  # None: no extension to build
        resp = await http.get(current, etag, last_modified, configured)
        try:
            status = resp.status
            location = resp.redirect_to
            if location is not None:
                target = urljoin(current, location)
                all_permanent = all_permanent and status in (301, 308)
                permanent = target if all_permanent else None
                hops.append(f"{status} {target}")
                current = target
                continue
            if status == 304:
                return Fetched(source_id, current, 304, None, resp.headers, etag,
                               last_modified, permanent_url=permanent,
                               redirects=tuple(hops))  # fmt: skip
            if status != 200:
                raise _error_for(source_id, resp)
            body = await _read_capped(source_id, resp, max_bytes)
            headers = resp.headers
            new_etag, new_modified = headers.get("etag"), headers.get("last-modified")
            http.prepare(current, new_etag, new_modified, configured)
            return Fetched(
                source_id, current, 200, body, headers, etag=new_etag,
                last_modified=new_modified, body_hash=body_hash(body), permanent_url=permanent,
                redirects=tuple(hops),
            )  # fmt: skip
        finally:
            await resp.aclose()
    raise FetchError(source_id, f"more than {MAX_REDIRECTS} redirects")


def make_http(
    *,
    user_agent: str,
    connect_timeout_s: float = 10.0,
    read_timeout_s: float = 20.0,
    max_connections: int = 16,
    policy: NetPolicy = DEFAULT_POLICY,
    resolver: AbstractResolver | None = None,
) -> Http:
    """The daemon's ``Http``: clear User-Agent, timeouts, a keep-alive pool over aiohttp, the
    SSRF ``policy`` (``[fetch]``; the default refuses redirects into private networks).

    ``resolver`` resolves names (default: aiohttp's); the policy applies to what it returns.
    Create it inside the event loop that uses it.
    """
    transport = AiohttpTransport(
        max_connections=max_connections,
        connect_timeout_s=connect_timeout_s,
        read_timeout_s=read_timeout_s,
        policy=policy,
        resolver=resolver,
    )
    return Http(transport, user_agent=user_agent)
