"""fetch() over an httpx.MockTransport, and fixture reads. No sockets, no clock."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from aggregator.errors import FetchError
from aggregator.fetch import Http, make_http, read_fixture, retry_after_s
from aggregator.fetch import fetch as afetch
from aggregator.types import Fetched

FEED = b"<rss version='2.0'><channel><title>t</title></channel></rss>"
Handler = Callable[[httpx.Request], httpx.Response]


class client:
    """A MockTransport ``Http``; ``fetch`` runs it on a fresh event loop per call."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    def __enter__(self) -> client:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def fetch(c: client, source_id: str, url: str, **kwargs: Any) -> Fetched:
    async def go() -> Fetched:
        http = Http(httpx.MockTransport(c.handler), user_agent="test")
        try:
            return await afetch(http, source_id, url, **kwargs)
        finally:
            await http.aclose()

    return asyncio.run(go())


def test_conditional_get_sends_validators_and_304_is_a_value() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.headers.get("if-none-match") == '"v1"':
            return httpx.Response(304)
        return httpx.Response(
            200,
            content=FEED,
            headers={"ETag": '"v1"', "Last-Modified": "Wed, 01 Jan 2025 00:00:00 GMT"},
        )

    with client(handler) as c:
        first = fetch(c, "s", "https://feeds.example/a")
        assert (first.status, first.body, first.etag) == (200, FEED, '"v1"')
        assert first.body_hash and first.last_modified == "Wed, 01 Jan 2025 00:00:00 GMT"
        second = fetch(
            c, "s", "https://feeds.example/a", etag=first.etag, last_modified=first.last_modified
        )
    assert second.not_modified and second.body is None and second.etag == '"v1"'
    assert seen[1].headers["if-modified-since"] == "Wed, 01 Jan 2025 00:00:00 GMT"
    assert "application/atom+xml" in seen[0].headers["accept"]


def redirecting(chain: dict[str, tuple[int, str]]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url in chain:
            status, target = chain[url]
            return httpx.Response(status, headers={"Location": target})
        return httpx.Response(200, content=FEED)

    return handler


def test_permanent_redirects_are_reported_temporary_ones_are_not() -> None:
    perm = {"https://a.example/f": (301, "https://b.example/f"), "https://b.example/f": (308, "/g")}
    with client(redirecting(perm)) as c:
        got = fetch(c, "s", "https://a.example/f")
    assert got.permanent_url == "https://b.example/g" and got.url == "https://b.example/g"
    mixed = {
        "https://a.example/f": (302, "https://b.example/f"),
        "https://b.example/f": (301, "https://c.example/f"),
    }
    with client(redirecting(mixed)) as c:
        assert fetch(c, "s", "https://a.example/f").permanent_url is None


def test_too_many_redirects_and_non_http_schemes_are_refused() -> None:
    loop = {f"https://a.example/{i}": (302, f"https://a.example/{i + 1}") for i in range(10)}
    with client(redirecting(loop)) as c, pytest.raises(FetchError, match="more than 5 redirects"):
        fetch(c, "s", "https://a.example/0")
    to_file = {"https://a.example/f": (301, "file:///etc/passwd")}
    with client(redirecting(to_file)) as c, pytest.raises(FetchError, match="non-http"):
        fetch(c, "s", "https://a.example/f")


@pytest.mark.parametrize(("status", "gone"), [(404, False), (410, True), (500, False)])
def test_http_errors_carry_their_status(status: int, gone: bool) -> None:
    with client(lambda r: httpx.Response(status)) as c, pytest.raises(FetchError) as info:
        fetch(c, "src", "https://a.example/f")
    assert info.value.status == status and str(info.value).startswith(f"src: HTTP {status}")
    assert ("gone" in str(info.value)) is gone


def test_429_carries_retry_after() -> None:
    with (
        client(lambda r: httpx.Response(429, headers={"Retry-After": "120"})) as c,
        pytest.raises(FetchError) as info,
    ):
        fetch(c, "s", "https://a.example/f")
    assert info.value.retry_after_s == 120.0
    assert retry_after_s("soon") is None and retry_after_s(None) is None


def test_body_cap_holds_for_declared_and_decoded_sizes() -> None:
    big = b"x" * 2048
    with (
        client(lambda r: httpx.Response(200, content=big)) as c,
        pytest.raises(FetchError, match="cap"),
    ):
        fetch(c, "s", "https://a.example/f", max_bytes=1024)
    bomb = gzip.compress(b"\0" * 200_000)  # small on the wire, large decoded
    headers = {"Content-Encoding": "gzip"}
    with client(lambda r: httpx.Response(200, content=bomb, headers=headers)) as c:
        with pytest.raises(FetchError, match="decoded"):
            fetch(c, "s", "https://a.example/f", max_bytes=100_000)
        assert fetch(c, "s", "https://a.example/f", max_bytes=300_000).body == b"\0" * 200_000


def test_transport_errors_become_fetch_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with client(handler) as c, pytest.raises(FetchError, match="ReadTimeout"):
        fetch(c, "s", "https://a.example/f")


def test_make_http_sets_a_clear_user_agent_over_aiohttp() -> None:
    from aggregator.transport import AiohttpTransport

    async def go() -> None:
        http = make_http(user_agent="aggregator/0 (+https://x)")
        assert http.headers["User-Agent"] == "aggregator/0 (+https://x)"
        assert isinstance(http.transport, AiohttpTransport)
        await http.aclose()

    asyncio.run(go())


def test_total_timeout_bounds_the_whole_exchange() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()  # never answers
        raise AssertionError("unreachable")

    async def go() -> None:
        http = Http(httpx.MockTransport(handler), user_agent="test")
        await afetch(http, "s", "https://a.example/f", timeout_s=0.05)

    with pytest.raises(FetchError, match="total timeout"):
        asyncio.run(go())


def test_fixture_file_and_directory(tmp_path: Path) -> None:
    (tmp_path / "feed.xml").write_bytes(FEED)
    got = read_fixture("s", tmp_path / "feed.xml", url="https://a.example/f")
    assert (got.status, got.body, got.url) == (200, FEED, "https://a.example/f")
    posts = tmp_path / "posts"
    posts.mkdir()
    (posts / "b.md").write_bytes(b"---\ntitle: b\n---\nB")
    (posts / "a.md").write_bytes(b"---\ntitle: a\n---\nA")
    (posts / "notes.txt").write_bytes(b"ignored")
    bundle = read_fixture("s", posts, url="https://a.example/")
    assert [name for name, _ in bundle.parts] == ["a.md", "b.md"]
    (posts / "a.md").write_bytes(b"---\ntitle: a2\n---\nA")
    assert read_fixture("s", posts, url="https://a.example/").body_hash != bundle.body_hash
    with pytest.raises(FetchError, match="cannot read fixture"):
        read_fixture("s", tmp_path / "missing.xml", url="https://a.example/")


def test_freshness_from_cache_control_and_expires() -> None:
    from datetime import UTC, datetime

    from aggregator.fetch import freshness_s

    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert freshness_s({"cache-control": "public, max-age=600"}, now) == 600
    assert freshness_s({"cache-control": "s-maxage=60, max-age=30"}, now) == 60
    assert freshness_s({"cache-control": "no-cache, max-age=600"}, now) is None
    expires = {"expires": "Thu, 26 Nov 2026 13:00:00 GMT", "date": "Thu, 26 Nov 2026 12:30:00 GMT"}
    assert freshness_s(expires, now) == 1800  # relative to the server's Date
    assert freshness_s({"expires": "Thu, 26 Nov 2026 13:00:00 GMT"}, now) == 3600
    assert freshness_s({"expires": "0"}, now) is None
    assert freshness_s({}, now) is None


def test_a_sources_request_is_built_once_per_set_of_validators() -> None:
    """The conditional GET is reused poll after poll; new validators replace it (one per URL)."""
    http = Http(httpx.MockTransport(lambda r: httpx.Response(304)), user_agent="ua")
    first = http.request("https://a.example/f", '"v1"', None)
    assert http.request("https://a.example/f", '"v1"', None) is first
    assert first.headers["if-none-match"] == '"v1"' and first.headers["user-agent"] == "ua"
    http.prepare("https://a.example/f", '"v2"', "Wed, 01 Jan 2025 00:00:00 GMT")
    second = http.request("https://a.example/f", '"v2"', "Wed, 01 Jan 2025 00:00:00 GMT")
    assert second is not first and second.headers["if-modified-since"].startswith("Wed")
    assert len(http._requests) == 1


def test_a_200_prepares_the_next_conditional_request() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("if-none-match") == '"v1"':
            return httpx.Response(304)
        return httpx.Response(200, content=FEED, headers={"ETag": '"v1"'})

    async def go() -> tuple[Fetched, httpx.Request, Fetched]:
        http = Http(httpx.MockTransport(handler), user_agent="ua")
        got = await afetch(http, "s", "https://a.example/f")
        prepared = http._requests["https://a.example/f"][2]
        again = await afetch(http, "s", "https://a.example/f", etag=got.etag)
        assert http._requests["https://a.example/f"][2] is prepared  # the one that was sent
        return got, prepared, again

    got, prepared, again = asyncio.run(go())
    assert prepared.headers["if-none-match"] == '"v1"'
    assert (got.status, again.status) == (200, 304)


@pytest.mark.parametrize(
    "raw",
    [
        [(b"ETag", b'"a"'), (b"Cache-Control", b"max-age=60")],
        [(b"Set-Cookie", b"a=1"), (b"set-cookie", b"b=2"), (b"Vary", b"x"), (b"VARY", b"y")],
        [(b"X-Title", "虎嗅".encode()), (b"Content-Type", b"text/xml")],  # UTF-8
        [(b"X-Title", "café".encode("latin-1")), (b"X-Other", "虎".encode())],  # not UTF-8
        [],
    ],
)
def test_header_dict_is_httpx_items(raw: list[tuple[bytes, bytes]]) -> None:
    """The raw-list fast path reads headers exactly as ``httpx.Headers.items()`` does."""
    from aggregator.fetch import header_dict

    response = httpx.Response(200, headers=raw)
    assert header_dict(response) == dict(response.headers.items())
    assert list(header_dict(response)) == [k for k, _ in response.headers.items()]


class _Chunks(httpx.AsyncByteStream):
    def __init__(self, data: bytes, size: int = 7) -> None:
        self._parts = [data[i : i + size] for i in range(0, len(data), size)]

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        for part in self._parts:
            yield part


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "deflate-raw", "br", "gzip, br"])
def test_bodies_are_decoded_bounded_and_equal_to_the_plain_decoding(encoding: str) -> None:
    import zlib

    import brotli  # type: ignore[import-untyped]

    plain = FEED * 20
    encode = {
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "deflate-raw": lambda b: zlib.compress(b)[2:-4],  # what some servers send as "deflate"
        "br": brotli.compress,
        "gzip, br": lambda b: brotli.compress(gzip.compress(b)),
    }[encoding]
    header = "deflate" if encoding == "deflate-raw" else encoding

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Encoding": header},
                              stream=_Chunks(encode(plain)))  # fmt: skip

    http = Http(httpx.MockTransport(handler), user_agent="ua")
    got = asyncio.run(afetch(http, "s", "https://a.example/f"))
    assert got.body == plain
    with pytest.raises(FetchError, match="cap"):
        asyncio.run(afetch(http, "s", "https://a.example/f", max_bytes=len(plain) - 1))
