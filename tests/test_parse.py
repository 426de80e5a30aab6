"""Tests for aggregator.parse: corpus sweep, golden parses, format detection, the three adapters."""

from __future__ import annotations

import dataclasses
import difflib
import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aggregator.errors import ParseError
from aggregator.parse import parse_document, parse_posts, rss_atom
from aggregator.types import Enclosure, ParsedFeed

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "data" / "corpus"
FEEDS = CORPUS / "feeds"
GOLDEN_DIR = ROOT / "tests" / "data" / "parse"
SEED_POST = ROOT / "seeds" / "huxiu" / "huxiu-2021-03-22-industrial-internet.md"
REGEN_HINT = "run `.venv/bin/python tests/regen_parse_golden.py` and review the diff"

MANIFEST: list[dict[str, Any]] = tomllib.loads((CORPUS / "manifest.toml").read_text("utf-8"))[
    "feed"
]
XML_FORMATS = {"rss09x", "rss1", "rss2", "atom03", "atom10"}
FEED_FORMATS = XML_FORMATS | {"jsonfeed"}
# Not feeds, or cut off mid-document: these must be refused with a ParseError.
MUST_FAIL = {
    "html-daringfireball-homepage.html",
    "html-sqlite-releases.html",
    "rss2-truncated-invalid.xml",
    "jsonfeed-truncated.json",
}
# feedparser 6.0.14 found 0 entries here (the manifest says so); we transcode and find them.
UTF16_NO_BOM = ("rss2-utf16be-no-bom-no-xmldecl.xml", "rss2-utf16le-no-bom-no-xmldecl.xml")

GOLDEN_FEEDS = (
    "rss091-no-guid.xml",
    "rss092-spec-sample.xml",
    "rss1-debian-security.rdf",
    "rss2-reader-full.rss",
    "atom03-gofeed.xml",
    "atom10-xml-base.atom",
    "atom10-reader-full.atom",
    "podcast-theomnishow.rss",
    "jsonfeed11-elastic.json",
    "jsonfeed10-spec-example.json",
    "jsonfeed11-wrong-types.json",
    "rss2-zh-kc0011-gb2312.rss",
    "rss2-windows-1251-cyrillic.xml",
)
GOLDEN_CASES = (*GOLDEN_FEEDS, SEED_POST.name)
SEED_TITLE = "2021年，工业互联网创业机会一定在这里"


def _by_name(name: str) -> dict[str, Any]:
    return next(meta for meta in MANIFEST if Path(meta["file"]).name == name)


def _feed_bytes(name: str) -> bytes:
    return (FEEDS / name).read_bytes()


def _norm(text: str | None) -> str:
    return " ".join((text or "").split())


# -- golden files --------------------------------------------------------------------------------


def golden_parse(name: str) -> ParsedFeed:
    """The parse a golden file records: the seed post via parse_posts, the rest as documents."""
    if name == SEED_POST.name:
        return parse_posts([(name, SEED_POST.read_bytes())], source_id="golden")
    return parse_document(_feed_bytes(name), source_id="golden")


def golden_path(name: str) -> Path:
    return GOLDEN_DIR / f"{Path(name).stem}.json"


def _jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dump_feed(feed: ParsedFeed) -> str:
    """A ParsedFeed as deterministic JSON: field order kept, datetimes ISO 8601, UTF-8 text."""
    data = dataclasses.asdict(feed)
    return json.dumps(data, default=_jsonable, ensure_ascii=False, indent=2) + "\n"


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_golden_parse(name: str) -> None:
    path = golden_path(name)
    assert path.exists(), f"{path} is missing: {REGEN_HINT}"
    expected = path.read_text("utf-8")
    actual = dump_feed(golden_parse(name))
    if actual != expected:
        diff = difflib.unified_diff(
            expected.splitlines(), actual.splitlines(), "golden", "actual", lineterm=""
        )
        excerpt = "\n".join(list(diff)[:40])
        pytest.fail(f"{path.name} differs from the parse: {REGEN_HINT}\n{excerpt}")


def test_golden_files_are_plain_json() -> None:
    for name in GOLDEN_CASES:
        data = json.loads(golden_path(name).read_text("utf-8"))
        assert set(data) == {f.name for f in dataclasses.fields(ParsedFeed)}


# -- the shared corpus ---------------------------------------------------------------------------


@pytest.mark.parametrize("meta", MANIFEST, ids=lambda meta: Path(meta["file"]).name)
def test_corpus_parses_or_refuses(meta: dict[str, Any]) -> None:
    name = Path(meta["file"]).name
    try:
        feed = parse_document((CORPUS / meta["file"]).read_bytes(), source_id=name)
    except ParseError as exc:
        assert exc.source_id == name
        assert str(exc).startswith(f"{name}: ")
        assert not (meta["format"] in FEED_FORMATS and meta["entries"] > 0), str(exc)
        return
    assert name not in MUST_FAIL, f"{name} should have been refused"
    if meta["format"] in FEED_FORMATS and meta["entries"] > 0:
        assert len(feed.entries) == meta["entries"]
    if meta["format"] in XML_FORMATS and meta["first_title"] and feed.entries:
        assert _norm(feed.entries[0].title) == _norm(meta["first_title"])


@pytest.mark.parametrize("name", sorted(MUST_FAIL))
def test_corpus_non_feeds_are_refused(name: str) -> None:
    with pytest.raises(ParseError):
        parse_document(_feed_bytes(name), source_id="s")


def test_html_page_is_named_as_such() -> None:
    with pytest.raises(ParseError, match=r"not a feed \(looks like an HTML page\)"):
        parse_document(_feed_bytes("html-sqlite-releases.html"), source_id="s")


def test_truncated_xml_names_the_bozo_exception() -> None:
    with pytest.raises(ParseError, match=r"SAXParseException.*no element found"):
        parse_document(_feed_bytes("rss2-truncated-invalid.xml"), source_id="s")


@pytest.mark.parametrize("name", UTF16_NO_BOM)
def test_utf16_without_bom_is_transcoded(name: str) -> None:
    assert _by_name(name)["entries"] == 0  # what feedparser alone gets
    feed = parse_document(_feed_bytes(name), source_id="s")
    assert len(feed.entries) >= 1
    assert feed.entries[0].title == "Test feed title 1"
    assert any("UTF-16" in warning for warning in feed.warnings)


@pytest.mark.parametrize(
    "name", ["atom10-whitespace-before-xmldecl.xml", "atom10-scattered-elements.atom"]
)
def test_whitespace_before_xml_declaration_is_ignored(name: str) -> None:
    feed = parse_document(_feed_bytes(name), source_id="s")
    assert feed.format == "atom10"
    assert feed.title
    assert not any(warning.startswith("bozo") for warning in feed.warnings)


def test_utf8_bytes_declared_windows_1252_are_read_as_utf8() -> None:
    feed = parse_document(_feed_bytes("rss2-windows-1252-bytes-wrong-prolog.xml"), source_id="s")
    assert feed.title == "Euro €"
    # A real windows-1252 document keeps its declared encoding.
    real = parse_document(_feed_bytes("rss2-windows-1252-tiny.xml"), source_id="s")
    assert real.title == "Euro €"
    assert real.warnings == ()


def test_encodings_decode_to_text() -> None:
    chinese = parse_document(_feed_bytes("rss2-zh-kc0011-gb2312.rss"), source_id="s")
    assert chinese.entries[0].title == "建国35周年纪念，华表，和平鸽"
    cyrillic = parse_document(_feed_bytes("rss2-windows-1251-cyrillic.xml"), source_id="s")
    assert cyrillic.entries[0].title == "Цитата #17703"


def test_bozo_feed_with_entries_is_kept_with_a_warning() -> None:
    feed = parse_document(_feed_bytes("rss2-iso8859-1-undeclared.xml"), source_id="s")
    assert len(feed.entries) == 10
    assert any(w.startswith("bozo: CharacterEncodingOverride") for w in feed.warnings)


# -- format detection by content -----------------------------------------------------------------


def test_atom_named_rss_is_detected_as_atom() -> None:
    feed = parse_document(_feed_bytes("atom10-daringfireball-named-rss.rss"), source_id="s")
    assert feed.format == "atom10"
    assert len(feed.entries) == 47


JSON_FEED = b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "1", "title": "T"}]}'


@pytest.mark.parametrize("prefix", [b"", b"\xef\xbb\xbf", b" \r\n\t", b"\xef\xbb\xbf\n\n  "])
def test_json_feed_is_detected_after_bom_and_whitespace(prefix: bytes) -> None:
    feed = parse_document(prefix + JSON_FEED, source_id="s")
    assert feed.format == "json11"
    assert feed.entries[0].title == "T"


def test_markdown_post_is_detected() -> None:
    feed = parse_document(SEED_POST.read_bytes(), source_id="huxiu")
    assert feed.format == "markdown"
    assert feed.entries[0].title == SEED_TITLE


@pytest.mark.parametrize("body", [b"", b"  \n\t", b"\xef\xbb\xbf"])
def test_empty_document_is_refused(body: bytes) -> None:
    with pytest.raises(ParseError, match="empty document"):
        parse_document(body, source_id="s")


def test_well_formed_xml_that_is_no_feed_is_refused() -> None:
    with pytest.raises(ParseError, match="no RSS or Atom root element"):
        parse_document(b"<?xml version='1.0'?><config><a>1</a></config>", source_id="s")


def test_well_formed_feed_without_entries_is_empty_not_an_error() -> None:
    feed = parse_document(_feed_bytes("rss2-utf8-bom.xml"), source_id="s")
    assert (feed.format, feed.title, feed.entries, feed.warnings) == ("rss20", "Feed Title", (), ())


# -- RSS / Atom mapping --------------------------------------------------------------------------


def _rss(items: str, channel: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>C</title>'
        f"{channel}{items}</channel></rss>"
    ).encode()


def _atom(entries: str, feed: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>F</title><id>urn:f</id>{feed}{entries}</feed>"
    ).encode()


def test_entry_without_guid_has_guid_none() -> None:
    feed = parse_document(_feed_bytes("rss091-no-guid.xml"), source_id="s")
    entry = feed.entries[0]
    assert (entry.guid, entry.link) == (None, None)  # the item has neither: process falls back
    assert entry.title and entry.content_html


def test_published_only_entry_has_no_updated_date() -> None:
    # FeedParserDict.get("updated") would silently return `published` (and warn).
    body = _rss("<item><title>x</title><pubDate>Mon, 22 Mar 2021 04:04:00 +0800</pubDate></item>")
    entry = parse_document(body, source_id="s").entries[0]
    assert entry.published_at == datetime(2021, 3, 21, 20, 4, tzinfo=UTC)
    assert entry.updated_at is None


def test_slash_dates_are_not_misread() -> None:
    # feedparser's ISO 8601 handler reads "2020/1/10 14:33:00" as 2020-11-01 (rss2-zh-kc0011).
    body = _rss("<item><title>x</title><pubDate>2020/1/10 14:33:00</pubDate></item>")
    entry = parse_document(body, source_id="s").entries[0]
    assert entry.published_at == datetime(2020, 1, 10, 14, 33, tzinfo=UTC)


def test_html_title_is_plain_text() -> None:
    body = _atom(
        '<entry><id>urn:1</id><title type="html">Fish &amp;amp; &lt;b&gt;Chips&lt;/b&gt;</title>'
        "</entry>"
    )
    assert parse_document(body, source_id="s").entries[0].title == "Fish & Chips"


def test_atom_entry_inherits_the_feed_author() -> None:
    body = _atom(
        "<entry><id>urn:1</id><title>a</title></entry>"
        "<entry><id>urn:2</id><title>b</title><author><name>Own</name></author></entry>",
        feed="<author><name>Feed Author</name></author>",
    )
    entries = parse_document(body, source_id="s").entries
    assert [e.author for e in entries] == ["Feed Author", "Own"]


def test_atom_id_is_not_taken_as_link() -> None:
    entry = parse_document(_atom("<entry><id>urn:uuid:1</id></entry>"), source_id="s").entries[0]
    assert (entry.guid, entry.link) == ("urn:uuid:1", None)


def test_content_prefers_html_and_keeps_a_different_summary() -> None:
    body = _atom(
        "<entry><id>urn:1</id><summary>short &amp; plain</summary>"
        '<content type="html">&lt;p&gt;long &lt;img data-src="x.jpg"&gt;&lt;/p&gt;</content>'
        "</entry>"
    )
    entry = parse_document(body, source_id="s").entries[0]
    assert entry.content_html == '<p>long <img data-src="x.jpg"></p>'  # raw, not sanitised
    assert entry.summary_html == "<p>short &amp; plain</p>"


def test_plain_text_content_is_escaped() -> None:
    body = _atom('<entry><id>urn:1</id><content type="text">1 &lt; 2\n\nthree</content></entry>')
    entry = parse_document(body, source_id="s").entries[0]
    assert entry.content_html == "<p>1 &lt; 2</p>\n<p>three</p>"
    assert entry.summary_html is None


def test_enclosures_categories_image_and_ttl() -> None:
    items = (
        '<item xmlns:media="http://search.yahoo.com/mrss/"><title>x</title>'
        "<category>a</category><category>b</category><category>a</category>"
        '<enclosure url="http://e/1.mp3" type="audio/mpeg" length="12"/>'
        '<enclosure url="http://e/1.mp3" type="audio/mpeg" length="12"/>'
        '<enclosure url="" type="audio/mpeg"/>'
        '<enclosure url="http://e/2.mp3" length="n/a"/>'
        '<media:thumbnail url="http://e/t.jpg"/><comments>http://e/c</comments></item>'
    )
    feed = parse_document(_rss(items, channel="<ttl>30</ttl>"), source_id="s")
    entry = feed.entries[0]
    assert feed.ttl_s == 1800
    assert entry.categories == ("a", "b")
    assert entry.enclosures == (
        Enclosure("http://e/1.mp3", "audio/mpeg", 12),
        Enclosure("http://e/2.mp3", None, None),
    )
    assert (entry.image, entry.comments) == ("http://e/t.jpg", "http://e/c")


def test_url_is_the_base_for_relative_links() -> None:
    url = "https://example.org/blog/feed.xml"
    body = _rss(
        '<item><link>/post/1</link><description>&lt;img src="a.png"&gt;</description></item>'
    )
    feed = parse_document(body, source_id="s", url=url)
    assert feed.base == url
    assert feed.entries[0].link == "https://example.org/post/1"
    assert feed.entries[0].base == url
    assert feed.entries[0].content_html == '<img src="a.png">'  # resolved by process, not here


def test_http_charset_is_honoured() -> None:
    body = '<rss version="2.0"><channel><title>Café</title></channel></rss>'.encode("latin-1")
    headers = {"Content-Type": "application/rss+xml; charset=ISO-8859-1"}
    assert parse_document(body, source_id="s", headers=headers).title == "Café"


def test_failing_entry_is_skipped_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    real = rss_atom._map_entry

    def flaky(entry: Any, context: Any) -> Any:
        if entry["title"] == "bad":
            raise ValueError("boom")
        return real(entry, context)

    monkeypatch.setattr(rss_atom, "_map_entry", flaky)
    body = _rss("<item><title>bad</title></item><item><title>good</title></item>")
    feed = parse_document(body, source_id="s")
    assert [e.title for e in feed.entries] == ["good"]
    assert feed.warnings == ("entry 0 skipped: ValueError: boom",)


def test_every_entry_failing_is_a_parse_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(entry: Any, context: Any) -> Any:
        raise KeyError("title")

    monkeypatch.setattr(rss_atom, "_map_entry", broken)
    with pytest.raises(ParseError, match="every entry failed"):
        parse_document(_rss("<item><title>a</title></item>"), source_id="s")


# -- JSON Feed -----------------------------------------------------------------------------------


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def test_json_feed_wrong_types_warn_but_do_not_crash() -> None:
    feed = parse_document(_feed_bytes("jsonfeed11-wrong-types.json"), source_id="s")
    assert feed.format == "json11"
    assert len(feed.entries) == 8
    assert feed.title is None
    assert feed.entries[0].title is None and feed.entries[0].content_html is None
    assert feed.entries[1].guid == "3.1415"
    assert feed.entries[7].author == "Jane"
    assert "feed: ignored 'title': expected a string, got list" in feed.warnings
    assert "item 0: ignored 'date_published': not an RFC 3339 date: 'not a date'" in feed.warnings


def test_json_feed_versions() -> None:
    v10 = _json({"version": "https://jsonfeed.org/version/1", "items": []})
    assert parse_document(v10, source_id="s").format == "json10"
    unversioned = parse_document(_json({"items": []}), source_id="s")
    assert unversioned.format == "json11"
    assert unversioned.warnings == ("feed: no 'version': read as JSON Feed 1.1",)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": [', "not valid JSON"),
        (b'{"title": "no items"}', "no 'items' list"),
        (b'{"items": {"not": "a list"}}', "no 'items' list"),
        (b'{"items": ["not an object"]}', "every item failed"),
    ],
)
def test_json_that_is_not_a_feed_is_refused(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_document(body, source_id="s")


def test_json_feed_item_mapping() -> None:
    item = {
        "id": 42,
        "external_url": "https://x/ext",
        "content_text": "a < b\n\nc",
        "summary": "s & t",
        "banner_image": "https://x/b.png",
        "date_published": "2021-03-22T12:04+08:00",
        "date_modified": "2021-03-22T04:04:00z",
        "author": {"name": "Old"},
        "tags": ["t1", "t1", "t2"],
        "attachments": [{"url": "https://x/a.mp3", "mime_type": "audio/mpeg", "size_in_bytes": 9}],
    }
    document = {"version": "https://jsonfeed.org/version/1", "authors": [{"name": "F"}]}
    feed = parse_document(_json({**document, "items": [item, {"id": "2"}]}), source_id="s")
    first, second = feed.entries
    assert (first.guid, first.link, first.image) == ("42", "https://x/ext", "https://x/b.png")
    assert first.content_html == "<p>a &lt; b</p>\n<p>c</p>"
    assert first.summary_html == "<p>s &amp; t</p>"
    assert first.published_at == first.updated_at == datetime(2021, 3, 22, 4, 4, tzinfo=UTC)
    assert (first.author, first.categories) == ("Old", ("t1", "t2"))
    assert first.enclosures == (Enclosure("https://x/a.mp3", "audio/mpeg", 9),)
    assert second.author == "F"  # JSON Feed 1.1: an item without authors has the feed's


# -- Markdown posts ------------------------------------------------------------------------------


def test_seed_post_fields() -> None:
    feed = parse_posts([(SEED_POST.name, SEED_POST.read_bytes())], source_id="huxiu")
    assert (feed.format, feed.title, feed.warnings) == ("markdown", "虎嗅 - 首页资讯", ())
    (entry,) = feed.entries
    assert entry.title == SEED_TITLE
    assert entry.published_at == datetime(2021, 3, 22, 4, 4, tzinfo=UTC)
    assert entry.categories == ("新媒体", "虎嗅 - 首页资讯")
    assert entry.author == "虎嗅 - 首页资讯"
    assert entry.image == (
        "https://img.huxiucdn.com/article/cover/202103/22/114644997542.jpg"
        "?imageView2/1/w/1440/h/810/|imageMogr2/strip/interlace/1/quality/85/format/jpg"
    )
    assert entry.comments is None  # `comments: false` is Hexo's switch, not a URL
    assert (entry.guid, entry.link) == (None, None)
    assert entry.content_html is not None
    assert entry.content_html.startswith("<div>")
    assert entry.content_html.count(' _src="https://img.huxiucdn.com/') == 3  # left for process


def _post(front: str, body: str = "<p>body</p>") -> bytes:
    return f"---\n{front}\n---\n{body}\n".encode()


def test_post_dir_skips_a_broken_post_and_warns() -> None:
    posts = [
        ("b.md", _post("title: B\nauthor: Me\ndate: 2021-03-23 10:00:00")),
        ("a.md", _post("title: A\nauthor: Me\ndate: '2021-03-22T10:00:00+08:00'")),
        ("c.md", _post("title: [unclosed")),
    ]
    feed = parse_posts(posts, source_id="dir")
    assert [e.title for e in feed.entries] == ["A", "B"]  # sorted by name
    assert feed.title == "Me"
    assert feed.entries[0].published_at == datetime(2021, 3, 22, 2, 0, tzinfo=UTC)
    assert feed.entries[1].published_at == datetime(2021, 3, 23, 10, 0, tzinfo=UTC)
    (warning,) = feed.warnings
    assert warning.startswith("post c.md: skipped: malformed YAML front matter")


@pytest.mark.parametrize(
    "posts",
    [[], [("a.md", b"no front matter")], [("a.md", _post("- a list")), ("b.md", b"\xff\xfe")]],
)
def test_post_dir_without_a_readable_post_is_refused(posts: list[tuple[str, bytes]]) -> None:
    with pytest.raises(ParseError, match="no readable Markdown posts"):
        parse_posts(posts, source_id="dir")


def test_post_field_variants() -> None:
    front = (
        "title: 2021\nauthor: A\ncategories: one\ntags: [two, one, 3]\ncomments: https://c/1\n"
        "cover: https://i/c.png\npermalink: https://p/1\nguid: 7\nupdated: 2021-03-22\n"
        "date: not a date"
    )
    feed = parse_posts([("p.md", _post(front, "a < b\n\nsecond"))], source_id="dir")
    entry = feed.entries[0]
    assert (entry.title, entry.guid, entry.link) == ("2021", "7", "https://p/1")
    assert entry.categories == ("one", "two", "3")
    assert (entry.comments, entry.image) == ("https://c/1", "https://i/c.png")
    assert entry.published_at is None
    assert entry.updated_at == datetime(2021, 3, 22, tzinfo=UTC)
    assert entry.content_html == "<p>a &lt; b</p>\n<p>second</p>"
    assert feed.warnings == ("post p.md: ignored 'date': not a date: 'not a date'",)


def test_posts_with_different_authors_have_no_feed_title() -> None:
    posts = [("a.md", _post("author: A")), ("b.md", _post("author: B"))]
    assert parse_posts(posts, source_id="dir").title is None


def test_lone_surrogate_reference_is_a_parse_error_not_a_crash() -> None:
    body = (
        b"<rss version='2.0'><channel><title>t &#xD800;</title>"
        b"<item><title>x</item></channel></rss>"
    )
    with pytest.raises(ParseError):
        parse_document(body, source_id="s")


def test_documents_too_deep_or_too_many_elements_for_feedparser_are_refused() -> None:
    from aggregator.parse import parse_document
    from aggregator.parse._xml_bytes import MAX_XML_DEPTH, MAX_XML_ELEMENTS

    head = b'<?xml version="1.0" encoding="iso-8859-1"?><rss version="0.91"><channel><title>t'
    head += b"</title><item><title>x</title>"  # not UTF-8: feedparser's document, not fastxml's
    tail = b"</item></channel></rss>"
    deep = head + b"<x>" * (MAX_XML_DEPTH + 1) + b"</x>" * (MAX_XML_DEPTH + 1) + tail
    with pytest.raises(ParseError, match="deeper than"):
        parse_document(deep, source_id="s")
    flat = head + b"<x/>" * (MAX_XML_ELEMENTS + 1) + tail
    with pytest.raises(ParseError, match="XML elements"):
        parse_document(flat, source_id="s")
    cdata = head + b"<description><![CDATA[" + b"<p>" * 300_000 + b"]]></description>" + tail
    assert parse_document(cdata, source_id="s").entries  # escaped or CDATA HTML is text
