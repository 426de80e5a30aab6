"""Full text for summary-only feeds (issue #15): extraction on saved pages (readability or a CSS
selector, then the feed's cleaning), and the poll that fetches pages: only for what it adds or
updates, once per entry version, through the polite client, falling back to the feed's content
on failure."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from aggregator.config import Config, parse_config
from aggregator.process.article import NoArticle, decode_page, extract_article
from aggregator.prune import run_prune
from aggregator.scheduler import Scheduler, build_scheduler, run_once
from aggregator.store import SqlStore

from .conftest import Clock
from .fakeweb import FakeWeb, Route
from .feedserver import Route as ServerRoute
from .feedserver import running_feed_server
from .fulltext_gold import Page, pages, score

PAGES = {page.file: page for page in pages()}


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.file)
def test_readability_extracts_each_saved_page(page: Page) -> None:
    """The extractor (readability-lxml; bench/fulltext_quality.py measured it against
    trafilatura): the article's words nearly all, little else, every image with its real src."""
    got = score(page, extract_article(page.body, url=page.url, content_type=page.content_type))
    assert got.recall >= 0.94 and got.precision >= 0.84 and got.f1 >= 0.9, got
    assert got.images == 1.0


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.file)
def test_a_content_selector_takes_exactly_the_article(page: Page) -> None:
    html = extract_article(page.body, url=page.url, content_type=page.content_type,
                           selector=page.selector)  # fmt: skip
    got = score(page, html)
    assert got.f1 >= 0.97 and got.images == 1.0, got


def test_the_chinese_page_keeps_its_lazy_images_and_is_cleaned_like_feed_content() -> None:
    page = PAGES["huxiu-zh.html"]
    html = extract_article(page.body, url=page.url, selector=page.selector)
    assert "blank.gif" not in html and "_src" not in html
    assert html.count('referrerpolicy="no-referrer"') == 2  # the feed cleaner's own mark
    assert "价格战打到今天" in html and "<script" not in html


def test_a_page_in_gbk_is_read_as_gb18030() -> None:
    page = PAGES["sina-travel-gbk.html"]
    assert "江南古镇冬季旅游指南" in decode_page(page.body)  # declared gbk in a meta tag only
    assert "二〇一八年被列入全球重要农业文化遗产名录" in extract_article(page.body, url=page.url)


def test_extracted_html_is_sanitised_and_absolute() -> None:
    body = (
        "<html><body><nav>menu</nav><article><h1>T</h1>"
        + "<p onclick='steal()'>A paragraph long enough to be an article, said twice. " * 6
        + '</p><p><a href="/next?utm_source=feed&amp;id=3">next</a>'
        '<img data-src="img/a.png" src="data:image/gif;base64,R0l="><script>alert(1)</script>'
        '<iframe src="https://evil.example/"></iframe></p></article></body></html>'
    ).encode()
    html = extract_article(body, url="https://blog.example/posts/1", selector="article")
    assert 'href="https://blog.example/next?id=3"' in html
    assert 'src="https://blog.example/posts/img/a.png"' in html
    assert "onclick" not in html and "<script" not in html and "<iframe" not in html


@pytest.mark.parametrize(
    ("body", "kwargs", "why"),
    [
        (b"<html><body><p>Sign in to read.</p></body></html>", {}, "too short"),
        (b"<html><body><p>x</p></body></html>", {"selector": ".post"}, "nothing matches"),
        (b"%PDF-1.7", {"content_type": "application/pdf"}, "not an HTML page"),
    ],
)
def test_no_article(body: bytes, kwargs: dict[str, Any], why: str) -> None:
    with pytest.raises(NoArticle, match=why):
        extract_article(body, url="https://x.example/", **kwargs)


# -- the poll -------------------------------------------------------------------------------------

FEED_URL = "http://news.test/feed"


def teaser_feed(*slugs: str) -> bytes:
    """RSS whose items carry a one-line teaser and a link to their page."""
    items = "".join(
        f"<item><guid>http://news.test/{s}</guid><title>Story {s}</title>"
        f"<link>http://news.test/{s}</link><description>Teaser of {s}.</description>"
        f"<pubDate>Wed, 25 Nov 2026 0{i}:00:00 GMT</pubDate></item>"
        for i, s in enumerate(slugs)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>News</title>'
        f"<link>http://news.test/</link>{items}</channel></rss>"
    ).encode()


def article_page(slug: str) -> bytes:
    words = f"The whole article about {slug}, with every paragraph the feed left out. " * 8
    return (
        f"<html><head><title>{slug}</title></head><body><nav>Home News Sport</nav>"
        f'<div class="post"><p>{words}</p><p><img src="/img/{slug}.png"></p></div>'
        f"<footer>Copyright</footer></body></html>"
    ).encode()


@pytest.fixture
def web() -> Iterator[FakeWeb]:
    fake = FakeWeb()
    yield fake
    fake.close()


def make_config(tmp_path: Path, **source: Any) -> Config:
    raw = {
        "output": {"dir": str(tmp_path / "public"), "formats": ["atom"]},
        "poll": {"jitter": 0, "per_host": 1},
        "sources": [{"id": "news", "url": FEED_URL, "full_text": True, **source}],
    }
    return parse_config(raw, path=tmp_path / "c.toml")


@pytest.fixture
def tick(memory_store: SqlStore, clock: Clock, web: FakeWeb, tmp_path: Path) -> Iterator[Any]:
    made: list[Scheduler] = []

    def run(config: Config, *, hours: float = 1) -> Any:
        if not made:
            made.append(build_scheduler(config, memory_store, clock=lambda: clock.now,
                                        transport=web.transport))  # fmt: skip
            made[0].parse_workers = 1
            made[0].start()
        clock.advance(hours=hours)
        return made[0].tick(force=True)

    yield run
    for sched in made:
        sched.close()


def content_of(store: SqlStore, title: str) -> str:
    return next(
        e.content_html for e in store.recent_entries(["news"], limit=50) if e.title == title
    )


def test_new_entries_get_their_article_once_per_version(
    tmp_path: Path, web: FakeWeb, tick: Any, memory_store: SqlStore
) -> None:
    config = make_config(tmp_path, content_selector=".post")
    web.routes[FEED_URL] = Route(teaser_feed("a", "b"))
    for slug in "abc":
        web.routes[f"http://news.test/{slug}"] = Route(article_page(slug), content_type="text/html")
    first = tick(config)
    assert first.new == 2
    assert "The whole article about a" in content_of(memory_store, "Story a")
    assert 'src="http://news.test/img/b.png"' in content_of(memory_store, "Story b")
    assert web.count("http://news.test/a") == web.count("http://news.test/b") == 1
    page_requests = [r for r in web.requests if r.url != FEED_URL]
    assert all(r.headers["user-agent"].startswith("aggregator/") for r in page_requests)
    assert web.max_in_flight == 1  # [poll] per_host = 1: pages wait their turn like feeds
    web.routes[FEED_URL] = Route(teaser_feed("a", "b", "c"))  # a new entry: only its page
    second = tick(config)
    assert (second.new, second.updated) == (1, 0)
    assert [web.count(f"http://news.test/{s}") for s in "abc"] == [1, 1, 1]
    web.routes[FEED_URL] = Route(teaser_feed("a", "b", "c").replace(b"Teaser of a", b"Edited a"))
    third = tick(config)  # an edited entry is a new version: its page once more
    assert (third.new, third.updated) == (0, 1)
    assert [web.count(f"http://news.test/{s}") for s in "abc"] == [2, 1, 1]
    assert tick(config).updated == 0  # the same feed again: nothing fetched, nothing updated
    assert [web.count(f"http://news.test/{s}") for s in "abc"] == [2, 1, 1]


def test_a_page_that_fails_leaves_the_feeds_content_with_a_warning(
    tmp_path: Path,
    web: FakeWeb,
    tick: Any,
    memory_store: SqlStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = make_config(tmp_path)  # no selector: readability
    web.routes[FEED_URL] = Route(teaser_feed("gone", "short", "ok"))
    web.routes["http://news.test/short"] = Route(
        b"<html><p>Login</p></html>", content_type="text/html"
    )
    web.routes["http://news.test/ok"] = Route(article_page("ok"), content_type="text/html")
    with caplog.at_level(logging.WARNING, logger="aggregator.fulltext"):
        report = tick(config)
    assert report.new == 3 and report.failed == 0
    assert content_of(memory_store, "Story gone") == "Teaser of gone."  # 404: the feed's own
    assert content_of(memory_store, "Story short") == "Teaser of short."
    assert "The whole article about ok" in content_of(memory_store, "Story ok")
    warned = [r.getMessage() for r in caplog.records]
    assert any("link=http://news.test/gone" in m and "HTTP 404" in m for m in warned)
    assert any("link=http://news.test/short" in m and "too short" in m for m in warned)
    assert all("the feed's content is kept" in m for m in warned)


def test_no_page_for_what_is_not_added_merged_dropped_or_pruned(
    tmp_path: Path, web: FakeWeb, tick: Any, memory_store: SqlStore, clock: Clock
) -> None:
    config = make_config(tmp_path, exclude=["title:sponsored"])
    raw_old = teaser_feed("old").replace(b"Wed, 25 Nov 2026 00:00:00", b"Wed, 01 Jan 2025 00:00:00")
    web.routes[FEED_URL] = Route(raw_old.replace(b"Story old", b"Story old"))
    web.routes["http://news.test/old"] = Route(article_page("old"), content_type="text/html")
    tick(config)
    assert web.count("http://news.test/old") == 1
    assert run_prune(config, memory_store, now=clock.now).items == 1  # dated 2025: too old
    feed = teaser_feed("old", "ad").replace(
        b"Wed, 25 Nov 2026 00:00:00", b"Wed, 01 Jan 2025 00:00:00"
    )
    web.routes[FEED_URL] = Route(feed.replace(b"Story ad", b"Sponsored story"))
    report = tick(config)
    assert (report.new, report.updated) == (0, 0)
    assert web.count("http://news.test/old") == 1 and web.count("http://news.test/ad") == 0


def test_offline_runs_keep_the_feeds_content(
    tmp_path: Path, memory_store: SqlStore, clock: Clock
) -> None:
    (tmp_path / "feed.xml").write_bytes(teaser_feed("a"))
    config = make_config(tmp_path, fixture="feed.xml")
    report = run_once(config, memory_store, now=clock.now, offline=True)
    assert report.new == 1 and report.failed == 0
    assert content_of(memory_store, "Story a") == "Teaser of a."


def test_pages_go_through_the_ssrf_policy_of_the_real_client(
    tmp_path: Path, clock: Clock, memory_store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The source's configured host may be private (the admin chose it); a page on another
    private host may not: its entry keeps the feed's content."""
    with running_feed_server() as server:
        feed = teaser_feed("near", "far")
        feed = feed.replace(b"http://news.test/near", server.url("/near").encode())
        feed = feed.replace(
            b"http://news.test/far", server.url("/far").replace("127.0.0.1", "localhost").encode()
        )
        server.routes["/feed"] = ServerRoute(feed)
        for slug in ("near", "far"):
            server.routes[f"/{slug}"] = ServerRoute(article_page(slug), content_type="text/html")
        raw = {
            "output": {"dir": str(tmp_path / "public"), "formats": ["atom"]},
            "sources": [{"id": "news", "url": server.url("/feed"), "full_text": True,
                         "content_selector": ".post"}],
        }  # fmt: skip
        config = parse_config(raw, path=tmp_path / "c.toml")
        with caplog.at_level(logging.WARNING, logger="aggregator.fulltext"):
            report = run_once(config, memory_store, now=clock.now + timedelta(hours=1),
                              offline=False)  # fmt: skip
        assert any("refused" in r.getMessage() for r in caplog.records), caplog.records
        assert report.new == 2
        assert "The whole article about near" in content_of(memory_store, "Story near")
        assert content_of(memory_store, "Story far") == "Teaser of far."
        assert server.count("/far") == 0
