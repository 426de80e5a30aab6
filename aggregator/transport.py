"""A thin httpx transport over aiohttp: httpx's Request/Response API, aiohttp's wire cost.

``httpx.AsyncClient`` with its default transport spends ~2.5 ms of CPU per request here, and
even over httpx-aiohttp's transport the client's own machinery (URL merging, cookies, auth and
redirect layers, event hooks) costs twice what aiohttp does (issue #5). ``fetch`` needs none of
that: it follows redirects itself, sends no cookies and no auth. So it calls this transport's
``handle_async_request`` directly (httpx's public transport API; tests inject
``httpx.MockTransport`` the same way), and this transport hands the request to one pooled
``aiohttp.ClientSession`` with nothing extra on top:

- no cookie jar (feeds are polled anonymously; a cookie set by one feed never reaches another),
- no decompression in aiohttp: the ``httpx.Response`` decodes gzip/deflate/brotli itself, so
  ``fetch``'s byte cap counts decoded bytes (a gzip bomb is still refused),
- no headers of aiohttp's own: the request carries every header that is sent,
- aiohttp's errors mapped onto httpx's exception tree (``httpx.TimeoutException``,
  ``httpx.ConnectError``, ``httpx.ReadError`` ...), so callers only know httpx.

Create it inside the event loop that uses it; ``aclose`` it there too.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import yarl

CHUNK = 64 * 1024
URL_CACHE = 100_000  # parsed URLs kept
# Sent with every request: what we decode (httpx's decoders; brotli via the ``brotli`` package).
ACCEPT_ENCODING = "gzip, deflate, br"


def _httpx_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError | None:
    """aiohttp's exception as httpx's (the most specific first); None: not a transport error."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ClientConnectorError):
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


class _Body(httpx.AsyncByteStream):
    """The response body as aiohttp reads it (still encoded); closing frees the connection."""

    __slots__ = ("_request", "_response")

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(CHUNK):
                yield chunk
        except Exception as exc:
            mapped = _httpx_error(exc, self._request)
            if mapped is None:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One pooled aiohttp session behind httpx's transport API (HTTP/1.1, keep-alive)."""

    def __init__(
        self,
        *,
        max_connections: int = 16,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 30.0,
        keepalive_s: float = 15.0,
    ) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, yarl.URL] = {}  # parsed once per URL text (bounded)
        # What aiohttp is given, per request object (``fetch.Http`` reuses a source's request
        # poll after poll); weak, so an entry lives exactly as long as its request.
        self._sent: weakref.WeakKeyDictionary[httpx.Request, tuple[yarl.URL, Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._max_connections = max_connections
        self._keepalive_s = keepalive_s
        self._timeout = aiohttp.ClientTimeout(
            sock_connect=connect_timeout_s, sock_read=read_timeout_s
        )

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, keepalive_timeout=self._keepalive_s
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent"),
            trust_env=False,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        self._session = session
        timeout = self._timeout
        if "timeout" in request.extensions:  # per request, as httpx spells it
            t: dict[str, Any] = request.extensions["timeout"]
            timeout = aiohttp.ClientTimeout(sock_connect=t.get("connect"), sock_read=t.get("read"))
        sent = self._sent.get(request)
        if sent is None:  # what aiohttp takes: a parsed yarl URL and str headers
            text = str(request.url)
            url = self._urls.get(text)
            if url is None:
                if len(self._urls) >= URL_CACHE:
                    self._urls.clear()
                url = self._urls[text] = yarl.URL(text, encoded=True)
            headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
            sent = self._sent[request] = (url, headers)
        try:
            response = await session.request(
                request.method,
                sent[0],
                headers=sent[1],
                data=request.content or None,
                allow_redirects=False,
                timeout=timeout,
            )
        except Exception as exc:  # a try costs nothing until something is raised
            mapped = _httpx_error(exc, request)
            if mapped is None:
                raise
            raise mapped from exc
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

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
