"""The aiohttp transport under ``fetch``, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import brotli
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.errors import FetchError
from aggregator.fetch import Http, fetch, make_http
from aggregator.transport import AiohttpTransport, decode_headers, plain_url
from aggregator.types import Fetched

from .feedserver import FeedServer, Route, rss, running_feed_server

FEED = rss("t", [("a", "A")])


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with running_feed_server() as s:
        yield s


def get(url: str, **kwargs: Any) -> Fetched:
    timeouts = {k: kwargs.pop(k) for k in ("read_timeout_s", "connect_timeout_s") if k in kwargs}

    async def go() -> Fetched:
        http = make_http(user_agent="aggregator/test (+https://x)", **timeouts)
        try:
            return await fetch(http, "s", url, **kwargs)
        finally:
            await http.aclose()

    return asyncio.run(go())


def test_sends_our_headers_only_and_revalidates(server: FeedServer) -> None:
    server.routes["/f"] = Route(body=FEED, headers={"Set-Cookie": "track=1; Path=/"})
    first = get(server.url("/f"))
    second = get(server.url("/f"), etag=first.etag, last_modified=first.last_modified)
    assert (first.status, first.body, second.status, second.body) == (200, FEED, 304, None)
    sent = server.requests[-1].headers
    assert sent["user-agent"] == "aggregator/test (+https://x)"
    assert sent["accept-encoding"] == "gzip, deflate, br"
    assert "application/atom+xml" in sent["accept"]
    assert sent["if-none-match"] == first.etag
    assert sent["if-modified-since"] == first.last_modified
    assert "cookie" not in sent


def test_one_pool_keeps_connections_alive_and_no_cookie_travels(server: FeedServer) -> None:
    server.routes["/a"] = Route(body=FEED, headers={"Set-Cookie": "session=1; Path=/"})
    server.routes["/b"] = Route(body=FEED)

    async def go() -> list[Fetched]:
        http = make_http(user_agent="ua")
        try:
            return [await fetch(http, "s", server.url(p)) for p in ("/a", "/b", "/a")]
        finally:
            await http.aclose()

    got = asyncio.run(go())
    assert [g.body for g in got] == [FEED] * 3
    assert all("cookie" not in seen.headers for seen in server.requests)


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_compressed_bodies_are_decoded_and_capped_decoded(
    server: FeedServer, encoding: str
) -> None:
    big = FEED + b"<!--" + b" " * 200_000 + b"-->"
    if encoding == "gzip":
        server.routes["/f"] = Route(body=big, gzip=True)
    else:
        server.routes["/f"] = Route(body=brotli.compress(big), headers={"Content-Encoding": "br"})
    assert get(server.url("/f")).body == big
    with pytest.raises(FetchError, match="decoded"):
        get(server.url("/f"), max_bytes=100_000)


def test_refused_connection_is_a_fetch_error() -> None:
    with socket.socket() as s:  # a port nobody listens on once this closes
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FetchError, match="ConnectError"):
        get(f"http://127.0.0.1:{port}/f")


def test_read_timeout_is_a_fetch_error(server: FeedServer) -> None:
    server.routes["/slow"] = Route(body=FEED, block=threading.Event())
    with pytest.raises(FetchError, match="ReadTimeout"):
        get(server.url("/slow"), read_timeout_s=0.2)


def test_status_and_reason_reach_the_error(server: FeedServer) -> None:
    server.routes["/busy"] = Route(status=503, body=b"later", headers={"Retry-After": "60"})
    with pytest.raises(FetchError) as info:
        get(server.url("/busy"))
    assert info.value.status == 503 and "HTTP 503 Service Unavailable" in str(info.value)
    assert info.value.retry_after_s == 60


def test_transport_speaks_httpx_to_any_caller(server: FeedServer) -> None:
    """The same transport under a plain ``httpx.AsyncClient`` (httpx's public transport API)."""
    server.routes["/f"] = Route(body=FEED, gzip=True)

    async def go() -> httpx.Response:
        http = make_http(user_agent="ua")
        async with httpx.AsyncClient(transport=http.transport) as client:
            return await client.get(server.url("/f"), headers={"Accept-Encoding": "gzip"})

    response = asyncio.run(go())
    assert response.status_code == 200 and response.content == FEED
    assert response.headers["content-encoding"] == "gzip"


def test_aiohttp_adds_no_header_of_its_own(server: FeedServer) -> None:
    """The session has no ``skip_auto_headers`` (they cost every request); a request that names
    no User-Agent, Accept or Accept-Encoding still goes out without aiohttp's, by either path."""
    server.routes["/f"] = Route(body=FEED)

    async def go() -> None:
        http = make_http(user_agent="ua")
        transport = http.transport
        assert isinstance(transport, AiohttpTransport)
        try:
            response = await transport.handle_async_request(httpx.Request("GET", server.url("/f")))
            await response.aread()
            for headers in ([("X-Mine", "1")], [("User-Agent", "ua")]):  # two lists: both checked
                answer = await transport.get(server.url("/f"), headers, [])
                await answer.aclose()
            answer = await http.get(server.url("/f"), None, None)  # ``Http``'s own three
            await answer.aclose()
        finally:
            await http.aclose()

    asyncio.run(go())
    names = [[name.lower() for name, _ in seen.lines] for seen in server.requests]
    assert names[:3] == [["host"], ["host", "x-mine"], ["host", "user-agent"]]
    assert names[3] == ["host", "user-agent", "accept", "accept-encoding"]


# -- the fast path (``Answer`` straight from aiohttp, issue #16) equals the plain one -----------


class _Plain(httpx.AsyncBaseTransport):
    """The same aiohttp transport seen only through httpx's API: ``Http`` takes the plain path
    (an ``httpx.Response``, wrapped by ``Answer.of``)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def both_ways(url: str, **kwargs: Any) -> tuple[Fetched | str, Fetched | str]:
    """``fetch`` of ``url`` over the fast path and over the plain one: each Fetched, or the
    text of the FetchError it raised."""

    async def one(plain: bool) -> Fetched | str:
        http = make_http(user_agent="ua")
        if plain:
            http = Http(_Plain(http.transport), user_agent="ua")
        try:
            got = await fetch(http, "s", url, **kwargs)
        except FetchError as exc:
            return f"{exc} status={exc.status} retry={exc.retry_after_s}"
        else:  # (the server's Date may tick between the two)
            return replace(got, headers={k: v for k, v in got.headers.items() if k != "date"})
        finally:
            await http.aclose()

    async def go() -> tuple[Fetched | str, Fetched | str]:
        return await one(plain=False), await one(plain=True)

    return asyncio.run(go())


FAST_AND_PLAIN = {
    "200": Route(body=FEED, headers={"Cache-Control": "max-age=60", "X-Note": "café"}),
    "gzip": Route(body=FEED * 50, gzip=True),
    "redirected": Route(status=301, location="/moved"),
    "found": Route(status=302, location="/moved"),
    "gone": Route(status=410),
    "slow down": Route(status=429, headers={"Retry-After": "3600"}),
    "broken": Route(status=500),
    "empty": Route(body=b""),
}


@pytest.mark.parametrize("name", sorted(FAST_AND_PLAIN))
def test_the_fast_path_fetches_what_the_plain_path_does(server: FeedServer, name: str) -> None:
    server.routes["/f"] = FAST_AND_PLAIN[name]
    server.routes["/moved"] = Route(body=FEED)
    fast, plain = both_ways(server.url("/f"))
    assert fast == plain
    if isinstance(fast, Fetched):
        again_fast, again_plain = both_ways(server.url("/f"), etag=fast.etag,
                                            last_modified=fast.last_modified)  # fmt: skip
        assert again_fast == again_plain and again_fast.status == 304  # type: ignore[union-attr]
    # What went over the wire: each fetch's requests (paths, header lines in order) over the
    # fast path equal the plain path's, which came right after them.
    sent = [(seen.path, seen.lines) for seen in server.requests]
    hops = 2 if name in ("redirected", "found") else 1
    fetches = [sent[i : i + hops] for i in range(0, len(sent), hops)]
    assert fetches and len(fetches) % 2 == 0
    assert fetches[::2] == fetches[1::2]


def test_a_validator_that_cannot_be_sent_is_left_out(server: FeedServer) -> None:
    # A header value is ISO-8859-1; an ETag read back as UTF-8 text beyond it used to fail the
    # source at every poll (the request could not be built). Now the poll is unconditional.
    server.routes["/f"] = Route(body=FEED)
    fast, plain = both_ways(server.url("/f"), etag='"\u20ac"', last_modified="Mon, 01 Jan 2024")
    assert fast == plain and isinstance(fast, Fetched) and fast.status == 200
    assert [seen.headers.get("if-none-match") for seen in server.requests] == [None, None]
    assert {seen.headers["if-modified-since"] for seen in server.requests} == {"Mon, 01 Jan 2024"}


def test_decode_headers_reads_raw_pairs_as_httpx_does() -> None:
    raws = [
        [(b"Content-Type", b"text/xml"), (b"Set-Cookie", b"a=1"), (b"set-cookie", b"b=2")],
        [(b"X-Latin", "caf\u00e9".encode("latin-1")), (b"ETag", b'"x"')],
        [(b"X-Utf8", "caf\u00e9".encode()), (b"X-Empty", b"")],
        [],
    ]
    for raw in raws:
        assert decode_headers(raw) == dict(httpx.Headers(raw).items())


# -- URLs httpx leaves as they are are not given to it (``plain_url``, issue #16) ---------------

PLAIN_AND_NOT = [
    "http://127.0.0.1:8080/feed/12", "https://example.com/feed.xml", "http://a.com",
    "http://a.com/", "https://blog.example.co.uk/2024/01/post-1.html?x=1&y=a+b",
    "http://a.com/~u/(x)!$*,;=:@", "http://a.com/x?", "http://a-b.c-d.com:65535/",
    "http://A.com/", "HTTP://a.com/", "http://a.com:80/x", "https://a.com:443/",
    "http://a.com:8080", "http://a.com/a/../b", "http://a.com/./b", "http://a.com/a/.",
    "http://a.com/%zz", "http://a.com/%41", "http://a.com/a b", "http://a.com/x#f",
    "http://0177.0.0.1/", "http://1.2.3/", "http://1.2.3.256/", "http://01.2.3.4/",
    "http://[::1]/", "http://a.com:0/", "http://a.com:99999/", "http://a.com:080/",
    "http://-a.com/", "http://a..com/", "http://a.com./", "http://user@a.com/",
    "http://a.com/é", "http://пример.рф/", "ftp://a.com/", "http://a.com/\\x",
]  # fmt: skip


def _httpx_view(url: str) -> tuple[str, str] | str:
    try:
        request = httpx.Request("GET", url)
    except Exception as exc:  # what httpx refuses, plain_url must leave to it
        return f"refused: {type(exc).__name__}"
    (host,) = [v.decode("latin-1") for k, v in request.headers.raw if k == b"Host"]
    return str(request.url), host


@pytest.mark.parametrize("url", PLAIN_AND_NOT)
def test_plain_url_is_what_httpx_writes_or_none(url: str) -> None:
    plain = plain_url(url)
    assert plain is None or plain == _httpx_view(url)


def test_plain_url_reads_the_urls_sources_have() -> None:
    assert sum(plain_url(u) is not None for u in PLAIN_AND_NOT) >= 8  # not vacuous


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="htps:/.-?&=%#@[]:0123456789abcxyzAZ ~!$'()*+,;_é", max_size=40))
def test_plain_url_of_any_text_is_what_httpx_writes_or_none(tail: str) -> None:
    for url in (tail, "http://" + tail, "https://a.com" + tail, "http://a.b" + tail):
        plain = plain_url(url)
        assert plain is None or plain == _httpx_view(url), url
