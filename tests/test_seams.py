"""Every speed-up equals the plain path it stands for (STYLE.md section 8).

The caches and fast paths and where their own proofs live:
- the lxml fast path vs feedparser: tests/test_fastxml.py (every seed and corpus feed);
- SQLite datetime texts (and their cache) vs SQLAlchemy's DATETIME: tests/test_store.py;
- BulkInsert / BulkExecute vs the Core statements: tests/test_store.py;
- entry_uid vs uuid.uuid5: tests/test_store.py;
- fetch.header_dict vs httpx's Headers.items(): tests/test_fetch.py;
- Deadlines vs asyncio.timeout: tests/test_deadlines.py;
- the text of cleaned HTML read without a second sanitiser pass: tests/test_process.py;
- here: the reused conditional request, the transport's URL cache, the reusable nh3 cleaner.
"""

from __future__ import annotations

import asyncio
from functools import partial

import httpx
import nh3
import pytest
import yarl

from aggregator.fetch import Http
from aggregator.process import html
from aggregator.transport import AiohttpTransport

from .conftest import ROOT

URLS = [
    "https://a.example/feed",
    "https://a.example/feed?x=1&y=%20z",
    "http://[::1]:8080/f",
    "https://xn--fiqs8s.example/路径?q=虎嗅",
    "https://a.example/p%C3%A4th#frag",
]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize(
    ("etag", "modified"), [(None, None), ('"v1"', None), (None, "Wed, 25 Nov 2026 10:00:00 GMT")]
)
def test_a_reused_request_is_the_request_built_afresh(
    url: str, etag: str | None, modified: str | None
) -> None:
    http = Http(httpx.MockTransport(lambda r: httpx.Response(304)), user_agent="ua/1")
    http.request(url, None, None)  # a request for the URL is already kept
    reused = http.request(url, etag, modified)
    assert http.request(url, etag, modified) is reused
    headers = {"User-Agent": "ua/1", **http.headers}
    if etag:
        headers["If-None-Match"] = etag
    if modified:
        headers["If-Modified-Since"] = modified
    plain = httpx.Request("GET", url, headers=headers)
    assert (reused.method, reused.url) == (plain.method, plain.url)
    assert list(reused.headers.multi_items()) == list(plain.headers.multi_items())


def test_the_transports_parsed_urls_are_yarls_own() -> None:
    async def parse_all() -> list[tuple[yarl.URL, yarl.URL]]:
        transport = AiohttpTransport()
        try:
            return [
                (transport._parse(str(httpx.URL(u))), yarl.URL(str(httpx.URL(u)), encoded=True))
                for u in URLS * 2  # the second round comes from the cache
            ]
        finally:
            await transport.aclose()

    for cached, plain in asyncio.run(parse_all()):
        assert cached == plain and str(cached) == str(plain)


def _fragments() -> list[str]:
    corpus = ROOT / "tests" / "data"
    texts = [p.read_text("utf-8", "replace") for p in sorted(corpus.rglob("*")) if p.is_file()]
    return [t[i : i + 4000] for t in texts[:40] for i in range(0, min(len(t), 12000), 4000)]


def test_the_reusable_cleaner_equals_a_cleaner_built_per_call() -> None:
    """One ``nh3.Cleaner`` reads the entry's base URL from a ContextVar; a cleaner built for
    each call with the base bound into its filter gives the same output."""
    bases = [None, "https://e.example/a/b.html", "http://x.example/"]
    for base in bases:
        for fragment in _fragments():

            def per_call_filter(tag: str, attr: str, value: str, base: str | None) -> str | None:
                token = html._BASE.set(base)
                try:
                    return html._filter_attribute(tag, attr, value)
                finally:
                    html._BASE.reset(token)

            fresh = nh3.Cleaner(
                tags=html._TAGS,
                attributes=html._ATTRIBUTES,
                attribute_filter=partial(per_call_filter, base=base),
                url_schemes=html._SCHEMES,
                strip_comments=True,
                link_rel="noopener noreferrer",
                set_tag_attribute_values={"img": {"referrerpolicy": "no-referrer"}},
            )
            token = html._BASE.set(base)
            try:
                reused = html._sanitise(html._CLEANER, fragment)
            finally:
                html._BASE.reset(token)
            assert reused == html._sanitise(fresh, fragment)
