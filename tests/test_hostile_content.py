"""Hostile documents meet bounds: entry HTML size and depth, entries per feed, made-up guids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from aggregator.config import PollConfig, parse_config
from aggregator.prepare import MAX_ENTRIES, newest, prepare
from aggregator.process.html import MAX_DEPTH, MAX_HTML_CHARS, clean_html, nesting_depth
from aggregator.types import Fetched, ParsedEntry, ParsedFeed

T0 = datetime(2026, 11, 26, tzinfo=UTC)


def test_deep_nesting_is_flattened_to_its_text_before_the_sanitiser() -> None:
    deep = "<div>" * 100_000 + "deep <b>text</b> &amp; more" + "</div>" * 100_000
    assert clean_html(deep, base=None) == "<p>deep text &amp; more</p>"
    just_deep_enough = "<div>" * MAX_DEPTH + "kept" + "</div>" * MAX_DEPTH
    assert clean_html(just_deep_enough, base=None).count("<div>") == MAX_DEPTH


def test_ordinary_markup_is_not_counted_deep() -> None:
    # Hundreds of unclosed <p> and <li>, void elements, self-closing tags: all flat.
    body = "<div>" + "<p>para <br> <img src='https://e.example/i.png'>" * 300
    body += "<ul>" + "<li>item" * 300 + "</ul></div>"
    assert nesting_depth(body) == 2
    cleaned = clean_html(body, base=None)
    assert cleaned.count("<li>") == 300 and cleaned.count("<p>") == 300  # not flattened


def test_oversized_entry_html_is_cut_at_a_tag_boundary() -> None:
    huge = "<p>" + "x" * (3 * MAX_HTML_CHARS) + "</p>"
    out = clean_html(huge, base=None)
    assert MAX_HTML_CHARS - 10 <= len(out) <= MAX_HTML_CHARS + 10 and out.endswith("</p>")
    near = "<p>" + "y" * (MAX_HTML_CHARS - 10) + '<a href="https://e.example/">a link</a></p>'
    assert clean_html(near, base=None).endswith("yy</p>")  # the tag is not cut in half


def _feed(n: int, *, dated: bool = True) -> ParsedFeed:
    entries = tuple(
        ParsedEntry(guid=str(i), title=f"entry {i}",
                    published_at=T0 - timedelta(hours=(i * 7919) % n) if dated else None)
        for i in range(n)
    )  # fmt: skip
    return ParsedFeed(format="rss20", entries=entries)


def test_a_feed_keeps_its_newest_entries_up_to_the_cap() -> None:
    feed = newest(_feed(5000), 1000)
    assert len(feed.entries) == 1000
    kept_ages = sorted(T0 - e.published_at for e in feed.entries if e.published_at)
    assert kept_ages[-1] < timedelta(hours=1000)  # the 1000 newest, no older one
    guids = [int(e.guid or 0) for e in feed.entries]
    assert guids == sorted(guids)  # document order kept
    assert "4000 of 5000 entries over the cap of 1000 dropped" in feed.warnings
    undated = newest(_feed(50, dated=False), 10)
    assert [e.guid for e in undated.entries] == [str(i) for i in range(10)]  # feeds: newest first
    assert newest(_feed(10), 10) == _feed(10)


def test_a_flood_of_tiny_entries_is_capped_before_it_is_processed(tmp_path: Path) -> None:
    items = "".join(f"<item><guid>{i}</guid><title>t{i}</title></item>" for i in range(20_000))
    body = f'<rss version="2.0"><channel><title>big</title>{items}</channel></rss>'.encode()
    prepared = prepare(Fetched("big", "https://big.example/feed", 200, body), 1000)
    assert len(prepared.entries) == 1000 and prepared.entries[0].title == "t0"
    assert any("over the cap" in w for w in prepared.warnings)


def test_the_cap_is_configurable_and_its_default_is_preparess(tmp_path: Path) -> None:
    assert PollConfig().max_entries_per_feed == MAX_ENTRIES == 1000
    raw = {"poll": {"max_entries_per_feed": 50}}
    assert parse_config(raw, path=tmp_path / "c.toml").poll.max_entries_per_feed == 50
