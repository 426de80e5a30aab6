"""Discovery: a feed URL, a page's <link rel="alternate">, the common paths; the daemon's client
(issue #12). In-process through ``httpx.MockTransport``; the CLI over real sockets is in
test_cli_sources.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator import USER_AGENT
from aggregator.config import Config
from aggregator.discover import (
    COMMON_PATHS,
    Candidate,
    DiscoveryError,
    alternate_links,
    discover_feeds,
)

from .fakeweb import FakeWeb, Route
from .feedserver import rss

HTML = "text/html; charset=utf-8"
ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Example Atom</title><id>urn:x</id>
<updated>2026-11-25T10:00:00Z</updated><link href="https://site.test/"/>
<entry><id>urn:1</id><title>One</title><updated>2026-11-25T10:00:00Z</updated></entry></feed>"""


def page(head: str) -> bytes:
    html = f"<!DOCTYPE html><html><head><title>Site</title>{head}</head><body>hi</body></html>"
    return html.encode()


@pytest.fixture
def web() -> FakeWeb:
    return FakeWeb()


def find(web: FakeWeb, url: str) -> list[Candidate]:
    return discover_feeds(url, Config(path=Path("x.toml")), transport=web.transport)


def test_a_feed_url_is_its_own_candidate(web: FakeWeb) -> None:
    web.routes["http://site.test/feed.xml"] = Route(rss("Site News", [("1", "Hello")]))
    assert find(web, "http://site.test/feed.xml") == [
        Candidate("http://site.test/feed.xml", "Site News", "rss20", "https://example.org/")
    ]
    assert web.requests[0].headers["user-agent"] == USER_AGENT


def test_a_page_names_its_feeds_in_order(web: FakeWeb) -> None:
    web.routes["http://site.test/blog/"] = Route(
        page(
            '<link rel="stylesheet" href="/s.css">'
            '<link rel="alternate" type="application/rss+xml" title="Posts" href="posts.rss">'
            '<link rel="alternate" type="text/html" hreflang="fr" href="/fr/">'
            '<link rel="alternate" type="application/atom+xml" href="http://site.test/atom">'
            '<link rel="alternate" type="application/feed+json" href="/broken.json">'
        ),
        content_type=HTML,
    )
    web.routes["http://site.test/blog/posts.rss"] = Route(rss("Posts", [("1", "a")]))
    web.routes["http://site.test/atom"] = Route(ATOM, content_type="application/atom+xml")
    found = find(web, "http://site.test/blog/")
    assert [(c.url, c.title, c.format) for c in found] == [
        ("http://site.test/blog/posts.rss", "Posts", "rss20"),
        ("http://site.test/atom", "Example Atom", "atom10"),
    ]  # the JSON link answers 404: not a candidate
    assert "http://site.test/fr/" not in [r.url for r in web.requests]


def test_without_links_the_common_paths_are_tried(web: FakeWeb) -> None:
    web.routes["http://site.test/"] = Route(page(""), content_type=HTML)
    web.routes["http://site.test/index.xml"] = Route(rss("Hugo site", [("1", "a")]))
    assert [c.url for c in find(web, "http://site.test/")] == ["http://site.test/index.xml"]
    tried = [r.url for r in web.requests]
    assert tried == ["http://site.test/"] + [f"http://site.test{p}" for p in COMMON_PATHS]


def test_nothing_found_says_what_was_tried(web: FakeWeb) -> None:
    web.routes["http://site.test/"] = Route(page(""), content_type=HTML)
    with pytest.raises(DiscoveryError, match=r"no feed found at http://site.test/.*/feed, /rss"):
        find(web, "http://site.test/")


def test_an_address_that_does_not_answer(web: FakeWeb) -> None:
    with pytest.raises(DiscoveryError, match=r"cannot fetch http://site.test/x: HTTP 404"):
        find(web, "http://site.test/x")


def test_a_permanent_redirect_gives_the_new_address(web: FakeWeb) -> None:
    web.routes["http://old.test/rss"] = Route(status=301, location="https://new.test/rss")
    web.routes["https://new.test/rss"] = Route(rss("Moved", [("1", "a")]))
    assert [c.url for c in find(web, "http://old.test/rss")] == ["https://new.test/rss"]


def test_alternate_links_resolve_against_the_base() -> None:
    body = page(
        '<base href="https://cdn.test/sub/">'
        '<link rel="Alternate feed" type="application/RSS+XML; charset=utf-8" href=" a.xml ">'
        '<link rel="alternate" type="application/json" href="feed.json">'
        '<link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">'
        '<link rel="alternate" type="application/rss+xml" href="a.xml">'
    )
    assert alternate_links(body, base="https://site.test/") == [
        "https://cdn.test/sub/a.xml",
        "https://cdn.test/sub/feed.json",
    ]
