"""Documents whose bytes are not in the encoding they declare (issue #11).

GB18030 served as UTF-8 used to come out as mojibake (``ÄãºÃÊÀ½ç``). Each misdeclared document
below must read exactly like its correctly declared original, with one warning saying what was
used; correctly declared documents must not go near the detection at all.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from aggregator.parse import fastxml, parse_document, parse_posts
from aggregator.parse._xml_bytes import misdeclared, response_headers
from aggregator.parse.rss_atom import parse_xml
from aggregator.types import ParsedFeed

from .conftest import ROOT

FEEDS = ROOT / "seeds" / "feeds"
CORPUS = ROOT / "tests" / "data" / "corpus" / "feeds"
GB18030_RSS = FEEDS / "rss2-zh-kc0011-gb18030.rss"  # declares GB18030
CP1251_RSS = FEEDS / "rss2-windows-1251-cyrillic.xml"  # declares windows-1251
SEED_POST = ROOT / "seeds" / "huxiu" / "huxiu-2021-03-22-industrial-internet.md"
URL = "https://feeds.example/feed"
_DECLARATION = re.compile(rb'encoding="[^"]+"')
_DECLARED_UTF8_ITEM = (
    b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>C</title>'
    b"<item><title>TITLE</title><link>https://e.example/1</link></item></channel></rss>"
)


def _parse(body: bytes, headers: dict[str, str] | None = None) -> ParsedFeed:
    return parse_document(body, source_id="s", headers=headers, url=URL)


def _without_warnings(feed: ParsedFeed) -> ParsedFeed:
    return dataclasses.replace(feed, warnings=())


def _declared_utf8(path: Path, *, declaration: bool = True) -> bytes:
    """The document's own bytes, its XML declaration saying UTF-8 (or dropped: the default)."""
    body = path.read_bytes()
    new = b'encoding="utf-8"' if declaration else b""
    relabelled = _DECLARATION.sub(new, body, count=1)
    assert relabelled != body
    return relabelled


# --- RSS/Atom ---------------------------------------------------------------------------------

VARIANTS = {
    "xml-declaration": (True, None),
    "no-declaration": (False, None),
    "http-charset": (True, "application/rss+xml; charset=utf-8"),
    "http-charset-only": (False, "application/rss+xml; charset=UTF-8"),
}


@pytest.mark.parametrize("path", [GB18030_RSS, CP1251_RSS], ids=["gb18030", "windows-1251"])
@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
def test_xml_declared_utf8_reads_like_the_correctly_declared_original(
    path: Path, variant: tuple[bool, str | None]
) -> None:
    declaration, content_type = variant
    headers = {"Content-Type": content_type} if content_type else None
    expected = _parse(path.read_bytes())
    assert expected.warnings == ()
    feed = _parse(_declared_utf8(path, declaration=declaration), headers)
    assert _without_warnings(feed) == expected
    codec = "gb18030" if path == GB18030_RSS else "cp1251"
    assert feed.warnings == (f"declared utf-8, decoded as {codec}",)


def test_the_issue_case_is_no_longer_mojibake() -> None:
    feed = _parse(_declared_utf8(GB18030_RSS))
    assert feed.entries[0].title == "建国35周年纪念，华表，和平鸽"
    assert feed.title is not None and "投资资讯网" in feed.title


def test_fastxml_declines_invalid_utf8_and_reads_the_transcoded_document() -> None:
    """The fast path never sees bytes that are not UTF-8; it reads what they become."""
    body = _declared_utf8(GB18030_RSS)
    http = response_headers(None, URL)
    assert fastxml.feedparse(body, http) is None
    redecoded = misdeclared(body, http)
    assert redecoded is not None
    assert fastxml.feedparse(redecoded[0], {**http, "content-type": "application/xml"})
    fast = parse_xml(body, source_id="s", url=URL, fast=True)
    assert fast == parse_xml(body, source_id="s", url=URL, fast=False)


def test_utf8_with_a_few_broken_bytes_stays_utf8() -> None:
    """A cut-off character used to turn the whole document into windows-1252 mojibake."""
    good = (CORPUS / "rss2-zh-kc0011-utf8-declared-gb2312.rss").read_bytes()
    good = _DECLARATION.sub(b'encoding="utf-8"', good, count=1)
    cut = good.index("华表".encode())
    broken = good[:cut] + "华".encode()[:2] + good[cut + 3 :]
    feed = _parse(broken)
    assert feed.entries[0].title == "建国35周年纪念，\ufffd表，和平鸽"
    assert feed.entries[1:] == _parse(good).entries[1:]
    assert feed.warnings == ("declared utf-8, decoded as utf-8, 1 invalid byte sequence replaced",)


def test_latin_text_in_the_wrong_encoding_is_still_read_as_windows_1252() -> None:
    """charset-normalizer calls ISO-8859-1 text cp1250; feedparser's windows-1252 is kept."""
    feed = _parse((CORPUS / "rss2-iso8859-1-undeclared.xml").read_bytes())
    assert not any("decoded as" in warning for warning in feed.warnings)
    assert any(w.startswith("bozo: CharacterEncodingOverride") for w in feed.warnings)


def test_correctly_declared_documents_never_take_the_detection_path() -> None:
    misread = set()
    for path in sorted([*CORPUS.iterdir(), *FEEDS.iterdir()]):
        if misdeclared(path.read_bytes(), response_headers(None, URL)) is not None:
            misread.add(path.name)
    # The corpus's one wrongly declared document with enough text to tell (its bytes are
    # UTF-8); atom-invalid-encoding-name.xml ("Café") is too short and stays feedparser's.
    assert misread == {"rss2-zh-kc0011-utf8-declared-gb2312.rss"}


# --- JSON Feed and Markdown ---------------------------------------------------------------------


def _json_feed_from(path: Path) -> str:
    """A JSON Feed carrying the text of a (correctly declared) RSS document."""
    feed = _parse(path.read_bytes())
    items = [
        {"id": e.guid or e.link, "url": e.link, "title": e.title, "content_html": e.content_html}
        for e in feed.entries
    ]
    document = {"version": "https://jsonfeed.org/version/1.1", "title": feed.title, "items": items}
    return json.dumps(document, ensure_ascii=False)


@pytest.mark.parametrize(
    ("path", "codec"), [(GB18030_RSS, "gb18030"), (CP1251_RSS, "cp1251")], ids=["gb18030", "cp1251"]
)
def test_json_feed_that_is_not_utf8_is_decoded_as_what_it_is(path: Path, codec: str) -> None:
    text = _json_feed_from(path)
    expected = _parse(text.encode("utf-8"))
    feed = _parse(text.encode(codec))  # used to be a ParseError: "not valid JSON"
    assert _without_warnings(feed) == _without_warnings(expected)
    assert feed.warnings == (
        *expected.warnings,
        f"feed: not UTF-8 (RFC 8259, 8.1), decoded as {codec}",
    )


def test_json_feed_with_a_broken_byte_is_read_not_refused() -> None:
    text = _json_feed_from(GB18030_RSS).encode("utf-8")
    cut = text.index("华表".encode())
    feed = _parse(text[:cut] + b"\xff" + text[cut:])
    assert feed.entries[0].title == "建国35周年纪念，\ufffd华表，和平鸽"


def test_markdown_post_that_is_not_utf8_is_decoded_as_what_it_is() -> None:
    text = SEED_POST.read_text("utf-8")
    expected = _parse(text.encode("utf-8"))
    single = _parse(text.encode("gb18030"))  # used to be a ParseError: "not UTF-8"
    assert _without_warnings(single) == expected
    assert single.warnings == ("not UTF-8, decoded as gb18030",)
    posts = parse_posts([("a.md", text.encode("gb18030"))], source_id="s")
    assert posts.entries == expected.entries
    assert posts.warnings == ("post a.md: not UTF-8, decoded as gb18030",)


def test_a_gb2312_label_is_read_as_gb18030_like_feedparser_does() -> None:
    """朱镕基: 镕 is GBK, outside GB2312; feedparser reads the label as GB18030 anyway."""
    body = _DECLARATION.sub(b'encoding="gb2312"', GB18030_RSS.read_bytes(), count=1)
    body = body.replace("华表".encode("gb18030"), "朱镕基".encode("gb18030"), 1)
    feed = _parse(body)
    assert feed.entries[0].title == "建国35周年纪念，朱镕基，和平鸽"
    assert feed.warnings == ()


def test_too_little_text_to_tell_is_left_as_it_was() -> None:
    """Three bytes (an encoded surrogate) are no sample: no guess, feedparser as before."""
    body = _DECLARED_UTF8_ITEM.replace(b"TITLE", b"\xed\xa0\x80")
    feed = _parse(body)
    assert any(w.startswith("bozo: CharacterEncodingOverride") for w in feed.warnings)
    assert not any("decoded as" in w for w in feed.warnings)
