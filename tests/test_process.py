from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aggregator.process import (
    clean_html,
    decide,
    normalise_entries,
    normalise_entry,
    normalise_link,
    normalise_title,
    truncate_text,
)
from aggregator.process.dedup import CONTENT_HASH_VERSION
from aggregator.process.links import strip_tracking
from aggregator.types import (
    Action,
    Candidate,
    Enclosure,
    Entry,
    Known,
    KnownItem,
    ParsedEntry,
    ParsedFeed,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
FEED = ParsedFeed(format="rss20", title="Feed", link="https://example.com/blog/")


def norm(parsed: ParsedEntry, source_id: str = "src") -> Entry:
    return normalise_entry(
        parsed, source_id=source_id, feed=FEED, feed_url="https://example.com/feed.xml"
    )


# -- HTML cleaning ---------------------------------------------------------------------------------


@pytest.mark.parametrize("attr", ["_src", "data-src", "data-original", "data-lazy-src"])
def test_lazy_image_attributes_become_src(attr: str) -> None:
    html = f'<p><img src="data:image/gif;base64,R0l" {attr}="/img/a.jpg"></p>'
    out = clean_html(html, base="https://example.com/post/1")
    assert 'src="https://example.com/img/a.jpg"' in out
    assert attr not in out and "data:image" not in out
    assert 'referrerpolicy="no-referrer"' in out


def test_real_src_wins_over_lazy_copy_and_lazy_attr_is_dropped() -> None:
    html = '<img _src="https://cdn.example/x.jpg" src="https://cdn.example/x.jpg">'
    assert clean_html(html, base=None).count("https://cdn.example/x.jpg") == 1


def test_relative_urls_become_absolute_and_trackers_are_dropped() -> None:
    html = (
        '<a href="../other?id=3&utm_source=rss&utm_medium=feed&fbclid=zz">x</a>'
        '<img src="pic.png" srcset="a.png 1x, /b.png 2x">'
    )
    out = clean_html(html, base="https://example.com/blog/post/")
    assert 'href="https://example.com/blog/other?id=3"' in out
    assert 'src="https://example.com/blog/post/pic.png"' in out
    assert "https://example.com/blog/post/a.png 1x, https://example.com/b.png 2x" in out


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        '<img src="x.png" onerror="alert(1)">',
        '<a href="javascript:alert(1)">x</a>',
        '<p style="background:url(javascript:alert(1));width:expression(alert(1))">x</p>',
        '<iframe src="https://evil.example/"></iframe>',
        '<a href="JaVaScRiPt:alert(1)">x</a>',
        "<svg><script>alert(1)</script></svg>",
        '<form action="https://evil.example/"><input name="q"></form>',
    ],
)
def test_sanitiser_removes_active_content(hostile: str) -> None:
    out = clean_html("<p>ok</p>" + hostile, base="https://example.com/").lower()
    for bad in ("<script", "onerror", "javascript:", "expression(", "style=", "<iframe", "<form"):
        assert bad not in out
    assert "<p>ok</p>" in out


def test_empty_html_is_empty() -> None:
    assert clean_html(None, base=None) == "" == clean_html("   ", base=None)


# -- text --------------------------------------------------------------------------------------


def test_truncate_cjk_cuts_between_characters() -> None:
    text = "工业互联网企业正在不断迎来政策利好也正在成为国家高期待的领域"
    out = truncate_text(text, 10)
    assert out == text[:10] + "…"


def test_truncate_latin_cuts_at_a_word_boundary() -> None:
    out = truncate_text("the quick brown fox jumps over the lazy dog", 22)
    assert out == "the quick brown fox…"


def test_truncate_keeps_combining_marks_with_their_letter() -> None:
    text = "e\u0301" * 10  # é as e + combining acute
    out = truncate_text(text, 5)
    assert not out.rstrip("…").endswith("e") or out.count("\u0301") == out.count("e")


def test_short_text_is_unchanged() -> None:
    assert truncate_text("短文本", 10) == "短文本"


# -- links and titles ------------------------------------------------------------------------


def test_normalise_link_ignores_cosmetic_differences() -> None:
    a = normalise_link("https://www.Example.com/post/1/?utm_source=x&b=2&a=1#comments")
    b = normalise_link("http://example.com:80/post/1?a=1&b=2")
    assert a == b == "//example.com/post/1?a=1&b=2"
    assert normalise_link("mailto:x@example.com") is None
    assert normalise_link("https://example.com/a") != normalise_link("https://example.com/b")


def test_strip_tracking_keeps_other_params_and_order() -> None:
    url = "https://e.com/p?z=1&utm_campaign=c&a=2&gclid=9"
    assert strip_tracking(url) == "https://e.com/p?z=1&a=2"
    assert strip_tracking("https://e.com/p?a=1") == "https://e.com/p?a=1"


def test_normalise_title_folds_case_width_and_punctuation() -> None:
    assert normalise_title("Hello, World!") == normalise_title("hello world")
    assert normalise_title("２０２１年，工业互联网") == normalise_title("2021年 工业互联网")


# -- entries -----------------------------------------------------------------------------------


def test_keys_fall_back_from_guid_to_link_to_hash() -> None:
    with_guid = norm(ParsedEntry(guid="abc", link="https://example.com/1", title="t"))
    with_link = norm(ParsedEntry(link="/1?utm_source=x", title="t"))
    bare = norm(ParsedEntry(title="Only a title", published_at=NOW))
    assert with_guid.key == "guid:abc"
    assert with_link.key == "link://example.com/1"
    assert with_link.link == "https://example.com/1"
    assert bare.key.startswith("hash:")
    again = norm(ParsedEntry(title="Only a title", published_at=NOW))
    assert again.key == bare.key


def test_very_long_guid_key_is_bounded() -> None:
    entry = norm(ParsedEntry(guid="x" * 5000, title="t"))
    assert len(entry.key) < 100


def test_entry_is_cleaned_and_dated() -> None:
    parsed = ParsedEntry(
        guid="g1",
        link="posts/1",
        title="<b>Bold</b> &amp; title",
        content_html='<p>Hi<img data-src="/i.png" src=""></p><script>x</script>',
        updated_at=datetime(2020, 1, 2, 3, 4, tzinfo=UTC),
        categories=(" a ", "a", "b"),
        enclosures=(Enclosure("ep.mp3", "audio/mpeg", 10), Enclosure("ep.mp3", "audio/mpeg", 10)),
    )
    e = norm(parsed)
    assert e.title == "Bold & title"
    assert e.link == "https://example.com/blog/posts/1"
    assert "script" not in e.content_html
    assert e.thumbnail == "https://example.com/i.png"
    assert e.published_at == datetime(2020, 1, 2, 3, 4, tzinfo=UTC)
    assert e.categories == ("a", "b")
    assert e.enclosures == (
        Enclosure("https://example.com/blog/posts/ep.mp3", "audio/mpeg", 10),  # against the link
    )


def test_feed_image_beats_first_img_and_title_falls_back_to_text() -> None:
    e = norm(
        ParsedEntry(
            guid="1", content_html="<p>just text here <img src='/a.png'></p>", image="/t.jpg"
        )
    )
    assert e.thumbnail == "https://example.com/t.jpg"
    assert e.title == "just text here"
    assert e.norm_title == ""  # no title: never title-matched


def test_content_hash_ignores_dates_but_not_content() -> None:
    a = norm(ParsedEntry(guid="1", title="t", content_html="<p>a</p>", updated_at=NOW))
    b = norm(
        ParsedEntry(guid="1", title="t", content_html="<p>a</p>", updated_at=NOW + timedelta(1))
    )
    c = norm(ParsedEntry(guid="1", title="t", content_html="<p>b</p>"))
    assert a.content_hash == b.content_hash != c.content_hash


def test_normalise_entries_skips_a_bad_entry_with_a_warning() -> None:
    feed = ParsedFeed(format="rss20", entries=(ParsedEntry(guid="1", title="ok"), "bad"))  # type: ignore[arg-type]
    entries, warnings = normalise_entries(feed, source_id="s", feed_url="https://e.com/")
    assert len(entries) == 1 and len(warnings) == 1 and "entry 1 skipped" in warnings[0]


# -- decisions ---------------------------------------------------------------------------------


def entry(
    key: str,
    *,
    source: str = "s1",
    link: str | None = None,
    title: str = "A long title",
    content: str = "c",
) -> Entry:
    return norm(
        ParsedEntry(guid=key, link=link, title=title, content_html=content, published_at=NOW),
        source_id=source,
    )


def test_decide_new_unchanged_update_duplicate() -> None:
    e1, e2, e3 = entry("1"), entry("2", content="v2"), entry("3")
    known = Known(
        items={
            "guid:1": KnownItem("guid:1", 10, e1.content_hash, True, CONTENT_HASH_VERSION),
            "guid:2": KnownItem("guid:2", 11, "old-hash", True, CONTENT_HASH_VERSION),
        }
    )
    got = decide([e1, e2, e3, e3], known, now=NOW, title_window=timedelta(hours=48))
    assert [d.action for d in got] == [
        Action.UNCHANGED,
        Action.UPDATE,
        Action.NEW,
        Action.DUPLICATE,
    ]
    assert got[1].entry_id == 11


def test_decide_merges_same_link_from_another_source() -> None:
    e = entry("x", source="s2", link="https://www.example.com/story?utm_source=a")
    cand = Candidate(7, ("s1",), "//example.com/story", "other", NOW)
    (d,) = decide([e], Known({}, (cand,)), now=NOW, title_window=timedelta(hours=48))
    assert (d.action, d.entry_id) == (Action.MERGE, 7)
    assert "same link" in d.reason


def test_decide_merges_same_title_only_across_sources_and_within_window() -> None:
    e = entry("x", source="s2", title="Big News: Something Happened")
    same = Candidate(
        1,
        ("s1",),
        None,
        normalise_title("big news — something happened!"),
        NOW - timedelta(hours=3),
    )
    (d,) = decide([e], Known({}, (same,)), now=NOW, title_window=timedelta(hours=48))
    assert (d.action, d.entry_id) == (Action.MERGE, 1)
    old = Candidate(1, ("s1",), None, same.norm_title, NOW - timedelta(days=5))
    own = Candidate(1, ("s2",), None, same.norm_title, NOW)
    for cand in (old, own):
        (d,) = decide([e], Known({}, (cand,)), now=NOW, title_window=timedelta(hours=48))
        assert d.action is Action.NEW


def test_decide_never_title_matches_short_titles() -> None:
    e = entry("x", source="s2", title="Re:")
    cand = Candidate(1, ("s1",), None, normalise_title("Re:"), NOW)
    (d,) = decide([e], Known({}, (cand,)), now=NOW, title_window=timedelta(hours=48))
    assert d.action is Action.NEW


def test_same_link_within_one_source_is_not_merged() -> None:
    """Peers (Miniflux, reader) key items by id within a feed: two posts may share a link."""
    a = entry("1", link="https://e.com/p")
    b = entry("2", link="https://e.com/p?utm_source=x")
    got = decide([a, b], Known({}), now=NOW, title_window=timedelta(hours=48))
    assert [d.action for d in got] == [Action.NEW, Action.NEW]
    cand = Candidate(5, ("s1",), "//e.com/p", "x", NOW)
    (d,) = decide(
        [entry("3", link="https://e.com/p")],
        Known({}, (cand,)),
        now=NOW,
        title_window=timedelta(hours=48),
    )
    assert d.action is Action.NEW


def test_text_keeps_inline_punctuation_and_separates_blocks() -> None:
    from aggregator.process import html_to_text

    assert html_to_text('<a href="x">The Other One</a>, live') == "The Other One, live"
    assert html_to_text("<p>one</p><p>two</p>three<br>four") == "one two three four"
    assert html_to_text("Tom &amp; Jerry") == "Tom & Jerry"


def test_urls_are_rewritten_by_the_sanitiser_in_one_pass() -> None:
    html = (
        '<p>Hello <a href="x?id=1&amp;utm_source=rss">link</a> '
        '<img src="/i.png" srcset="/a.png 1x, b.png 2x" alt="alt"></p>'
    )
    assert clean_html(html, base="https://e.com/blog/post") == (
        '<p>Hello <a href="https://e.com/blog/x?id=1" rel="noopener noreferrer">link</a> '
        '<img src="https://e.com/i.png" '
        'srcset="https://e.com/a.png 1x, https://e.com/blog/b.png 2x"'
        ' alt="alt" referrerpolicy="no-referrer"></p>'
    )


def _html_samples() -> list[str]:
    """Entry HTML from every corpus feed and seed, hostile fragments, and seeded noise."""
    import random
    from pathlib import Path

    from aggregator.parse import parse_document

    root = Path(__file__).resolve().parents[1]
    samples = [
        '<a title="x>y">t</a>u', "x<table>y<td>z</table>", '<img alt="a>b" src="/i.png">c',
        "<scr<script>ipt>alert(1)</script>", "<![CDATA[x]]>y", '<a href="&quot;>">q</a>',
        "a&nbsp;b<wbr>c", "<pre>  a\n  b</pre>", "<p>a<!-- c > d -->b</p>",
        "<textarea><p>x</p></textarea>", "<xmp><b>x</b></xmp>", "<plaintext><b>x</b>",
        '<iframe srcdoc="<p>x</p>">i</iframe>', "<svg><text>s</text></svg>", "&amp;amp;&lt;b&gt;",
    ]  # fmt: skip
    for path in sorted(
        [*(root / "tests" / "data" / "corpus").rglob("*"), *(root / "seeds").rglob("*")]
    ):
        if not path.is_file() or path.suffix in (".toml", ".md"):
            continue
        try:
            feed = parse_document(path.read_bytes(), source_id="s", headers={}, url="http://e.x/f")
        except Exception:
            continue
        samples += [e.content_html or e.summary_html or "" for e in feed.entries]
    rnd = random.Random(5)
    bits = [
        "<",
        ">",
        '"',
        "'",
        "&",
        "amp;",
        "lt;",
        "<p>",
        "</p>",
        '<a href="',
        "<img src=",
        " ",
        "x",
        "虎",
        "<br/>",
        "<!--",
        "-->",
        "<script>",
        "</script>",
        "<table>",
        "<td>",
    ]
    samples += ["".join(rnd.choice(bits) for _ in range(rnd.randint(1, 40))) for _ in range(3000)]
    return samples


def test_cleaned_html_to_text_equals_parsing_the_cleaned_html_again() -> None:
    """The regex fast path over ``clean_html``'s output gives exactly what ``html_to_text``
    (a second sanitiser pass) gives, over the corpus, hostile fragments and noise."""
    from aggregator.process.html import cleaned_html_to_text, html_to_text

    samples = _html_samples()
    assert len(samples) > 3500
    differ = []
    for html in samples:
        cleaned = clean_html(html, base="http://e.x/")
        if cleaned_html_to_text(cleaned) != html_to_text(cleaned):
            differ.append(html)
    assert differ == []
