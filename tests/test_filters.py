"""Include/exclude rules (issue #15): keywords (case-insensitive, NFKC, CJK inside a run of
characters), ``re:`` expressions, fields, config errors with their key paths, and ``screen``."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aggregator.config import parse_config
from aggregator.configcheck import Problems
from aggregator.errors import ConfigError
from aggregator.filters import Filters, build_filters, parse_rule, screen
from aggregator.process import normalise_entry
from aggregator.types import Action, Decision, Entry, ParsedEntry, ParsedFeed, Tombstone

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def entry(
    title: str = "A story",
    content: str = "<p>Plain text.</p>",
    *,
    author: str | None = None,
    categories: tuple[str, ...] = (),
    link: str | None = "https://example.org/story",
) -> Entry:
    parsed = ParsedEntry(guid=title, title=title, content_html=content, author=author,
                         categories=categories, link=link, published_at=T0)  # fmt: skip
    return normalise_entry(parsed, source_id="s", feed=ParsedFeed("rss20"), feed_url="https://x/")


def filters(include: list[str] | None = None, exclude: list[str] | None = None) -> Filters:
    problems = Problems()
    found = build_filters({"include": include or [], "exclude": exclude or []}, "t", problems)
    assert problems.items == []
    return found


@pytest.mark.parametrize(
    ("keyword", "title", "hit"),
    [
        ("crypto", "Crypto winter is here", True),
        ("crypto", "CRYPTO: the news", True),
        ("crypto", "Cryptocurrency rallies", False),  # whole words in spaced scripts
        ("crypto*", "Cryptocurrency rallies", True),  # ... unless the keyword says so
        ("ad", "How to read a paper", False),
        ("ad", "An ad, again", True),
        ("ai", "ＡＩ chips", True),  # full-width letters: NFKC
        ("ai", "AI芯片出口", True),  # a Latin word next to CJK characters
        ("区块链", "关于区块链的新闻", True),  # CJK: inside a run of characters
        ("区块链", "区块 链", False),
        ("ß", "STRASSE", False),
        ("strasse", "Straße", True),  # case folding, not lower()
        ("sponsored  post", "A Sponsored\tpost", True),  # white space is white space
        ("sponsored post", "A Sponsored-post", False),
        ("ｗｅｂ３", "web3 is back", True),
        ("*coin", "Bitcoin rallies", True),
        ("*coin", "Coinbase lists it", False),
    ],
)
def test_keywords(keyword: str, title: str, hit: bool) -> None:
    assert (filters(exclude=[f"title:{keyword}"]).drops(entry(title)) is not None) is hit


def test_a_keyword_without_a_field_looks_in_title_content_categories_and_author() -> None:
    rules = filters(exclude=["crypto"])
    assert rules.drops(entry("x", "<p>all about <b>crypto</b> today</p>")) is not None
    assert rules.drops(entry("x", categories=("Crypto",))) is not None
    assert rules.drops(entry("x", author="Crypto Bob")) is not None
    assert rules.drops(entry("x", link="https://example.org/crypto/1")) is None
    assert filters(exclude=["link:crypto"]).drops(entry("x", link="https://e.org/crypto/1"))


def test_markup_is_not_text() -> None:
    """Content rules see the text: a keyword in a tag or attribute matches nothing."""
    rules = filters(exclude=["content:strong"])
    assert rules.drops(entry("x", "<p><strong>bold</strong> claim</p>")) is None


def test_regular_expressions_search_the_text_as_it_is() -> None:
    rules = filters(exclude=[r"title:re:^\[ad\]"])
    assert (
        rules.drops(entry("[ad] Buy now")) == r'exclude rule "title:re:^\[ad\]" matched the title'
    )
    assert rules.drops(entry("[AD] Buy now")) is None
    assert filters(exclude=[r"re:(?i)^\[ad\]"]).drops(entry("[AD] Buy now"))
    assert filters(exclude=["author,categories:re:^Bot"]).drops(entry("x", author="Bot 9"))


def test_include_keeps_only_what_matches_and_exclude_wins() -> None:
    rules = filters(include=["python", "rust"], exclude=["crypto"])
    assert rules.drops(entry("Python 3.14 released")) is None
    assert rules.drops(entry("Go 1.30 released")) == 'no include rule matched ("python", "rust")'
    assert (
        rules.drops(entry("Rust for crypto wallets")) == 'exclude rule "crypto" matched the title'
    )


def test_no_rules_pass_everything() -> None:
    assert not Filters()
    assert Filters().drops(entry()) is None


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("re:[", "invalid regular expression '[': unterminated character set at position 0"),
        ("re:", "empty regular expression after 're:'"),
        ("*", "empty keyword in '*'"),
        ("title:", "empty keyword in 'title:'"),
    ],
)
def test_bad_rules_are_refused(rule: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        parse_rule(rule)


def test_check_lists_every_bad_rule_with_its_key_path(tmp_path: Path) -> None:
    raw: dict[str, Any] = {
        "output": {"dir": str(tmp_path / "out")},
        "sources": [
            {"id": "a", "url": "https://a.example/feed", "exclude": ["ok", "re:(unclosed"]},
            {"id": "b", "url": "https://b.example/feed", "include": "python",
             "content_selector": "article >> p"},
        ],
        "outputs": [{"name": "tech", "exclude": ["re:*oops"]}],
    }  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, path=tmp_path / "c.toml")
    problems = caught.value.problems
    assert any(
        p.startswith("sources[0].exclude[1]: invalid regular expression '(unclosed'")
        for p in problems
    )
    assert "sources[1].include: must be a list of non-empty strings" in problems
    assert any(p.startswith("sources[1].content_selector: invalid CSS selector") for p in problems)
    assert any(
        p.startswith("outputs[0].exclude[0]: invalid regular expression '*oops'") for p in problems
    )


def test_rules_reach_sources_and_outputs(tmp_path: Path) -> None:
    raw: dict[str, Any] = {
        "output": {"dir": str(tmp_path / "out")},
        "sources": [{"id": "a", "url": "https://a.example/feed", "exclude": ["sponsored"],
                     "full_text": True, "content_selector": "article .body"}],
        "outputs": [{"name": "tech", "exclude": ["crypto"]}],
    }  # fmt: skip
    config = parse_config(raw, path=tmp_path / "c.toml")
    source = config.sources[0]
    assert source.filters.drops(entry("Sponsored: a deal")) is not None
    assert source.full_text and source.content_selector == "article .body"
    assert config.outputs[0].filters.drops(entry("crypto")) is not None


def verdict(action: Action, e: Entry) -> Decision:
    return Decision(action, e, "because", entry_id=7 if action is not Action.NEW else None)


def test_screen_drops_new_and_merged_entries_and_says_so_once() -> None:
    rules = filters(exclude=["crypto"])
    crypto, other = entry("Crypto news"), entry("Other news")
    decisions = [verdict(Action.NEW, crypto), verdict(Action.MERGE, crypto),
                 verdict(Action.NEW, other)]  # fmt: skip
    first = screen(decisions, rules, tombstones={})
    assert [d.action for d in first] == [Action.FILTERED, Action.FILTERED, Action.NEW]
    assert first[0].reason == 'exclude rule "crypto" matched the title'
    dropped = {crypto.key: Tombstone(crypto.key, False, first[0].reason, T0)}
    again = screen(decisions, rules, tombstones=dropped)
    assert [d.action for d in again] == [Action.UNCHANGED, Action.UNCHANGED, Action.NEW]
    other_rule = {crypto.key: Tombstone(crypto.key, False, "another rule", T0)}
    assert screen(decisions, rules, tombstones=other_rule)[0].action is Action.FILTERED


def test_screen_leaves_what_is_stored_alone() -> None:
    """An entry stored before a rule came keeps its updates; unchanged ones are not judged."""
    rules = filters(exclude=["crypto"])
    kept = [verdict(Action.UPDATE, entry("Crypto")), verdict(Action.UNCHANGED, entry("Crypto"))]
    assert screen(kept, rules, tombstones={}) == tuple(kept)


def _rss(items: list[tuple[str, str]]) -> bytes:
    """RSS 2.0 with (guid, title) items, newest first, an hour apart."""
    body = "".join(
        f'<item><guid isPermaLink="false">urn:t:{g}</guid><title>{t}</title>'
        f"<link>https://example.org/{g}</link><description>{t}</description>"
        f"<pubDate>Wed, 25 Nov 2026 {20 - i:02d}:00:00 GMT</pubDate></item>"
        for i, (g, t) in enumerate(items)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        f"<link>https://example.org/</link>{body}</channel></rss>"
    ).encode()


def test_output_rules_hide_from_that_output_only(tmp_path: Path) -> None:
    """A "tech without crypto" output and a Chinese one without ads, beside "all"; the limit
    still fills up with what the rules let through, archives included."""
    from aggregator.publish import render_outputs
    from aggregator.render.archive import ARCHIVE_DIR
    from aggregator.scheduler import run_once
    from aggregator.store import open_store

    (tmp_path / "tech.xml").write_bytes(
        _rss([("c1", "Crypto exchange fails"), ("c2", "Bitcoin and crypto rally"),
              ("p1", "Python 3.15 beta"), ("r1", "Rust 2027 edition"), ("g1", "Go 1.30")])
    )  # fmt: skip
    (tmp_path / "zh.xml").write_bytes(
        _rss([("z1", "【广告】双十一特惠"), ("z2", "国产大模型开源"), ("z3", "芯片出口新规")])
    )
    raw: dict[str, Any] = {
        "storage": {"url": f"sqlite:///{tmp_path / 'agg.db'}"},
        "output": {"dir": str(tmp_path / "public"), "formats": ["atom"], "archive_page_size": 2},
        "sources": [
            {"id": "tech", "url": "https://t.example/feed", "fixture": "tech.xml", "group": "tech"},
            {"id": "zh", "url": "https://z.example/feed", "fixture": "zh.xml", "group": "中文"},
        ],
        "outputs": [
            {"name": "all", "title": "All"},
            {"name": "tech", "title": "Tech", "groups": ["tech"], "exclude": ["crypto", "bitcoin"],
             "limit": 2},
            {"name": "zh", "title": "中文", "groups": ["中文"], "exclude": ["广告"]},
        ],
    }  # fmt: skip
    config = parse_config(raw, path=tmp_path / "c.toml")
    store = open_store(config.storage.url)
    try:
        result = run_once(config, store, now=T0, offline=True)
        assert sum(o.result.new for o in result.outcomes) == 8  # every entry is stored
        render_outputs(config, store)
    finally:
        store.close()

    def titles(name: str) -> list[str]:
        text = (tmp_path / "public" / name).read_text(encoding="utf-8")
        return re.findall(r"<entry>.*?<title[^>]*>([^<]*)</title>", text, re.S)

    assert "Crypto exchange fails" in titles("all.atom")
    assert "【广告】双十一特惠" in titles("all.atom")
    assert titles("tech.atom") == ["Python 3.15 beta", "Rust 2027 edition"]
    assert titles("zh.atom") == ["国产大模型开源", "芯片出口新规"]
    archives = sorted((tmp_path / "public" / ARCHIVE_DIR / "tech").glob("*.atom"))
    assert len(archives) == 2  # 5 entries, pages of 2: two full pages, written once
    archived = "".join(page.read_text(encoding="utf-8") for page in archives)
    assert "Python 3.15 beta" in archived and "rypto" not in archived
