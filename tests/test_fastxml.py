"""Differential tests of the lxml fast path (aggregator.parse.fastxml) against feedparser.

feedparser is the oracle: whenever the fast path accepts a document, ``parse_xml`` must return
a ParsedFeed equal to the one feedparser's path gives. The fast path must also keep accepting
the documents it exists for (the benchmark's feeds), or the speed-up silently vanishes. It
reuses feedparser's private internals, only through aggregator.parse._feedparser_private, which
turns it off (plain feedparser for every document) on an untested release.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import importlib.util
import json
import logging
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import feedparser
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from aggregator.errors import ParseError
from aggregator.parse import _feedparser_private, fastxml, parse_document, rss_atom
from aggregator.types import ParsedFeed

ROOT = Path(__file__).resolve().parents[1]
# Every document of seeds/ and tests/data/ (recursively) but those that are not XML feeds, so a
# feed file added anywhere there is differentially tested without touching this list.
CORPORA = (ROOT / "seeds", ROOT / "tests" / "data")
NOT_FEEDS = {
    ".json": "JSON Feed documents and golden parses",
    ".md": "Markdown posts and notes",
    ".toml": "the corpus manifest",
    ".rnc": "the Atom RELAX NG schema",
    ".xsd": "the RSS 2.0 XML schema",
    ".opml": "OPML subscription lists (tests/test_opml.py)",
}
FEED_SUFFIXES = frozenset({".xml", ".atom", ".rss", ".rdf", ".html"})  # HTML: must be refused
FILES = sorted(path for root in CORPORA for path in root.rglob("*") if path.is_file())
DOCUMENTS = [path for path in FILES if path.suffix not in NOT_FEEDS]
# An RSS, RDF or Atom root element after an optional BOM, processing instructions, comments.
FEED_START = re.compile(
    rb"(?:\xef\xbb\xbf)?\s*(?:<\?.*?\?>\s*|<!--.*?-->\s*|<!DOCTYPE[^>]*>\s*)*"
    rb"<(?:rss|feed|rdf:RDF)\b",
    re.S,
)
URL = "https://example.org/blog/feed.xml"

# Plain well-formed UTF-8 feeds of the corpus the fast path is for: it must accept them.
ACCEPTED = (
    "atom10-large-miniflux.atom",
    "atom10-reddit-mediarss.atom",  # leaf media:thumbnail
    "atom10-relative-links.atom",
    "atom10-russcox.atom",
    "atom10-whitespace-before-xmldecl.xml",  # after rss_atom's byte-level repair
    "atom10-yakubin-large.atom",
    "rss092-spec-sample.xml",
    "rss2-large-miniflux.xml",
    "rss2-relative-urls-2.xml",
    "rss2-urdu-rtl.xml",
    "rss2-utf8-bom.xml",
    "rss2-windows-1252-bytes-wrong-prolog.xml",  # UTF-8 declared windows-1252, after repair
    "rss2-wirecutter-content-encoded.xml",
)
# Documents where feedparser's behaviour is not reproduced: they must go to feedparser.
DECLINED = (
    "atom03-gofeed.xml",  # Atom 0.3
    "atom10-content-src.atom",  # out-of-line content
    "atom10-scattered-elements.atom",  # markup inside <content type="html">
    "atom10-xml-base.atom",  # xml:base
    "podcast-theomnishow.rss",  # iTunes
    "rss091-iso8859-1-ptbr-court.xml",  # ISO-8859-1
    "rss1-debian-security.rdf",  # RSS 1.0 / RDF
    "rss2-bare-ampersand.xml",  # not well-formed
    "rss2-ja-utf16-bom-declared-utf8.xml",  # UTF-16
    "rss2-truncated-invalid.xml",  # not well-formed
    "rss2-vimeo-mediarss.xml",  # media:content with children
    "rss2-windows-1251-cyrillic.xml",
    "rss2-zh-kc0011-gb2312.rss",
)


# -- the oracle -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    """What parse_xml gave (a ParsedFeed, or the ParseError's message) and via which path."""

    result: ParsedFeed | str
    fast: bool


@contextlib.contextmanager
def fastxml_answers() -> Iterator[list[bool]]:
    """Whether fastxml accepted (True) or declined (False), one per call, in call order."""
    accepted: list[bool] = []
    real = fastxml.feedparse

    def spy(data: bytes, http: Any) -> Any:
        result = real(data, http)
        accepted.append(result is not None)
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fastxml, "feedparse", spy)
        yield accepted


def parse(body: bytes, *, fast: bool, **kwargs: Any) -> Outcome:
    """parse_xml with or without the fast path, recording whether fastxml accepted."""
    with fastxml_answers() as accepted:
        try:
            result: ParsedFeed | str = rss_atom.parse_xml(body, source_id="s", fast=fast, **kwargs)
        except ParseError as exc:
            result = str(exc)
    return Outcome(result, any(accepted))


def differences(expected: ParsedFeed | str, actual: ParsedFeed | str) -> list[str]:
    """The fields that differ, as ``path: expected != actual`` lines."""
    if isinstance(expected, str) or isinstance(actual, str):
        return [] if expected == actual else [f"result: {expected!r} != {actual!r}"]
    out = [
        f"feed.{name}: {old!r} != {new!r}"
        for name, old, new in _fields(expected, actual)
        if name != "entries"
    ]
    if len(expected.entries) != len(actual.entries):
        out.append(f"len(entries): {len(expected.entries)} != {len(actual.entries)}")
    for index, (old_entry, new_entry) in enumerate(
        zip(expected.entries, actual.entries, strict=False)
    ):
        out += [
            f"entries[{index}].{n}: {o!r} != {v!r}" for n, o, v in _fields(old_entry, new_entry)
        ]
    return out


def _fields(old: Any, new: Any) -> Iterator[tuple[str, Any, Any]]:
    for field in dataclasses.fields(old):
        before, after = getattr(old, field.name), getattr(new, field.name)
        if before != after:
            yield field.name, before, after


def check(body: bytes, **kwargs: Any) -> Outcome:
    """Parse both ways; the results must be equal. Returns the fast path's outcome."""
    expected = parse(body, fast=False, **kwargs)
    assert not expected.fast
    actual = parse(body, fast=True, **kwargs)
    diff = differences(expected.result, actual.result)
    assert not diff, "fast path differs from feedparser:\n" + "\n".join(diff[:20])
    return actual


# -- the corpus and the benchmark's feeds ---------------------------------------------------------


@pytest.mark.parametrize("url", [None, URL])
@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_corpus_documents_parse_alike(path: Path, url: str | None) -> None:
    check(path.read_bytes(), url=url)


def test_every_feed_document_is_in_the_differential_test() -> None:
    """Each file of the corpora is a feed document (tested) or a kind left out on purpose."""
    unknown = [str(p.relative_to(ROOT)) for p in DOCUMENTS if p.suffix not in FEED_SUFFIXES]
    assert not unknown, "a new kind of file: add its suffix to FEED_SUFFIXES or NOT_FEEDS"
    hidden = [
        str(path.relative_to(ROOT))
        for path in FILES
        if path.suffix in NOT_FEEDS and FEED_START.match(path.read_bytes())
    ]
    assert not hidden, "feed documents left out of the differential test"
    folders = {path.parent.relative_to(ROOT).as_posix() for path in DOCUMENTS}
    assert folders >= {"seeds/feeds", "tests/data/corpus/feeds", "tests/data/golden"}
    assert folders >= {"tests/data/render"}


@pytest.mark.parametrize("name", ACCEPTED)
def test_plain_corpus_feeds_take_the_fast_path(name: str) -> None:
    body = (ROOT / "tests" / "data" / "corpus" / "feeds" / name).read_bytes()
    assert check(body).fast


@pytest.mark.parametrize("name", DECLINED)
def test_tricky_corpus_feeds_go_to_feedparser(name: str) -> None:
    body = (ROOT / "tests" / "data" / "corpus" / "feeds" / name).read_bytes()
    assert not check(body).fast


def _bench_world() -> Any:
    """bench/feedserver.py's World, loaded by path (``tests/feedserver.py`` is another module)."""
    name = "bench_feedserver"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "feedserver.py")
        assert spec is not None and spec.loader is not None
        module = sys.modules[name] = importlib.util.module_from_spec(spec)  # for dataclasses
        spec.loader.exec_module(module)
    return module.World(feeds=30, entries=20, entry_bytes=1500, seed=1)


BENCH_FEEDS = [i for i in range(30) if i % 3 != 2]  # RSS 2.0 and Atom; JSON Feed is not XML


@pytest.fixture(scope="module")
def bench_world() -> Any:
    return _bench_world()


@pytest.mark.parametrize("url", [None, "https://blog.bench.invalid/feed/1"])
@pytest.mark.parametrize("index", BENCH_FEEDS)
def test_benchmark_feeds_take_the_fast_path(bench_world: Any, index: int, url: str | None) -> None:
    doc = bench_world.doc(index)
    headers = {"Content-Type": "application/rss+xml; charset=utf-8"}
    outcome = check(doc.body, url=url, headers=headers)
    assert outcome.fast, f"feed {index} ({doc.kind}) no longer takes the fast path"
    assert isinstance(outcome.result, ParsedFeed)
    assert len(outcome.result.entries) == 20


# -- hand-written variants ------------------------------------------------------------------------

DC = 'xmlns:dc="http://purl.org/dc/elements/1.1/"'
CONTENT = 'xmlns:content="http://purl.org/rss/1.0/modules/content/"'
ATOM = 'xmlns:atom="http://www.w3.org/2005/Atom"'
MEDIA = 'xmlns:media="http://search.yahoo.com/mrss/"'


def rss(items: str, channel: str = "<title>C</title>", ns: str = "", version: str = "2.0") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="{version}" {DC} {CONTENT} {ATOM}'
        f" {MEDIA} {ns}><channel>{channel}{items}</channel></rss>"
    ).encode()


def atom(entries: str, feed: str = "<title>F</title><id>urn:f</id>", ns: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<feed xmlns="http://www.w3.org/2005/Atom" {MEDIA} {ns}>{feed}{entries}</feed>'
    ).encode()


ITEM = "<item><title>t</title><link>http://e/1</link><description>d</description></item>"
ENTRY = "<entry><id>urn:e</id><title>t</title><updated>2024-01-02T03:04:05Z</updated></entry>"

# name: (document, accepted by the fast path)
VARIANTS: dict[str, tuple[bytes, bool]] = {
    "relative links": (
        rss(
            "<item><title>t</title><link>/p/1?a=1&amp;b=2</link><guid>/g/1</guid>"
            "<comments>c/1</comments><enclosure url='/e/1.mp3' type='Audio/MPEG' length='9'/>"
            "<atom:link rel='enclosure' href='e/2.mp3' length='n/a'/>"
            "<atom:link rel='alternate' href='../alt'/></item>",
            "<title>C</title><link>/home</link><image><url>/logo.png</url><title>x</title>"
            "<link>/</link><width>8</width></image>",
        ),
        True,
    ),
    "guid is the link": (
        rss(
            "<item><guid>http://e/g/1</guid></item><item><guid>1234</guid></item>"
            "<item><guid isPermaLink='false'>http://e/g/3</guid></item>"
            "<item><guid isPermaLink='false'>g/3b</guid></item>"
            "<item><guid isPermaLink='TRUE'>http://e/g/4</guid></item>"
            "<item><guid>http://e/g/5</guid><link>/rel</link></item>"
            "<item><link>/rel</link><guid>http://e/g/6</guid></item>"
            "<item><guid></guid></item>"
        ),
        True,
    ),
    "titles": (
        rss(
            "<item><title>Fish &amp;amp; &lt;b&gt;Chips&lt;/b&gt;</title></item>"
            "<item><title>a &lt; b, c &gt; d</title></item>"
            "<item><title>  many\n  lines  </title></item><item><title/></item>"
            "<item><title type='html'>&lt;i&gt;x&lt;/i&gt;</title></item>"
            "<item><title>Fish <!-- cut --> &amp; <![CDATA[<Chips>]]></title></item>",
            "<title>&lt;em&gt;C&lt;/em&gt; &amp;amp; D</title>",
        ),
        True,
    ),
    "atom titles": (
        atom(
            '<entry><id>1</id><title type="html">Fish &amp;amp; &lt;b&gt;Chips&lt;/b&gt;</title>'
            "</entry><entry><id>2</id><title>&lt;b&gt;plain&lt;/b&gt; &amp;amp;</title></entry>"
            '<entry><id>3</id><title type="text">x</title></entry>',
            '<title type="html">A &amp;amp; B</title><subtitle>s</subtitle>',
        ),
        True,
    ),
    "dates": (
        rss(
            "<item><title>none</title></item>"
            "<item><pubDate>Mon, 22 Mar 2021 04:04:00 +0800</pubDate></item>"
            "<item><pubDate>2020/1/10 14:33:00</pubDate><dc:date>2021-03-22T04:04Z</dc:date></item>"
            "<item><pubDate>not a date</pubDate></item><item><pubDate>2021-02-30</pubDate></item>"
            "<item><pubDate>Tue, 10 Jun 2003 09:41:01 GMT</pubDate></item>"
        ),
        True,
    ),
    "enclosures": (
        rss(
            "<item><title>x</title><enclosure url='http://e/1.mp3' type='audio/mpeg' length='12'/>"
            "<enclosure url='http://e/1.mp3' type='audio/mpeg' length='12'/>"
            "<enclosure url='' type='audio/mpeg'/><enclosure url='http://e/2.mp3' length='n/a'/>"
            "<enclosure type='x/y'/><atom:link rel='enclosure' href=''/></item>"
        ),
        True,
    ),
    "categories": (
        rss(
            "<item><category domain='d'>a</category><category>b</category><category>a</category>"
            "<category domain='d'/><category>c</category><category domain='e'>a</category>"
            "<dc:subject>s</dc:subject><category>  </category></item>",
            "<title>C</title><category>feed-level</category>",
        ),
        True,
    ),
    "atom categories": (
        atom(
            "<entry><id>1</id><category term='a' scheme='s'/><category label='L'/>"
            "<category term='a' scheme='s'/><category term='b'>text</category>"
            "<category>only text</category><category scheme='x'>t2</category>"
            "<category label='L2'>text fills the term</category></entry>"
        ),
        True,
    ),
    "content and description": (
        rss(
            "<item><description>short</description><content:encoded><![CDATA[<p>long</p>]]>"
            "</content:encoded></item>"
            "<item><content:encoded>&lt;p&gt;same&lt;/p&gt;</content:encoded>"
            "<description>&lt;p&gt;same&lt;/p&gt;</description></item>"
            "<item><content:encoded>only</content:encoded></item>"
            "<item><description>plain &amp; simple</description></item>"
            "<item><description/><content:encoded/></item>"
        ),
        True,
    ),
    "atom content and summary": (
        atom(
            "<entry><id>1</id><summary>short &amp; plain</summary>"
            '<content type="html">&lt;p&gt;long&lt;/p&gt;</content></entry>'
            '<entry><id>2</id><content type="text">1 &lt; 2\n\nthree</content></entry>'
            '<entry><id>3</id><content type="html">same</content><summary>same</summary></entry>'
            '<entry><id>4</id><summary type="html">&lt;b&gt;s&lt;/b&gt;</summary></entry>'
            '<entry><id>5</id><content type="TEXT">caps</content></entry>'
        ),
        True,
    ),
    "rss authors": (
        rss(
            "<item><dc:creator>jdoe@example.com (John Doe)</dc:creator></item>"
            "<item><author>John Doe &lt;jdoe@example.com&gt;</author></item>"
            "<item><dc:creator>First</dc:creator><dc:creator>Second</dc:creator></item>"
            "<item><author>jdoe@example.com</author></item><item><author> </author></item>",
            "<title>C</title><managingEditor>ed@example.com (Ed)</managingEditor>",
        ),
        True,
    ),
    "atom authors": (
        atom(
            "<entry><id>1</id></entry>"
            "<entry><id>2</id><author><name>A</name><email>a@e</email></author></entry>"
            "<entry><id>3</id><author><email>only@e</email></author></entry>"
            "<entry><id>4</id><author><uri>/u</uri></author></entry>"
            "<entry><id>5</id><author><name>A</name></author><author><email>b@e</email></author>"
            "</entry><entry><id>6</id><author><name></name></author></entry>"
            "<entry><id>7</id><source><author><name>From source</name></author><title>S</title>"
            "<id>urn:s</id></source></entry>"
            "<entry><id>8</id><contributor><name>C</name></contributor></entry>",
            "<title>F</title><id>urn:f</id><author><name>Feed Author</name></author>",
        ),
        True,
    ),
    "mojibake and C1 controls": (
        rss(
            "<item><title>CafÃ© &#x93;quoted&#x94; &#x80;</title><description>Ã©</description>"
            "<category>CafÃ©</category></item>",
            "<title>Caf\u00e9 \u00c3\u00a9</title>",
        ),
        True,
    ),
    "link entities": (
        rss(
            "<item><link>http://e/?a=1&amp;amp;b=2&amp;c;d</link></item>",
            "<title>C</title><link>http://e/?x=1&amp;y;z</link>",
        ),
        True,
    ),
    "ttl and skip hints": (
        rss(
            ITEM,
            "<title>C</title><ttl>abc</ttl><skipHours><hour>1</hour><hour>25</hour></skipHours>"
            "<skipDays><day>Monday</day></skipDays>",
        ),
        True,
    ),
    "ttl minutes": (rss(ITEM, "<title>C</title><ttl> 30 </ttl>"), True),
    "feed without title": (rss(ITEM, "<description>only a description</description>"), True),
    "atom feed without title": (atom(ENTRY, "<subtitle>sub</subtitle><id>f</id>"), True),
    "atom links and ids": (
        atom(
            "<entry><id>1234</id><link href='/a'/></entry>"
            "<entry><link href='/b' rel='alternate' type='application/atom+xml'/><id>x</id></entry>"
            "<entry><id>tag:e,2024:3</id><link href='/c' type='html'/><link rel='self' href='s'/>"
            "</entry><entry><link href='' /><id>urn:uuid:4</id></entry>"
            "<entry><id>http://e/5</id><link rel='related' href='/r'/></entry>",
            "<title>F</title><id>feed-id</id><link rel='self' href='/self'/>"
            "<icon>/favicon.ico</icon><logo>logo.png</logo>",
        ),
        True,
    ),
    "media thumbnails": (
        rss(
            "<item><media:thumbnail url='http://e/t.jpg'/></item>"
            "<item><media:thumbnail>/t2.jpg</media:thumbnail></item>"
            "<item><media:thumbnail url='http://e/attr.jpg'>/text.jpg</media:thumbnail></item>"
            "<item><media:content url='http://e/i.png' medium='image'/></item>"
            "<item><media:content url='http://e/v.mp4' type='video/mp4'/>"
            "<media:content url='http://e/p.png' type='Image/PNG'/></item>"
        ),
        True,
    ),
    "harmless extensions": (
        rss(
            "<item><title>x</title><slash:comments>3</slash:comments>"
            "<wfw:commentRss>/c.rss</wfw:commentRss><feedburner:origLink>http://o</feedburner:origLink>"
            "<dc:identifier>id</dc:identifier></item>",
            "<title>C</title><sy:updatePeriod>hourly</sy:updatePeriod><dc:language>en</dc:language>"
            "<atom:link rel='self' href='/feed' type='application/rss+xml'/><language>en</language>"
            "<generator>g</generator><lastBuildDate>Mon, 22 Mar 2021 04:04:00 GMT</lastBuildDate>",
            ns='xmlns:slash="http://purl.org/rss/1.0/modules/slash/" '
            'xmlns:wfw="http://wellformedweb.org/commentAPI/" '
            'xmlns:feedburner="http://rssnamespace.org/feedburner/ext/1.0" '
            'xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"',
        ),
        True,
    ),
    "xml:lang, whitespace and text between elements": (
        rss(f"\n  <item xml:lang='fr'>\n  {ITEM[6:-7]} stray text </item>\n", "<title>C</title>\n"),
        True,
    ),
    "rss 0.91": (rss(ITEM, version="0.91"), True),
    "rss 0.92": (rss(ITEM, version="0.92"), True),
    "ascii declared latin-1": (
        b'<?xml version="1.0" encoding="ISO-8859-1"?><rss version="2.0"><channel><title>C</title>'
        + ITEM.encode()
        + b"</channel></rss>",
        True,
    ),
    "no declaration, BOM": (b"\xef\xbb\xbf" + rss(ITEM).split(b"\n", 1)[1], True),
    # Declined: each needs feedparser's own handling.
    "rss 1.0": (
        b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        b'xmlns="http://purl.org/rss/1.0/"><channel rdf:about="x"><title>C</title></channel>'
        b'<item rdf:about="http://e/1"><title>t</title></item></rdf:RDF>',
        False,
    ),
    "rss 1.0 namespace declared in rss 2.0": (
        rss(ITEM, ns='xmlns:r="http://purl.org/rss/1.0/"'),
        False,
    ),
    "atom 0.3": (
        b'<feed version="0.3" xmlns="http://purl.org/atom/ns#"><title>F</title>'
        b"<entry><title>t</title><id>1</id></entry></feed>",
        False,
    ),
    "rss without version": (rss(ITEM).replace(b'version="2.0"', b""), False),
    "doctype": (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x "y">]><rss version="2.0"><channel>'
        b"<title>C &x;</title>" + ITEM.encode() + b"</channel></rss>",
        False,
    ),
    "netscape doctype": (
        b'<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"'
        b' "http://my.netscape.com/publish/formats/rss-0.91.dtd"><rss version="0.91"><channel>'
        b"<title>C</title>" + ITEM.encode() + b"</channel></rss>",
        False,
    ),
    "xml:base": (rss(ITEM.replace("<item>", '<item xml:base="http://other/">')), False),
    "plain base attribute": (rss(ITEM.replace("<link>", '<link base="http://other/">')), False),
    "base on an inert element": (
        rss(ITEM, '<title>C</title><docs base="http://o/">d</docs>'),
        False,
    ),
    "xhtml title": (
        atom(
            '<entry><id>1</id><title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">'
            "<b>x</b></div></title></entry>"
        ),
        False,
    ),
    "content src": (
        atom('<entry><id>1</id><content src="http://e/x" type="text/html"/></entry>'),
        False,
    ),
    "base64 content": (
        atom('<entry><id>1</id><content type="image/png">AAAA</content></entry>'),
        False,
    ),
    "markup in description": (rss("<item><description><p>x</p></description></item>"), False),
    "two descriptions": (
        rss("<item><description>a</description><description>b</description></item>"),
        False,
    ),
    "two titles": (rss("<item><title>first</title><title>second</title></item>"), False),
    "two atom titles": (atom("<entry><id>1</id><title>a</title><title>b</title></entry>"), False),
    "two links": (rss("<item><link>http://e/1</link><link>http://e/2</link></item>"), False),
    "two guids": (rss("<item><guid>http://e/1</guid><guid>http://e/2</guid></item>"), False),
    "two dates": (
        rss("<item><pubDate>2020-01-01</pubDate><pubDate>2021-01-01</pubDate></item>"),
        False,
    ),
    "two summaries": (
        atom("<entry><id>1</id><summary>a</summary><summary>b</summary></entry>"),
        False,
    ),
    "media group": (
        rss("<item><media:group><media:title>m</media:title></media:group></item>"),
        False,
    ),
    "media content with children": (
        rss(
            "<item><media:content url='http://e/v'><media:title>m</media:title></media:content></item>"
        ),
        False,
    ),
    "itunes": (
        rss(
            "<item><itunes:summary>s</itunes:summary></item>",
            ns='xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"',
        ),
        False,
    ),
    "unknown namespace": (rss("<item><x:y>1</x:y></item>", ns='xmlns:x="urn:x"'), False),
    "known prefix bound elsewhere": (
        rss(ITEM, ns='xmlns:slash="http://purl.org/rss/1.0/modules/content/"'),
        False,
    ),
    "lower-case pubdate": (
        rss("<item><pubdate>Mon, 22 Mar 2021 04:04:00 GMT</pubdate></item>"),
        False,
    ),
    "image with a description": (
        rss(ITEM, "<title>C</title><image><url>/i.png</url><description>d</description></image>"),
        False,
    ),
    "atom link without href": (atom("<entry><id>1</id><link>http://e/1</link></entry>"), False),
    "undefined entity": (rss("<item><title>&nbsp;</title></item>"), False),
    "bare ampersand": (rss("<item><title>a & b</title></item>"), False),
    "mismatched tag": (rss("<item><title>a</titel></item>"), False),
    "undeclared prefix": (rss("<item><zz:y>1</zz:y></item>"), False),
    "control character": (rss("<item><title>a &#1; b</title></item>"), False),
    "latin-1": (
        b'<?xml version="1.0" encoding="ISO-8859-1"?><rss version="2.0"><channel>'
        b"<title>Caf\xe9</title>" + ITEM.encode() + b"</channel></rss>",
        False,
    ),
    "utf-16": (rss(ITEM).decode().replace("utf-8", "utf-16").encode("utf-16"), False),
    "invalid utf-8": (rss(ITEM).replace(b"<title>t", b"<title>\xff"), False),
    "utf-8 surrogate": (rss(ITEM).replace(b"<title>t", b"<title>\xed\xa0\x80"), False),
    "xml 1.1": (rss(ITEM).replace(b'version="1.0"', b'version="1.1"'), False),
    "html root": (b"<html><head><title>x</title></head><body/></html>", False),
    "two channels": (rss(ITEM).replace(b"</channel>", b"</channel><channel/>"), False),
}


@pytest.mark.parametrize("url", [None, URL, "https://example.org/feed.xml?"])
@pytest.mark.parametrize("name", VARIANTS)
def test_variants(name: str, url: str | None) -> None:
    body, accepted = VARIANTS[name]
    assert check(body, url=url).fast is accepted


LATIN_1 = rss(ITEM.replace(">t<", ">\u00e9<")).decode().encode("latin-1")


@pytest.mark.parametrize(
    ("content_type", "body", "accepted"),
    [
        ("application/rss+xml; charset=utf-8", rss(ITEM), True),
        ("application/atom+xml", atom(ENTRY), True),
        ("text/xml; charset=UTF-8", rss(ITEM), True),
        ("text/xml", rss(ITEM), True),  # us-ascii, and the document is ASCII
        ("text/xml", rss(ITEM.replace(">t<", ">\u00e9<")), False),  # us-ascii, but it is not
        # UTF-8 labelled ISO-8859-1: rss_atom's repair relabels it, then the fast path reads it.
        ("application/xml; charset=iso-8859-1", rss(ITEM.replace(">t<", ">\u00e9<")), True),
        ("application/xml; charset=iso-8859-1", LATIN_1, False),
        ("text/html; charset=utf-8", rss(ITEM), False),  # not an XML media type: a bozo warning
        ("application/octet-stream", rss(ITEM), False),
    ],
)
def test_http_content_type(content_type: str, body: bytes, accepted: bool) -> None:
    outcome = check(body, headers={"Content-Type": content_type}, url=URL)
    assert outcome.fast is accepted


def test_content_location_header_is_the_base() -> None:
    body = rss("<item><link>p/1</link><guid>g</guid></item>")
    outcome = check(body, headers={"Content-Location": "/feeds/x.xml"}, url=URL)
    assert outcome.fast
    assert isinstance(outcome.result, ParsedFeed)
    assert outcome.result.entries[0].link == "https://example.org/feeds/p/1"


# -- feedparser's internals: one shim, a version pin and a fallback -------------------------------

PRIVATE = "aggregator/parse/_feedparser_private.py"
UNTESTED = "6.1.0"


@pytest.fixture
def refusals(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """The shim's warnings; its once-per-version memory is cleared before and after the test."""
    _feedparser_private._refusal.cache_clear()
    caplog.set_level(logging.WARNING, logger=_feedparser_private.__name__)
    yield caplog
    _feedparser_private._refusal.cache_clear()


def accepted_documents() -> list[bytes]:
    return [(ROOT / "tests" / "data" / "corpus" / "feeds" / name).read_bytes() for name in ACCEPTED]


def parse_all(bodies: list[bytes]) -> tuple[list[ParsedFeed], list[bool]]:
    """Each body through the public entry point, and whether fastxml accepted it."""
    with fastxml_answers() as accepted:
        feeds = [parse_document(body, source_id="s", url=URL) for body in bodies]
    return feeds, accepted


def test_untested_feedparser_release_turns_the_fast_path_off(
    monkeypatch: pytest.MonkeyPatch, refusals: pytest.LogCaptureFixture
) -> None:
    bodies = accepted_documents()
    before, fast_before = parse_all(bodies)
    assert all(fast_before)
    monkeypatch.setattr(feedparser, "__version__", UNTESTED)
    after, fast_after = parse_all(bodies)
    assert not any(fast_after), "fastxml ran with an untested feedparser"
    assert after == before
    assert after == [rss_atom.parse_xml(b, source_id="s", url=URL, fast=False) for b in bodies]
    assert len(refusals.records) == 1, "warn once, not once per document"
    assert refusals.records[0].levelno == logging.WARNING
    assert f"feedparser {UNTESTED} is not a release it was tested with" in refusals.text


@pytest.mark.parametrize("version", sorted(_feedparser_private.TESTED_VERSIONS))
def test_tested_feedparser_releases_keep_the_fast_path(
    version: str, monkeypatch: pytest.MonkeyPatch, refusals: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(feedparser, "__version__", version)
    _, fast = parse_all(accepted_documents()[:2])
    assert all(fast)
    assert not refusals.records


# Run in a fresh interpreter: feedparser loses a private name before aggregator is imported, as a
# release that renamed it would. Prints what fastxml answered, the warnings and the results.
MISSING_NAME_CHILD = """
import json, logging, sys
import feedparser.datetimes
del feedparser.datetimes._parse_date
from aggregator.parse import fastxml, parse_document
records = []
handler = logging.Handler()
handler.emit = records.append
logging.getLogger("aggregator").addHandler(handler)
real, answers = fastxml.feedparse, []
fastxml.feedparse = lambda body, http: answers.append(real(body, http)) or answers[-1]
feeds = [
    repr(parse_document(open(path, "rb").read(), source_id="s", url=sys.argv[1]))
    for path in sys.argv[2:]
]
warnings = [(r.levelname, r.getMessage()) for r in records]
print(json.dumps({"answers": [a is None for a in answers], "warnings": warnings, "feeds": feeds}))
"""


@pytest.mark.slow  # a subprocess
def test_missing_private_name_turns_the_fast_path_off() -> None:
    paths = [ROOT / "tests" / "data" / "corpus" / "feeds" / name for name in ACCEPTED]
    child = subprocess.run(
        [sys.executable, "-c", MISSING_NAME_CHILD, URL, *map(str, paths)],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=120,
    )
    out = json.loads(child.stdout)
    assert out["answers"] == [True] * len(paths), "fastxml ran without feedparser's _parse_date"
    plain = [rss_atom.parse_xml(p.read_bytes(), source_id="s", url=URL, fast=False) for p in paths]
    assert out["feeds"] == [repr(feed) for feed in plain]
    assert len(out["warnings"]) == 1, "warn once, not once per document"
    level, message = out["warnings"][0]
    assert level == "WARNING"
    assert "lacks an internal it uses" in message
    assert "_parse_date" in message


def test_feedparser_pin_admits_exactly_the_tested_releases() -> None:
    """pyproject.toml's bounds are the oldest and newest release the shim accepts."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (spec,) = [
        Requirement(dep).specifier
        for dep in project["dependencies"]
        if Requirement(dep).name == "feedparser"
    ]
    tested = sorted(Version(v) for v in _feedparser_private.TESTED_VERSIONS)
    assert all(spec.contains(v) for v in tested)
    oldest, newest = tested[0], tested[-1]
    before = f"{oldest.major}.{oldest.minor}.{oldest.micro - 1}"
    after = f"{newest.major}.{newest.minor}.{newest.micro + 1}"
    for untested in (before, after, f"{newest}.post1", f"{newest.major}.{newest.minor + 1}.0"):
        assert not spec.contains(untested), f"the pin admits {untested}, which is not tested"
    assert feedparser.__version__ in _feedparser_private.TESTED_VERSIONS


def private_feedparser_uses(source: str) -> list[str]:
    """Where ``source`` reaches into feedparser's internals, as ``line: what`` strings.

    Private: a name starting with ``_`` (``__version__`` aside), a submodule, or a name imported
    from a submodule that the ``feedparser`` package itself does not export.
    """
    tree = ast.parse(source)

    def private(name: str, *, from_submodule: bool = False) -> bool:
        value = getattr(feedparser, name, None)
        internal = name.startswith("_") and name != "__version__"
        return internal or isinstance(value, ModuleType) or (from_submodule and value is None)

    found: list[str] = []
    aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("feedparser."):
                    found.append(f"{node.lineno}: import {alias.name}")
                elif alias.name == "feedparser":
                    aliases.add(alias.asname or alias.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            sub = node.module.startswith("feedparser.")
            if sub or node.module == "feedparser":
                found += [
                    f"{node.lineno}: from {node.module} import {alias.name}"
                    for alias in node.names
                    if private(alias.name, from_submodule=sub)
                ]
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and private(node.attr)
        ):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_only_the_shim_imports_feedparser_internals() -> None:
    modules = sorted((ROOT / "aggregator").rglob("*.py"))
    assert ROOT / PRIVATE in modules
    offenders = {
        str(path.relative_to(ROOT)): uses
        for path in modules
        if path != ROOT / PRIVATE and (uses := private_feedparser_uses(path.read_text()))
    }
    assert not offenders, "feedparser internals outside the shim: " + repr(offenders)


def test_the_scan_sees_the_shims_imports() -> None:
    """The scan is not vacuous: it flags every private name the shim takes from feedparser."""
    uses = " ".join(private_feedparser_uses((ROOT / PRIVATE).read_text()))
    for name in ("_parse_date", "RE_XML_PI_ENCODING", "parse_content_type", "_cp1252"):
        assert f"import {name}" in uses
    for name in ("_FeedParserMixin", "_urljoin", "make_safe_absolute_uri"):
        assert f"import {name}" in uses
    allowed = "import feedparser\nfrom feedparser import parse\nfeedparser.parse(b'')\n"
    assert private_feedparser_uses(allowed + "feedparser.NonXMLContentType\n") == []
    tricky = "import feedparser as fp\nfp.mixin._FeedParserMixin\nfrom feedparser import _x\n"
    assert len(private_feedparser_uses(tricky + "import feedparser.urls\n")) == 3
