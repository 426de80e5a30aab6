"""Hypothesis strategies for hostile inputs: text, URLs, HTML and feed documents (issue #11).

Each document strategy draws a structure the adapter reads (RSS, Atom, JSON Feed, a Markdown
post) and fills it with hostile values: control and bidi characters, lone surrogates, markup
in text, wrong types, missing or repeated fields, invalid and out-of-range dates, huge and
negative numbers, bounded deep nesting, and bytes in (or declared as) other encodings. Used by
tests/test_properties.py only; nothing here asserts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import yaml
from hypothesis import strategies as st

# -- text -------------------------------------------------------------------------------------

# Code points that have broken feed software before: controls, bidi, BOMs, noncharacters,
# surrogates, combining marks, joiners, regional indicators, wide and right-to-left letters.
NASTY = (
    "\x00\x01\x08\t\n\x0b\x0c\r\x1b\x7f\x80\x85\x9f\xa0\xad"
    "\u0301\u0336\u093e\u093f\u0e34\u0e49\u200b\u200c\u200d\u200e\u200f\u2028\u2029"
    "\u202a\u202e\u2066\u2069\u3000\u3002\ufe0f\ufeff\ufffd\ufffe\uffff\ud800\udfff"
    "\U0001f1eb\U0001f1f7\U0001f3fb\U0001f468\U000e0067\U0001fffe\U0010ffff"
    "中文字漢한글ไทยहिन्दीعربيעבר"
)
nasty_chars = st.sampled_from(NASTY)
plain_text = st.text(max_size=30)
# Mostly ordinary characters, often with nasty ones mixed in.
texts = st.lists(st.one_of(st.characters(), nasty_chars), max_size=30).map("".join)
words = st.text(alphabet=st.sampled_from("ab中文 ไทย,.;:"), min_size=1, max_size=8)

# -- URLs -------------------------------------------------------------------------------------

HOSTILE_URLS = (
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "\x01javascript:alert(1)",
    "&#106;avascript:alert(1)",
    "javascript&colon;alert(1)",
    "vbscript:msgbox(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "data:image/svg+xml,<svg onload=alert(1)>",
    "DATA:text/html,x",
    "file:///etc/passwd",
    "//evil.example/x",
    "\\\\evil.example\\x",
    "/\\evil.example",
    "http://[::1]:8080/a",
    "http://[",
    "http://www./a",
    "http://host:99999/",
    "https://例え.jp/パス?q=値#frag",
    "mailto:someone@example.com?subject=hi",
    "",
    " ",
    "?",
    "#",
    "../../..",
    "./a/./b/../c",
)
schemes = st.sampled_from(
    ["http", "https", "HTTP", "HtTpS", "ftp", "mailto", "javascript", "data", "feed", ""]
)
hosts = st.one_of(
    st.sampled_from(
        [
            "example.com",
            "WWW.Example.COM",
            "www.example.com",
            "www.",
            "www",
            "127.0.0.1",
            "[::1]",
            "[2001:db8::1]",
            "例え.jp",
            "xn--r8jz45g.jp",
            "a..b",
            "-",
            "",
            "user:pw@example.com",
            "@example.com",
        ]
    ),
    st.from_regex(r"\A[a-z0-9-]{1,10}(\.[a-z]{2,4}){0,2}\Z"),
)
ports = st.sampled_from(["", ":80", ":443", ":0", ":8080", ":65535", ":65536", ":-1", ":x", ":"])
TRACKING_KEYS = ("utm_source", "UTM_Medium", "utm_", "fbclid", "gclid", "pk_campaign", "spm")
query_keys = st.one_of(st.sampled_from((*TRACKING_KEYS, "id", "a", "", "utm%5Fsource")), words)
query_values = st.one_of(
    st.sampled_from(["", "1", "a b", "a+b", "%20", "%FF", "%e4%b8%ad", "中", "=", "%", "a&b"]),
    words,
)
path_segments = st.one_of(
    st.sampled_from([".", "..", "", "%2F", "%FF", "a b", "中文", "~user", "index.html"]), words
)


@st.composite
def structured_urls(draw: st.DrawFn) -> str:
    """A URL assembled from drawn parts, about half of them plausible, half broken."""
    scheme = draw(schemes)
    head = f"{scheme}://" if draw(st.booleans()) else (f"{scheme}:" if scheme else "")
    path = "/".join(draw(st.lists(path_segments, max_size=4)))
    url = head + draw(hosts) + draw(ports) + ("/" if draw(st.booleans()) else "") + path
    pairs = draw(st.lists(st.tuples(query_keys, query_values), max_size=5))
    if pairs or draw(st.booleans()):
        joiners = draw(st.lists(st.sampled_from(["=", ""]), min_size=len(pairs)))
        url += "?" + "&".join(
            k + j + (v if j else "") for (k, v), j in zip(pairs, joiners, strict=False)
        )
    if draw(st.booleans()):
        url += "#" + draw(words)
    return url


urls = st.one_of(structured_urls(), st.sampled_from(HOSTILE_URLS), texts)
http_bases = st.sampled_from(
    [
        "https://example.com/",
        "http://example.com/blog/post.html",
        "https://example.com/a/b/c?x=1#f",
        "http://[::1]:8080/feed",
        "https://例え.jp/",
    ]
)

# -- HTML -------------------------------------------------------------------------------------

HTML_TAGS = (
    "a", "img", "p", "div", "span", "b", "table", "td", "pre", "video", "audio", "source",
    "picture", "figure", "blockquote", "q", "time", "abbr", "bdo", "br", "li",
    "script", "style", "iframe", "frame", "object", "embed", "svg", "math", "form", "input",
    "button", "textarea", "noscript", "template", "base", "meta", "link", "xmp", "plaintext",
    "title", "select", "option", "applet", "marquee", "noembed", "image",
)  # fmt: skip
HTML_ATTRS = (
    "href", "src", "srcset", "poster", "cite", "action", "formaction", "background", "xlink:href",
    "data-src", "data-original", "data-lazy-src", "_src", "data-actualsrc", "style", "onclick",
    "onerror", "ONLOAD", "onmouseover", "lang", "dir", "title", "alt", "width", "rel", "target",
    "referrerpolicy", "class", "id", "type", "datetime", "http-equiv", "content", "srcdoc",
)  # fmt: skip
RAW_MARKUP = (
    "<", ">", "&", '"', "'", "&amp;", "&lt;script&gt;", "&#0;", "&#x202E;", "&#xD800;", "&#128;",
    "&nbsp;", "&bogus;", "<!--", "-->", "<!-- c -->", "<![CDATA[x]]>", "<!DOCTYPE html>",
    "<?xml version='1.0'?>", "</", "<script>alert(1)</script>", "<scr<script>ipt>", "<img/src=x",
    "<svg><script>alert(1)</script></svg>", "<a href=javascript:alert(1)>x</a>",
    "<math><mi xlink:href='javascript:1'>", "<style>*{x:y}</style>", "<iframe src=//e>",
    "<img src=x onerror=alert(1)>", "<<script>>", "<p", "<br/>", "</p>", "<table><td>",
)  # fmt: skip
attr_values = st.one_of(urls, texts, st.sampled_from(["alert(1)", "color:red", "x 1x, y 2w"]))


@st.composite
def html_attributes(draw: st.DrawFn) -> str:
    out = ""
    for name in draw(st.lists(st.sampled_from(HTML_ATTRS), max_size=4)):
        value = draw(attr_values)
        quote = draw(st.sampled_from(['"', "'", ""]))
        if quote == '"':
            value = value.replace('"', "&quot;")
        elif quote == "'":
            value = value.replace("'", "&#39;")
        out += f" {name}={quote}{value}{quote}"
    return out


def _element(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    @st.composite
    def build(draw: st.DrawFn) -> str:
        tag = draw(st.sampled_from(HTML_TAGS))
        tag = tag.upper() if draw(st.booleans()) else tag
        inner = "".join(draw(st.lists(children, max_size=3)))
        closing = draw(st.sampled_from([f"</{tag}>", "", f"</{tag} >"]))
        return f"<{tag}{draw(html_attributes())}>{inner}{closing}"

    return build()


html_leaves = st.one_of(
    texts.map(lambda s: escape(s)), texts, st.sampled_from(RAW_MARKUP), st.just("")
)
html_fragments = st.recursive(
    html_leaves,
    lambda children: st.one_of(_element(children), st.lists(children, max_size=3).map("".join)),
    max_leaves=8,
)
html_inputs = st.one_of(html_fragments, texts)

# -- dates and numbers ------------------------------------------------------------------------

EDGE_ZONES = [
    UTC,
    timezone(timedelta(hours=14)),
    timezone(-timedelta(hours=12)),
    timezone(timedelta(hours=23, minutes=59)),
    timezone(-timedelta(hours=23, minutes=59)),
]
moments = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)
) | st.datetimes(
    min_value=datetime(1, 1, 1),
    max_value=datetime(9999, 12, 31, 23, 59, 59),
    timezones=st.sampled_from(EDGE_ZONES),
)
BAD_DATES = (
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2021-02-30T00:00:00Z",
    "2021-13-01", "2021-01-01T25:00:00Z", "Mon, 32 Foo 2021 99:99:99 GMT",
    "Mon, 01 Jan 0001 00:00:00 +2359", "Fri, 31 Dec 9999 23:59:59 -2359", "2020/1/10 14:33:00",
    "2020/13/45 25:61", "0000/00/00", "-1", "0", "99999999999999999999", "1e309", "tomorrow",
    "", " ", "2021-01-01T00:00:00+99:00", "10000-01-01", "２０２１-０１-０１",
)  # fmt: skip
date_strings = st.one_of(
    moments.map(lambda d: d.isoformat()),
    moments.map(lambda d: format_datetime(d, usegmt=False) if d.tzinfo else format_datetime(d)),
    st.sampled_from(BAD_DATES),
    texts,
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**63, -(2**63), 10**30]),
    st.floats(),
)
number_strings = st.one_of(numbers.map(str), st.sampled_from(["", " 5 ", "5m", "0x10", "٣"]))

# -- encodings --------------------------------------------------------------------------------

CODECS = (
    "utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "iso-8859-1", "cp1252",
    "cp1251", "gb2312", "gb18030", "big5", "shift_jis", "euc-kr", "koi8-r", "cp037",
)  # fmt: skip
declared_encodings = st.sampled_from([*CODECS, "bogus-8", "", "UTF8", "x-user-defined"])


def encode(text: str, codec: str) -> bytes:
    """``text`` in ``codec``: lone surrogates pass through the UTF codecs (invalid bytes);
    other codecs write what they cannot encode as character references."""
    errors = "surrogatepass" if codec.startswith("utf") else "xmlcharrefreplace"
    return text.encode(codec, errors=errors)


@st.composite
def encoded(draw: st.DrawFn, text: str) -> bytes:
    """``text`` encoded mostly as UTF-8, sometimes in another codec, with a stray BOM or junk."""
    codec = draw(st.sampled_from(["utf-8"] * 4 + list(CODECS)))
    body = encode(text, codec)
    prefix = draw(st.sampled_from([b"", b"", b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\n\t ", b"\x00"]))
    return prefix + body


@st.composite
def http_headers(draw: st.DrawFn) -> dict[str, str]:
    headers: dict[str, str] = {}
    if draw(st.booleans()):
        media = draw(
            st.sampled_from(
                ["application/rss+xml", "application/atom+xml", "text/xml", "text/html",
                 "application/xml", "text/plain", "application/feed+json", ""]
            )
        )  # fmt: skip
        charset = draw(st.one_of(st.just(""), declared_encodings.map(lambda c: f"; charset={c}")))
        headers["Content-Type"] = media + charset
    if draw(st.booleans()):
        headers["Content-Location"] = draw(urls)
    return headers


# -- XML feeds --------------------------------------------------------------------------------

# What XML 1.0 does not allow in a document (section 2.2, Char), even as a character reference.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_legal(value: str) -> str:
    return _NOT_XML.sub("", value)


@st.composite
def xml_text(draw: st.DrawFn, values: st.SearchStrategy[str], plain: bool) -> str:
    """Element content: escaped text mostly, else CDATA, markup, raw (maybe ill-formed) text.

    ``plain``: only well-formed content (escaped or CDATA, XML characters only)."""
    value = draw(values.map(_xml_legal) if plain else values)
    shapes = ["escaped"] * 6 + ["cdata", "html"] + ([] if plain else ["raw", "entity"])
    how = draw(st.sampled_from(shapes))
    if how == "escaped":
        return escape(value)
    if how == "cdata":
        return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"
    if how == "html":
        return escape(draw(html_fragments.map(_xml_legal) if plain else html_fragments))
    if how == "entity":
        return draw(st.sampled_from(["&nbsp;", "&#xD800;", "&#0;", "&#x10FFFF;", "&bogus;"]))
    return value


@st.composite
def xml_element(
    draw: st.DrawFn,
    tag: str,
    values: st.SearchStrategy[str] = texts,
    attrs: str = "",
    *,
    plain: bool = False,
) -> str:
    """``<tag>value</tag>``: usually once, sometimes absent, repeated, empty or nested.

    ``plain``: never nested (an unknown child element) nor repeated."""
    shape = draw(st.integers(13 if plain else 0, 99))
    if shape < 5:
        return ""
    if shape < 9:
        return f"<{tag}{attrs}/>"
    if shape < 13:  # an element where text belongs: a wrong type
        inner = draw(xml_element("x", values))
        return f"<{tag}{attrs}><{tag}>{inner}</{tag}></{tag}>"
    text = draw(xml_text(values, plain))
    if shape == 13 and not plain:  # nesting within the body cap, past libxml2's 256 and the stack
        depth = draw(st.integers(1, 3000))
        return f"<{tag}{attrs}>{'<x>' * depth}{text}{'</x>' * depth}</{tag}>"
    one = f"<{tag}{attrs}>{text}</{tag}>"
    return one * (2 if shape < 18 and not plain else 1)


def _attr(draw: st.DrawFn, name: str, values: st.SearchStrategy[str]) -> str:
    # quoteattr escapes what it must; characters XML forbids stay (ill-formed, on purpose).
    return f" {name}={quoteattr(draw(values))}" if draw(st.booleans()) else ""


permalink_flags = st.sampled_from(["true", "false", "x"])
day_names = st.sampled_from(["Monday", "sunday", "FRIDAY", "Funday", ""]) | texts
KNOWN_TEXT_TYPES = ["", ' type="text"', ' type="html"', ' type="xhtml"']
TEXT_TYPES = st.sampled_from([*KNOWN_TEXT_TYPES, ' type="x/y"'])
NAMESPACES = (
    ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
    ' xmlns:content="http://purl.org/rss/1.0/modules/content/"'
    ' xmlns:media="http://search.yahoo.com/mrss/"'
    ' xmlns:unknown="urn:x-unknown"'
)

Part = Callable[[st.DrawFn], str]


class _Xml:
    """Element builders for one document: hostile, or ``plain`` (well-formed, no xml:base, no
    unknown elements, Atom 1.0 only: what the lxml fast path may accept)."""

    def __init__(self, plain: bool) -> None:
        self.plain = plain

    def value(self, values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return values.map(_xml_legal) if self.plain else values

    def attr(self, draw: st.DrawFn, name: str, values: st.SearchStrategy[str]) -> str:
        return _attr(draw, name, self.value(values))

    def element(
        self, draw: st.DrawFn, tag: str, values: st.SearchStrategy[str] = texts, attrs: str = ""
    ) -> str:
        return draw(xml_element(tag, values, attrs, plain=self.plain))

    def some(self, draw: st.DrawFn, parts: dict[str, Part], max_size: int = 8) -> str:
        """A few of ``parts`` (each element drawn), in a random order."""
        names = draw(st.lists(st.sampled_from(sorted(parts)), unique=True, max_size=max_size))
        return "".join(parts[name](draw) for name in names)

    def base(self, draw: st.DrawFn) -> str:
        return "" if self.plain else _attr(draw, "xml:base", urls)

    def thumbnail(self, draw: st.DrawFn) -> str:
        return self.element(draw, "media:thumbnail", st.just(""), self.attr(draw, "url", urls))

    def enclosure(self, draw: st.DrawFn) -> str:
        url, length = self.attr(draw, "url", urls), self.attr(draw, "length", number_strings)
        return f"<enclosure{url}{length}{self.attr(draw, 'type', texts)}/>"

    # -- RSS

    def rss_item(self, draw: st.DrawFn) -> str:
        e, a = self.element, self.attr
        parts: dict[str, Part] = {
            "title": lambda d: e(d, "title"),
            "link": lambda d: e(d, "link", urls),
            "guid": lambda d: e(d, "guid", urls, a(d, "isPermaLink", permalink_flags)),
            "description": lambda d: e(d, "description", html_inputs),
            "content": lambda d: e(d, "content:encoded", html_inputs),
            "pubDate": lambda d: e(d, "pubDate", date_strings),
            "dc:date": lambda d: e(d, "dc:date", date_strings),
            "dc:creator": lambda d: e(d, "dc:creator"),
            "author": lambda d: e(d, "author"),
            "category": lambda d: e(d, "category", texts, a(d, "domain", urls)),
            "comments": lambda d: e(d, "comments", urls),
            "thumbnail": self.thumbnail,
            "enclosure": self.enclosure,
            "enclosure2": self.enclosure,
        }
        if not self.plain:
            parts["unknown"] = lambda d: e(d, "unknown:thing")
        return "<item>" + self.some(draw, parts) + "</item>"

    def rss_channel(self, draw: st.DrawFn) -> str:
        hours = "".join(f"<hour>{h}</hour>" for h in draw(st.lists(number_strings, max_size=4)))
        days = draw(st.lists(self.value(day_names), max_size=4))
        return (
            self.element(draw, "title")
            + self.element(draw, "link", urls)
            + self.element(draw, "description", html_inputs)
            + self.element(draw, "ttl", number_strings)
            + (f"<skipHours>{hours}</skipHours>" if draw(st.booleans()) else "")
            + ("<skipDays>" + "".join(f"<day>{escape(d)}</day>" for d in days) + "</skipDays>")
            + (
                f"<image><url>{escape(draw(self.value(urls)))}</url></image>"
                * draw(st.integers(0, 1))
            )
            + "".join(self.rss_item(draw) for _ in range(draw(st.integers(0, 3))))
        )

    def rss(self, draw: st.DrawFn) -> str:
        odd = [] if self.plain else ["", "3.0", "2.0 "]
        version = draw(st.sampled_from(["2.0", "0.91", "0.92", *odd]))
        # Without the namespace declarations, the prefixed elements are not well-formed.
        ns = NAMESPACES if self.plain or draw(st.integers(0, 4)) else ""
        channel = self.rss_channel(draw)
        # Sometimes RSS 1.0: the same channel, its items inside rdf:RDF.
        if not self.plain and draw(st.integers(0, 5)) == 0:
            return (
                '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
                f' xmlns="http://purl.org/rss/1.0/"{ns}><channel/>{channel}</rdf:RDF>'
            )
        return f'<rss version="{version}"{ns}><channel>{channel}</channel></rss>'

    # -- Atom

    def text_construct(self, draw: st.DrawFn, tag: str, values: st.SearchStrategy[str]) -> str:
        kind = draw(st.sampled_from(KNOWN_TEXT_TYPES) if self.plain else TEXT_TYPES)
        base = self.base(draw)
        if "xhtml" in kind and draw(st.booleans()):
            inner = draw(xml_text(values, self.plain))
            xhtml = f'<div xmlns="http://www.w3.org/1999/xhtml">{inner}</div>'
            return f"<{tag}{kind}{base}>{xhtml}</{tag}>"
        return self.element(draw, tag, values, kind + base)

    def atom_link(self, draw: st.DrawFn) -> str:
        rel = self.attr(draw, "rel", st.sampled_from(["alternate", "enclosure", "self", "x"]))
        href = f" href={quoteattr(draw(self.value(urls)))}" if self.plain else ""
        href = href or self.attr(draw, "href", urls)
        return f"<link{rel}{href}{self.attr(draw, 'length', number_strings)}/>"

    def atom_entry(self, draw: st.DrawFn) -> str:
        e, a, t = self.element, self.attr, self.text_construct
        parts: dict[str, Part] = {
            "id": lambda d: e(d, "id", urls),
            "title": lambda d: t(d, "title", texts),
            "link": self.atom_link,
            "link2": self.atom_link,
            "updated": lambda d: e(d, "updated", date_strings),
            "published": lambda d: e(d, "published", date_strings),
            "summary": lambda d: t(d, "summary", html_inputs),
            "content": lambda d: t(d, "content", html_inputs),
            "content-src": lambda d: f"<content{a(d, 'src', urls)}{d(TEXT_TYPES)}/>",
            "author": lambda d: f"<author>{e(d, 'name')}{e(d, 'uri', urls)}</author>",
            "category": lambda d: f"<category{a(d, 'term', texts)}{a(d, 'label', texts)}/>",
            "thumbnail": self.thumbnail,
        }
        return f"<entry{self.base(draw)}>" + self.some(draw, parts) + "</entry>"

    def atom(self, draw: st.DrawFn) -> str:
        atom03 = [] if self.plain else ["http://purl.org/atom/ns#"]
        head = (
            self.text_construct(draw, "title", texts)
            + self.element(draw, "id", urls)
            + self.atom_link(draw)
            + self.element(draw, "updated", date_strings)
            + self.element(draw, "logo", urls)
        )
        entries = "".join(self.atom_entry(draw) for _ in range(draw(st.integers(0, 3))))
        namespace = draw(st.sampled_from(["http://www.w3.org/2005/Atom", *atom03]))
        return f'<feed xmlns="{namespace}"{NAMESPACES}{self.base(draw)}>{head}{entries}</feed>'


@st.composite
def xml_documents(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    """An RSS 0.9x/1.0/2.0 or Atom 0.3/1.0 document as bytes, and response headers."""
    xml = _Xml(plain=False)
    text = xml.rss(draw) if draw(st.booleans()) else xml.atom(draw)
    codec = draw(st.sampled_from(["utf-8"] * 6 + list(CODECS)))
    declared = draw(st.sampled_from([None, codec, codec, codec]) | declared_encodings)
    if declared is not None:
        text = f'<?xml version="1.0" encoding="{declared}"?>\n{text}'
    elif draw(st.booleans()):
        text = f"<?xml version='1.0'?>{text}"
    if draw(st.integers(0, 9)) == 0:
        text = draw(st.sampled_from(["\n  ", "\ufeff", "<!-- x -->", "<!DOCTYPE rss>"])) + text
    return encode(text, codec), draw(http_headers())


@st.composite
def plain_xml_documents(draw: st.DrawFn) -> bytes:
    """Well-formed RSS 2.0/0.9x or Atom 1.0 in UTF-8 without xml:base or unknown elements:
    documents the lxml fast path (parse/fastxml.py) may accept (its allowlists decline more)."""
    xml = _Xml(plain=True)
    text = xml.rss(draw) if draw(st.booleans()) else xml.atom(draw)
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + text).encode("utf-8")


# -- JSON Feed --------------------------------------------------------------------------------

json_scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=8,
)


def field(right: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field's value: usually the right type, sometimes any JSON value."""
    return st.one_of(right, right, right, json_values)


def _object(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object with a random subset of ``fields`` and a few unknown keys."""
    return st.fixed_dictionaries({}, optional={k: field(v) for k, v in fields.items()}).flatmap(
        lambda known: st.dictionaries(texts, json_values, max_size=2).map(
            lambda extra: {**extra, **known}
        )
    )


authors = _object(name=texts, url=urls, avatar=urls)
attachments = _object(
    url=urls, mime_type=texts, title=texts, size_in_bytes=numbers, duration_in_seconds=numbers
)
json_items = _object(
    id=st.one_of(texts, numbers),
    url=urls,
    external_url=urls,
    title=texts,
    content_html=html_inputs,
    content_text=texts,
    summary=texts,
    image=urls,
    banner_image=urls,
    date_published=date_strings,
    date_modified=date_strings,
    author=authors,
    authors=st.lists(authors, max_size=2),
    tags=st.lists(texts, max_size=3),
    attachments=st.lists(attachments, max_size=2),
)
json_feeds = _object(
    version=st.sampled_from(
        ["https://jsonfeed.org/version/1", "https://jsonfeed.org/version/1.1", "1.1", "2", ""]
    ),
    title=texts,
    home_page_url=urls,
    feed_url=urls,
    icon=urls,
    favicon=urls,
    authors=st.lists(authors, max_size=2),
    items=st.lists(json_items, max_size=4),
)


def deeply_nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@st.composite
def json_documents(draw: st.DrawFn) -> bytes:
    """A JSON Feed (or something close to one) as bytes."""
    document = draw(st.one_of(json_feeds, json_feeds, json_values))
    text = json.dumps(
        document,
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.sampled_from([None, 1, "\t"])),
        allow_nan=True,
    )
    if isinstance(document, dict) and draw(st.integers(0, 9)) == 0:
        depth = draw(st.integers(1, 5000))  # nesting within the body cap, past the stack
        text = text[:-1] + (", " if len(document) else "") + f'"x": {deeply_nested(depth)}}}'
    if draw(st.integers(0, 9)) == 0:
        text = text[: draw(st.integers(1, max(1, len(text))))]  # truncated
    if not text.lstrip().startswith("{"):
        text = "{" + text
    return draw(encoded(text))


# -- Markdown posts ---------------------------------------------------------------------------

yaml_scalars = st.one_of(
    st.none(), st.booleans(), numbers, texts, moments, st.dates(), st.sampled_from(BAD_DATES)
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=8,
)
FRONT_MATTER_KEYS = (
    "title", "date", "updated", "author", "id", "guid", "link", "permalink", "url", "thumbnail",
    "cover", "categories", "tags", "comments",
)  # fmt: skip
RAW_YAML = (
    "title: [unclosed", "date: 2021-02-30", "date: 0001-01-01 00:00:00 +05:00",
    "date: 9999-12-31 23:59:59 -05:00", "date: 2021-01-01 00:00:00 +99:00",
    "tags: !!python/object/apply:os.system ['true']", "a: &a [1, 2]\nb: *a", "? [a]\n: b",
    "title: *undefined", "\ttitle: tab", "- a\n- b", "just a string", ": :", "{", "title: '",
    "tags:\n  - [a, [b, [c]]]\n  - {x: y}", "categories: {a: b}", "comments: true",
    "date: 1e400", "id: 0x1F", "id: .inf", "title: !!binary aGk=", "%YAML 1.1",
)  # fmt: skip


@st.composite
def front_matter(draw: st.DrawFn) -> str:
    """YAML front matter: a dumped mapping of known keys, raw hostile YAML, or both."""
    meta = draw(
        st.fixed_dictionaries(
            {}, optional={k: st.one_of(yaml_scalars, yaml_values) for k in FRONT_MATTER_KEYS}
        )
    )
    dumped = yaml.safe_dump(meta, allow_unicode=draw(st.booleans()), default_flow_style=None)
    raw = "\n".join(draw(st.lists(st.sampled_from(RAW_YAML), max_size=2)))
    if draw(st.integers(0, 19)) == 0:  # nesting within the body cap, past the stack
        depth = draw(st.integers(1, 3000))
        raw += "\ntags: " + deeply_nested(depth)
    return draw(st.sampled_from([dumped, raw, dumped + raw, raw + "\n" + dumped]))


@st.composite
def markdown_posts(draw: st.DrawFn) -> bytes:
    """A Hexo-style post: ``---`` front matter ``---`` and an HTML or plain-text body."""
    opening = draw(st.sampled_from(["---\n", "---\r\n", "--- \n", "\n---\n", "---\t\n"]))
    closing = draw(st.sampled_from(["---\n", "...\n", "---", "---\r\n", "", "--\n"]))
    body = draw(st.one_of(html_inputs, texts, st.just("")))
    return draw(encoded(opening + draw(front_matter()) + "\n" + closing + body))


post_names = st.text(alphabet="abc._-/中", min_size=1, max_size=8).map(lambda n: n + ".md")
post_directories = st.lists(st.tuples(post_names, markdown_posts()), max_size=4)

# -- anything ---------------------------------------------------------------------------------


@st.composite
def feed_documents(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    """A document of any supported format (or random bytes), and response headers."""
    kind = draw(st.sampled_from(["xml", "xml", "json", "markdown", "bytes"]))
    if kind == "xml":
        return draw(xml_documents())
    headers = draw(http_headers())
    if kind == "json":
        return draw(json_documents()), headers
    if kind == "markdown":
        return draw(markdown_posts()), headers
    return draw(st.binary(max_size=200)), headers
