"""The HTML pages, per-group feeds and outputs.opml (#13): what publish writes, read back."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import feedparser
import pytest
from lxml import etree, html

from aggregator.config import load_config
from aggregator.errors import ConfigError
from aggregator.publish import build_site, render_outputs
from aggregator.render.html import absolute_time, http_url, relative_time, render_page
from aggregator.render.pages import group_slugs
from aggregator.scheduler import run_once
from aggregator.store import open_store
from aggregator.types import Provenance, StoredEntry

from .sitekit import T0, Item, SiteKit, items

NOW = T0 + timedelta(days=2)
ENTRY = "//li[@class='entry']"
OUTPUTS = """
[[outputs]]
name = "all"
title = "Everything"

[[outputs]]
name = "tech-only"
title = "Tech only"
groups = ["Tech/Python"]
formats = ["atom", "rss"]
"""


@pytest.fixture
def site(tmp_path: Path) -> SiteKit:
    kit = SiteKit(tmp_path)
    kit.feed("py", "Python weekly", [
        *items("py", 3),
        Item("py-x", "Is 1 < 2 & \"quoted\"?", T0 + timedelta(hours=9),
             summary="<b>not bold</b>", link="javascript:alert(1)",
             thumbnail="https://img.example.org/py.png"),
    ])  # fmt: skip
    kit.feed("news", "Daily news", items("news", 4, step_h=2))
    kit.feed("mirror", "News mirror", [items("news", 1)[0]])  # same story: merged
    kit.write_config([("py", "Tech/Python"), ("news", "新闻"), ("mirror", "新闻")],
                     outputs=OUTPUTS)  # fmt: skip
    return kit


def publish(kit: SiteKit) -> Path:
    config = load_config(kit.root / "aggregator.toml")
    store = open_store(config.storage.url)
    try:
        run_once(config, store, now=NOW, offline=True)
    finally:
        store.close()
    return config.output.dir


def page(path: Path) -> html.HtmlElement:
    return html.fromstring(path.read_bytes())


def test_river_lists_every_entry_newest_first_with_its_details(site: SiteKit) -> None:
    out = publish(site)
    doc = page(out / "index.html")
    titles = [h.text_content() for h in doc.xpath(ENTRY + "//h2")]
    assert len(titles) == 8  # 4 + 4 + the merged copy counted once
    assert titles[0] == 'Is 1 < 2 & "quoted"?'  # text, escaped
    times = [t.get("datetime") for t in doc.xpath(ENTRY + "//time")]
    assert times == sorted(times, reverse=True)
    assert times[0] == "2026-11-20T17:00:00Z"
    merged = next(li for li in doc.xpath(ENTRY) if "News story number 0" in li.text_content())
    assert [a.text for a in merged.xpath(".//a[@class='source']")] == ["Daily news", "News mirror"]
    assert merged.xpath(".//a[@class='group']")[0].get("href") == "groups/%E6%96%B0%E9%97%BB.html"
    assert merged.xpath(".//h2/a")[0].get("href") == "https://example.org/news-0"
    assert "What happened in news story 0" in merged.xpath(".//p[@class='summary']")[0].text
    hostile = doc.xpath(ENTRY)[0]
    assert not hostile.xpath(".//h2/a")  # a javascript: link is not a link
    assert hostile.xpath(".//img")[0].get("src") == "https://img.example.org/py.png"
    assert hostile.xpath(".//img")[0].get("referrerpolicy") == "no-referrer"
    raw = (out / "index.html").read_text(encoding="utf-8")
    assert "<script>alert(1)" not in raw and "javascript:alert" not in raw


def test_pages_link_every_feed_for_autodiscovery(site: SiteKit) -> None:
    out = publish(site)
    river = page(out / "index.html")
    alternates = {
        (a.get("type"), a.get("href")) for a in river.xpath("//head/link[@rel='alternate']")
    }
    assert alternates == {
        ("application/atom+xml", "all.atom"),
        ("application/rss+xml", "all.rss"),
        ("application/feed+json", "all.json"),
        ("application/atom+xml", "tech-only.atom"),
        ("application/rss+xml", "tech-only.rss"),
    }
    group = page(out / "groups" / "tech-python.html")
    heads = [a.get("href") for a in group.xpath("//head/link[@rel='alternate']")]
    assert heads[:3] == ["tech-python.atom", "tech-python.rss", "tech-python.json"]  # own first
    assert "../all.atom" in heads
    links = {a.get("href") for a in group.xpath("//a")}
    assert {"../", "../all.html", "../outputs.opml", "%E6%96%B0%E9%97%BB.html"} <= links
    for href in links:  # every relative link of the group page points at a file that exists
        if not href.startswith(("http", "#")) and href != "../status":
            target = (out / "groups" / unquote(href)).resolve()
            assert target.is_file() or (target / "index.html").is_file(), href


def test_group_and_output_pages_hold_their_own_entries(site: SiteKit) -> None:
    out = publish(site)
    tech = page(out / "tech-only.html")
    assert {h.text_content() for h in tech.xpath(ENTRY + "//h2")} == {
        "Py story number 0", "Py story number 1", "Py story number 2",
        "Is 1 < 2 & \"quoted\"?",
    }  # fmt: skip
    news = page(out / "groups" / "新闻.html")
    assert len(news.xpath(ENTRY)) == 4


def test_per_group_feeds_are_valid_and_link_to_their_page(site: SiteKit) -> None:
    out = publish(site)
    parsed = feedparser.parse((out / "groups" / "新闻.atom").read_bytes())
    assert not parsed.bozo
    assert len(parsed.entries) == 4
    assert parsed.feed.title == "新闻 · River of news"
    links = {link.rel: link.href for link in parsed.feed.links}
    assert links["self"] == "http://127.0.0.1:8080/groups/新闻.atom"
    assert links["alternate"] == "http://127.0.0.1:8080/groups/%E6%96%B0%E9%97%BB.html"
    feed = json.loads((out / "groups" / "tech-python.json").read_bytes())
    assert feed["home_page_url"] == "http://127.0.0.1:8080/groups/tech-python.html"
    assert len(feed["items"]) == 4


def test_outputs_opml_lists_every_output_once(site: SiteKit) -> None:
    out = publish(site)
    opml = etree.fromstring((out / "outputs.opml").read_bytes())
    assert opml.get("version") == "2.0"
    outlines = [(o.get("text"), o.get("xmlUrl"), o.get("htmlUrl")) for o in opml.iter("outline")]
    assert outlines == [
        ("Everything", "http://127.0.0.1:8080/all.atom", "http://127.0.0.1:8080/all.html"),
        ("Tech only", "http://127.0.0.1:8080/tech-only.atom", "http://127.0.0.1:8080/tech-only.html"),
    ]  # fmt: skip


def test_pages_are_deterministic_and_rewritten_only_when_entries_change(site: SiteKit) -> None:
    out = publish(site)
    config = load_config(site.root / "aggregator.toml")
    before = {p: p.read_bytes() for p in out.rglob("*.html")}
    store = open_store(config.storage.url)
    try:
        reports = render_outputs(config, store)
    finally:
        store.close()
    assert not any(r.written for r in reports)
    assert {p: p.read_bytes() for p in out.rglob("*.html")} == before


def test_pages_are_responsive_and_have_light_and_dark_styles(site: SiteKit) -> None:
    raw = (publish(site) / "index.html").read_text(encoding="utf-8")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in raw
    assert "@media (prefers-color-scheme: dark)" in raw
    assert '<meta name="color-scheme" content="light dark">' in raw
    assert "@media (max-width: 56rem)" in raw  # the sidebar goes under the river


def test_group_slugs_are_stable_file_names() -> None:
    assert group_slugs(["Tech/Python", "tech python", "新闻", "..", "News"]) == {
        "..": "group", "News": "news", "Tech/Python": "tech-python",
        "tech python": "tech-python-2", "新闻": "新闻",
    }  # fmt: skip


def test_only_http_links_and_readable_times() -> None:
    assert http_url("https://a.example/x") == "https://a.example/x"
    for bad in ("javascript:alert(1)", "data:text/html,x", "//a.example/", "", None, "http://"):
        assert http_url(bad) is None
    assert absolute_time(datetime(2026, 3, 5, 7, 4, tzinfo=UTC)) == "5 Mar 2026, 07:04 UTC"
    now = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)
    assert relative_time(now - timedelta(seconds=10), now) == "just now"
    assert relative_time(now - timedelta(minutes=12), now) == "12 min ago"
    assert relative_time(now + timedelta(hours=3), now) == "in 3 h"
    assert relative_time(now - timedelta(days=3), now) == "3 d ago"


def _entry(n: int) -> StoredEntry:
    source = Provenance("src", "A source", "https://src.example/feed", "https://src.example/",
                        f"https://src.example/{n}", None)  # fmt: skip
    at = T0 - timedelta(minutes=n)
    return StoredEntry(
        uid=f"urn:uuid:{n}", title=f"A reasonably long headline for story {n} of the day",
        link=f"https://src.example/{n}", author=None, published_at=at, updated_at=at,
        content_html="<p>" + "content " * 200 + "</p>",
        summary="A summary of two lines or so, as process cuts it at a word boundary. " * 3,
        thumbnail=f"https://img.example/{n}.jpg", categories=(), enclosures=(), group="tech",
        sources=(source,),
    )  # fmt: skip


def test_a_page_of_100_entries_is_small_and_quick(tmp_path: Path, site: SiteKit) -> None:
    """Size and render time of the river for 100 entries (numbers in the #13 report)."""
    config = load_config(site.root / "aggregator.toml")
    site_model = build_site(config)
    entries = [_entry(n) for n in range(100)]
    render_page(site_model, site_model.river, entries)  # templates compiled once
    started = time.perf_counter()
    data = render_page(site_model, site_model.river, entries)
    elapsed = time.perf_counter() - started
    print(f"river page, 100 entries: {len(data)} bytes, rendered in {elapsed * 1000:.1f} ms")  # noqa: T201
    assert len(data) < 150_000  # no entry content on the river: summaries only
    assert b"content content" not in data
    assert elapsed < 0.5


def test_stored_text_is_escaped_and_stored_html_never_shown(site: SiteKit) -> None:
    config = load_config(site.root / "aggregator.toml")
    model = build_site(config)
    hostile = replace(
        _entry(1),
        title='<script>alert("t")</script>',
        summary="<img src=x onerror=alert(1)>",
        link="javascript:alert(1)",
        thumbnail="javascript:alert(2)",
        content_html="<p>STORED-CONTENT</p>",
        group="<b>g</b>",
        sources=(Provenance("s", "<i>src</i>", "javascript:x", None, None, None),),
    )
    raw = render_page(model, model.river, [hostile]).decode("utf-8")
    assert "&lt;script&gt;alert(&#34;t&#34;)&lt;/script&gt;" in raw
    assert "&lt;img src=x onerror=alert(1)&gt;" in raw
    assert "&lt;i&gt;src&lt;/i&gt;" in raw and "&lt;b&gt;g&lt;/b&gt;" in raw
    assert "javascript:" not in raw and "<img src=x" not in raw
    assert "STORED-CONTENT" not in raw
    assert 'href="None"' not in raw and '<span class="source">&lt;i&gt;' in raw


def test_config_reserves_index_and_checks_the_new_output_keys(tmp_path: Path) -> None:
    kit = SiteKit(tmp_path)
    kit.feed("a", "A", items("a", 1))
    kit.write_config([("a", None)], output='websub_hub = "ftp://hub"\narchive_page_size = -1',
                     outputs='[[outputs]]\nname = "index"\n')  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "aggregator.toml")
    problems = "\n".join(caught.value.problems)
    assert "outputs[0].name: 'index' is reserved for the river page (index.html)" in problems
    assert "output.websub_hub: must be an http(s) URL" in problems
    assert "output.archive_page_size: must be a whole number, 0 or more" in problems
