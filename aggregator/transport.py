"""A thin httpx transport over aiohttp: httpx's Request/Response API, aiohttp's wire cost.

``httpx.AsyncClient`` with its default transport spends several times aiohttp's CPU per
request, and even over httpx-aiohttp's transport the client's own machinery (URL merging,
cookies, auth and redirect layers, event hooks) costs more than aiohttp does (bench/).
``fetch`` needs none of that: it follows redirects itself, sends no cookies and no auth. So
it calls this transport's ``handle_async_request`` directly (httpx's public transport API;
tests inject ``httpx.MockTransport`` the same way), and this transport hands the request to a
pooled ``aiohttp.ClientSession`` with nothing extra on top:

- no cookie jar (feeds are polled anonymously; a cookie set by one feed never reaches another),
- no decompression in aiohttp: the ``httpx.Response`` decodes gzip/deflate/brotli itself, so
  ``fetch``'s byte cap counts decoded bytes (a gzip bomb is still refused),
- no headers of aiohttp's own: the request carries every header that is sent,
- aiohttp's errors mapped onto httpx's exception tree (``httpx.TimeoutException``,
  ``httpx.ConnectError``, ``httpx.ReadError`` ...), so callers only know httpx.

It also enforces ``netpolicy`` (SSRF) on the address each request connects to: a name through
``PolicyResolver`` (aiohttp connects to exactly the addresses it returns, so no DNS answer can
change between check and connect), an IP literal (which aiohttp never resolves) before anything
is sent. A request is checked as a redirect (public addresses only) when its
``CONFIGURED_URL`` extension names another host than its own; the transport follows no redirects
itself, so a request without that extension is its caller's choice, like a configured URL.
Redirected requests have their own session: a pooled connection opened for a source's configured
host never carries a redirect of another source there.

Create it inside the event loop that uses it; ``aclose`` it there too.
"""

from __future__ import annotations

import re
import socket
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any

import aiohttp
import httpx
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from .netpolicy import DEFAULT_POLICY, NetPolicy, literal_address, parse_address
from .types import LowerHeaders

CHUNK = 64 * 1024
URL_CACHE = 100_000  # parsed URLs kept
# Sent with every request: what we decode (httpx's decoders; brotli via the ``brotli`` package).
ACCEPT_ENCODING = "gzip, deflate, br"
# Request extension: the URL the admin configured for the source this request serves. Another
# host than the request's own means a redirect (or a moved feed) took the fetch there.
CONFIGURED_URL = "aggregator.configured_url"
# What aiohttp adds to a request that lacks them; ours carry their own, or none.
AIOHTTP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent")
_CONFIGURED, _REDIRECTED = 0, 1  # which session (and which check) a request goes through


class Refused(httpx.ConnectError):
    """The network policy refused the request's address; nothing was sent to it."""


class _RefusedAddress(OSError):
    """Raised by ``PolicyResolver``: aiohttp wraps a resolver's OSError, keeping it as os_error."""


class PolicyResolver(AbstractResolver):
    """Resolves through ``base``, keeping only the addresses ``policy`` lets a request reach."""

    def __init__(self, base: AbstractResolver, policy: NetPolicy, *, redirect: bool) -> None:
        self._base = base
        self._policy = policy
        self._redirect = redirect

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        kept: list[ResolveResult] = []
        refusals: list[str] = []
        for info in await self._base.resolve(host, port, family):
            try:
                address = parse_address(info["host"])
            except ValueError:
                refusals.append(f"{host} at unreadable address {info['host']!r}")
                continue
            refusal = self._policy.refusal(address, redirect=self._redirect, host=host)
            if refusal is None:
                kept.append(info)
            else:
                refusals.append(refusal)
        if refusals and not kept:
            raise _RefusedAddress(refusals[0])
        return kept  # a name with public and private answers connects to the public ones

    async def close(self) -> None:
        """The base resolver is shared: its owner closes it."""


def _httpx_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError | None:
    """aiohttp's exception as httpx's (the most specific first); None: not a transport error."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, _RefusedAddress):
            return Refused(str(exc.os_error), request=request)
        return httpx.ConnectError(text, request=request)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(text, request=request)
    if isinstance(exc, aiohttp.SocketTimeoutError | TimeoutError):
        return httpx.ReadTimeout(text, request=request)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return httpx.ReadError(text, request=request)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(text, request=request)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return httpx.TransportError(f"{type(exc).__name__}: {exc}", request=request)
    return None


def decode_headers(raw: Iterable[tuple[bytes, bytes]]) -> LowerHeaders:
    """Raw header pairs as one dict, as ``dict(httpx.Headers(raw).items())`` gives it: names
    lower-cased, repeated headers joined with ", ", all decoded as UTF-8 or else all as
    ISO-8859-1."""
    try:
        return _joined(raw, "utf-8")  # (ASCII included)
    except UnicodeDecodeError:
        return _joined(raw, "iso-8859-1")


def _joined(raw: Iterable[tuple[bytes, bytes]], codec: str) -> LowerHeaders:
    """``decode_headers`` in one codec, in one pass (every response goes through it)."""
    out = LowerHeaders()
    for k, v in raw:
        key = k.decode(codec).lower()
        out[key] = f"{out[key]}, {v.decode(codec)}" if key in out else v.decode(codec)
    return out


class Answer:
    """A response as ``fetch`` reads it, without building an ``httpx.Response`` (issue #16:
    that, its ``Headers`` and its ``aclose`` cost about 3 % of a warm poll's instructions).

    ``status``, ``reason``, ``headers`` (``decode_headers``), the body as it came (still
    encoded) from ``raw_chunks()``, or whole and decoded in ``content`` when the response was
    built in memory; ``aclose()`` frees the connection. ``AiohttpTransport.get`` makes one
    straight from aiohttp's response; ``Answer.of`` wraps any transport's ``httpx.Response``
    (the plain path, which tests hold the fast one equal to).
    """

    __slots__ = ("_chunks", "_close", "content", "headers", "reason", "status")

    def __init__(
        self,
        status: int,
        reason: str,
        headers: LowerHeaders,
        chunks: Callable[[], AsyncIterator[bytes]],
        close: Callable[[], Awaitable[None]],
        content: bytes | None = None,
    ) -> None:
        self.status, self.reason, self.headers = status, reason, headers
        self._chunks, self._close, self.content = chunks, close, content

    @classmethod
    def of(cls, response: httpx.Response) -> Answer:
        whole = response.content if response.is_stream_consumed else None
        headers = decode_headers(response.headers.raw)
        return cls(response.status_code, response.reason_phrase, headers, response.aiter_raw,
                   response.aclose, whole)  # fmt: skip

    @property
    def redirect_to(self) -> str | None:
        """The Location of a redirect (as ``httpx.Response.has_redirect_location``), or None."""
        if self.status in (301, 302, 303, 307, 308):
            return self.headers.get("location")
        return None

    def raw_chunks(self) -> AsyncIterator[bytes]:
        return self._chunks()

    def aclose(self) -> Awaitable[None]:
        """Free the connection (await it). Not a coroutine itself: it hands back the
        transport's (one frame less per poll)."""
        return self._close()


class _Body(httpx.AsyncByteStream):
    """The response body as aiohttp reads it (still encoded); closing frees the connection.

    ``request``: the request, or the URL of one sent without an ``httpx.Request`` (``get``),
    built only if an error needs it."""

    __slots__ = ("_request", "_response")

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request | str) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(CHUNK):
                yield chunk
        except Exception as exc:
            mapped = _httpx_error(exc, _request_of(self._request))
            if mapped is None:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        self._response.release()


# An http(s) URL that httpx writes back exactly as it is: lower-case scheme and host name (or
# a dotted-quad IPv4 address), a port other than the scheme's default, a path and query of
# characters it leaves alone (no "%" escapes, no "." or ".." segments), no fragment.
_PLAIN_URL = re.compile(
    r"(?P<scheme>https?)://(?P<netloc>(?P<host>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
    r"(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*)(?::(?P<port>[1-9][0-9]{0,4}))?)"
    r"(?P<path>/[A-Za-z0-9_.~!$&'()*+,;=:@/-]*)?(?:\?[A-Za-z0-9_.~!$&'()*+,;=:@/?-]*)?"
)
_DOT_SEGMENT = re.compile(r"/\.\.?(?:/|$)")
_DOTTED_QUAD = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
                          r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])")  # fmt: skip
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def plain_url(url: str) -> tuple[str, str] | None:
    """``(str(httpx.URL(url)), its netloc)`` for a URL that httpx leaves as it is, without
    parsing it; None for any other (httpx parses it: ``AiohttpTransport._target``)."""
    m = _PLAIN_URL.fullmatch(url)
    if m is None or m["port"] == _DEFAULT_PORTS[m["scheme"]]:
        return None
    if m["port"] is not None and int(m["port"]) > 65535:
        return None
    host = m["host"]
    if (
        host[-1].isdigit()
        and host.rpartition(".")[2].isdigit()
        and not _DOTTED_QUAD.fullmatch(host)
    ):
        return None  # "0177.0.0.1", "1.2.3": what httpx says of these is its own
    if m["path"] and _DOT_SEGMENT.search(m["path"]):
        return None
    return url, m["netloc"]


def _names_auto_headers(headers: Sequence[tuple[str, str]]) -> bool:
    """Whether ``headers`` name all of ``AIOHTTP_AUTO_HEADERS`` (aiohttp then adds none)."""
    names = {name.lower() for name, _ in headers}
    return all(name.lower() in names for name in AIOHTTP_AUTO_HEADERS)


def _request_of(request: httpx.Request | str) -> httpx.Request:
    return request if isinstance(request, httpx.Request) else httpx.Request("GET", request)


# A source's target for ``AiohttpTransport.get``: the URL as aiohttp takes it, the Host header
# httpx would send, and the session (and check) it goes through.
_Target = tuple[yarl.URL, tuple[str, str], int]


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One pooled aiohttp session behind httpx's transport API (HTTP/1.1, keep-alive), and one
    more for redirected requests when the policy holds them to stricter rules."""

    def __init__(
        self,
        *,
        max_connections: int = 16,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 30.0,
        keepalive_s: float = 15.0,
        policy: NetPolicy = DEFAULT_POLICY,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self._sessions: list[aiohttp.ClientSession | None] = [None, None]
        self._policy = policy
        self._resolver = resolver  # resolves names; the policy is applied on top (tests fake it)
        self._owns_resolver = resolver is None
        self._urls: dict[str, yarl.URL] = {}  # parsed once per URL text (bounded)
        self._hosts: dict[str, str | None] = {}  # configured URL -> its host (bounded)
        # What aiohttp is given, per request object (``fetch.Http`` reuses a source's request
        # poll after poll), and through which session; weak, so an entry lives exactly as long
        # as its request. The policy's check of an IP literal is done once, here.
        self._sent: weakref.WeakKeyDictionary[httpx.Request, tuple[yarl.URL, Any, int]] = (
            weakref.WeakKeyDictionary()
        )
        # ``get``'s targets by URL text (and configured URL, for a redirected one; bounded).
        self._targets: dict[str | tuple[str, str], _Target] = {}
        self._complete: Sequence[tuple[str, str]] | None = None  # names every auto header
        self._max_connections = max_connections
        self._keepalive_s = keepalive_s
        self._timeout = aiohttp.ClientTimeout(
            sock_connect=connect_timeout_s, sock_read=read_timeout_s
        )

    def _open(self, which: int) -> aiohttp.ClientSession:
        if self._resolver is None:
            self._resolver = DefaultResolver()
        resolver = PolicyResolver(self._resolver, self._policy, redirect=which == _REDIRECTED)
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, keepalive_timeout=self._keepalive_s, resolver=resolver
        )
        # No ``skip_auto_headers`` here: a session's set costs every request two more header
        # dicts in aiohttp (~3 % of a warm poll's instructions, issue #16). ``get`` always sends
        # the three headers aiohttp would add, so it adds none; ``_send`` (any other request)
        # names them per request.
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
        )
        self._sessions[which] = session
        return session

    def _parse(self, text: str) -> yarl.URL:
        url = self._urls.get(text)
        if url is None:
            if len(self._urls) >= URL_CACHE:
                self._urls.clear()
            url = self._urls[text] = yarl.URL(text, encoded=True)
        return url

    def _host_of(self, configured: str) -> str | None:
        """The host a request for ``configured`` connects to (parsed as requests are)."""
        if configured not in self._hosts:
            if len(self._hosts) >= URL_CACHE:
                self._hosts.clear()
            try:
                host = self._parse(str(httpx.URL(configured))).raw_host
            except (httpx.InvalidURL, ValueError):
                host = None  # matches no request's host: its requests count as redirected
            self._hosts[configured] = host
        return self._hosts[configured]

    def _prepare(self, request: httpx.Request) -> tuple[yarl.URL, Any, int]:
        sent = self._sent[request] = self._resolve(request)
        return sent

    def _resolve(self, request: httpx.Request) -> tuple[yarl.URL, Any, int]:
        """What aiohttp takes (a parsed yarl URL and str headers) and the session to use;
        raises ``Refused`` for an IP literal the policy refuses."""
        configured = request.extensions.get(CONFIGURED_URL)
        url, which = self._check(str(request.url), configured, lambda: request)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        return url, headers, which

    def _check(
        self, text: str, configured: str | None, request: Callable[[], httpx.Request]
    ) -> tuple[yarl.URL, int]:
        """``text`` (a URL as httpx writes it) parsed, and its session; ``Refused`` (about
        ``request()``) for an IP literal the policy refuses."""
        url = self._parse(text)
        host = url.raw_host or ""
        redirect = configured is not None and self._host_of(configured) != host
        try:
            address = literal_address(host)
        except ValueError as exc:
            message = f"unreadable address {host!r} (ssrf policy)"
            raise Refused(message, request=request()) from exc
        if address is not None:
            refusal = self._policy.refusal(address, redirect=redirect)
            if refusal is not None:
                raise Refused(refusal, request=request())
        return url, _REDIRECTED if redirect and self._policy.strict else _CONFIGURED

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._send(request)
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_Body(response, request),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode(),
            },
        )

    async def get(
        self,
        url: str,
        headers: Sequence[tuple[str, str]],
        validators: Sequence[tuple[str, str]],
        configured: str | None = None,
    ) -> Answer:
        """GET ``url`` as ``handle_async_request`` sends ``httpx.Request("GET", url, ...)`` with
        the ``CONFIGURED_URL`` extension ``configured``: the same checks, the same session, the
        same header lines in the same order (Host, ``headers``, then ``validators``), without
        building the request (``fetch.Http``'s path over this transport; issue #16).

        Between polls a source costs its target (``_Target``: parsed URL, Host line, session)
        instead of a kept request with its headers twice (httpx's and aiohttp's): ~3 KB each,
        300 MB at 100,000 sources.
        """
        key = url if configured is None else (url, configured)
        target = self._targets.get(key) or self._target(key, url, configured)
        lines = [target[1], *headers, *validators]
        if headers is not self._complete:  # (``fetch.Http`` passes the same list every time)
            self._complete = headers if _names_auto_headers(headers) else None
        skip = None if headers is self._complete else AIOHTTP_AUTO_HEADERS
        session = self._sessions[target[2]] or self._open(target[2])
        try:  # as ``_request`` does, without its frame and keyword dicts (every poll comes here)
            response = await session.request("GET", target[0], allow_redirects=False,
                                             headers=lines, timeout=self._timeout,
                                             skip_auto_headers=skip)  # fmt: skip
        except Exception as exc:
            mapped = _httpx_error(exc, _request_of(url))
            if mapped is None:
                raise
            raise mapped from exc
        body = _Body(response, url)
        return Answer(response.status, response.reason or "", decode_headers(response.raw_headers),
                      body.__aiter__, body.aclose)  # fmt: skip

    def _target(self, key: str | tuple[str, str], url: str, configured: str | None) -> _Target:
        """Check and parse ``url`` once, as ``_send`` does a request for it (raising what it
        raises: ``httpx.InvalidURL``, ``Refused``). A URL ``plain_url`` reads is not given to
        httpx at all: parsing one costs it ~15 us, paid by every source of a ``once``."""
        extensions = {CONFIGURED_URL: configured} if configured is not None else None

        def request() -> httpx.Request:
            return httpx.Request("GET", url, extensions=extensions)

        plain = plain_url(url)
        if plain is not None:
            parsed, which = self._check(plain[0], configured, request)
            host = ("Host", plain[1])
        else:
            parsed, lines, which = self._resolve(request())
            (host,) = lines  # httpx's only header of its own for a GET: Host
        if len(self._targets) >= URL_CACHE:
            self._targets.clear()
        target = self._targets[key] = (parsed, host, which)
        return target

    async def _send(self, request: httpx.Request) -> aiohttp.ClientResponse:
        sent = self._sent.get(request) or self._prepare(request)
        timeout = self._timeout
        if "timeout" in request.extensions:  # per request, as httpx spells it
            t: dict[str, Any] = request.extensions["timeout"]
            timeout = aiohttp.ClientTimeout(sock_connect=t.get("connect"), sock_read=t.get("read"))
        return await self._request(sent[2], request, request.method, sent[0], headers=sent[1],
                                   data=request.content or None, timeout=timeout,
                                   skip_auto_headers=AIOHTTP_AUTO_HEADERS)  # fmt: skip

    async def _request(
        self, which: int, about: httpx.Request | str, method: str, url: yarl.URL, **options: Any
    ) -> aiohttp.ClientResponse:
        """``request`` on session ``which`` (no redirects followed), aiohttp's errors raised as
        httpx's about ``about`` (a request, or the URL of one built only if an error needs it)."""
        session = self._sessions[which] or self._open(which)
        try:
            return await session.request(method, url, allow_redirects=False, **options)
        except Exception as exc:  # a try costs nothing until something is raised
            mapped = _httpx_error(exc, _request_of(about))
            if mapped is None:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        for which, session in enumerate(self._sessions):
            if session is not None:
                await session.close()
                self._sessions[which] = None
        if self._owns_resolver and self._resolver is not None:
            await self._resolver.close()
            self._resolver = None
