"""lxml fast path for plain RSS 2.0/0.9x and Atom 1.0 in UTF-8. Pure: no I/O, no clock.

``feedparse`` returns the part of ``feedparser.parse()``'s result that rss_atom maps (same
keys, same values) from an lxml tree, without feedparser's per-element Python callbacks. It
declines (None) every document it cannot reproduce exactly, and rss_atom then runs feedparser:
anything not well-formed, a DOCTYPE, an encoding other than UTF-8 (or ASCII), xml:base, RSS 1.0
and Atom 0.3, XHTML or out-of-line content, and any element outside the allowlists below
(iTunes, most of Media RSS, ...). It declines everything when _feedparser_private refuses the
installed feedparser (an untested release, or its internals moved). tests/test_fastxml.py checks
it against feedparser on every feed document of seeds/ and tests/data/.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from . import _fastxml_nodes as n
from ._fastxml_nodes import ATOM, Decline, Handler, Node, Reader
from ._feedparser_private import (
    HANDLERS,
    NAMESPACES,
    XML_PI_ENCODING,
    make_safe_absolute_uri,
    parse_content_type,
    urljoin,
    usable,
)

__all__ = ["feedparse"]

_DC = "{http://purl.org/dc/elements/1.1/}"
_CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
_MEDIA = ("{http://search.yahoo.com/mrss/}", "{http://search.yahoo.com/mrss}")
_RSS_VERSIONS = {"2.0": "rss20", "0.91": "rss091u", "0.92": "rss092"}
_XML_TYPES = frozenset(
    {"application/xml", "application/xml-dtd", "application/xml-external-parsed-entity"}
)
_TEXT_XML_TYPES = frozenset({"text/xml", "text/xml-external-parsed-entity"})
_ASCII_SUPERSETS = frozenset({"ascii", "iso8859-1", "cp1252"})
# Byte-order marks and markers of the encodings feedparser sniffs (UTF-16/32, EBCDIC).
_OTHER_MARKERS = (b"\xfe\xff", b"\xff\xfe", b"\x4c\x6f\xa7\x94", b"\x00", b"<\x00")
_XMLNS = re.compile(rb"xmlns(?::([A-Za-z_][\w.-]*))?\s*=\s*[\"']([^\"']*)[\"']")
# Declaring one of these makes feedparser call the document RSS 1.0 or 0.90.
_VERSION_NAMESPACES = frozenset(
    {"http://purl.org/rss/1.0/", "http://my.netscape.com/rdf/simple/0.9/"}
)
_KNOWN_NAMESPACES = {uri.lower(): prefix for uri, prefix in NAMESPACES.items()}
_KNOWN_PREFIXES = frozenset(_KNOWN_NAMESPACES.values()) - {""}
# Extensions whose leaf elements without a feedparser handler land under keys such as
# `sy_updateperiod` that nothing reads.
_INERT_PREFIXES = frozenset({"dc", "sy", "slash", "wfw", "feedburner"})


def feedparse(body: bytes, http: Mapping[str, str]) -> dict[str, Any] | None:
    """What ``feedparser.parse`` returns for ``body`` (the keys rss_atom reads), or None.

    ``http`` are the response headers exactly as rss_atom hands them to feedparser.
    """
    if not usable() or not _utf8_without_surprises(body, http) or not _namespaces_ok(body):
        return None
    root = _tree(body)
    if root is None:
        return None
    try:
        reader = Reader(base=_base(http), atom=root.tag == ATOM + "feed")
        version = "atom10" if reader.atom else _rss_version(root)
        feed, entries = _atom_feed(root, reader) if reader.atom else _rss_channel(root, reader)
    except Decline:
        return None
    return {"bozo": False, "version": version, "feed": feed, "entries": entries}


# -- what the document must be --------------------------------------------------------------------


def _utf8_without_surprises(body: bytes, http: Mapping[str, str]) -> bool:
    """Whether feedparser decodes ``body`` as UTF-8 with no encoding or media-type complaint.

    ``feedparser.encodings.convert_to_utf8`` (RFC 3023), for UTF-8 and pure ASCII only.
    """
    data = body.removeprefix(codecs.BOM_UTF8)
    if data.startswith(_OTHER_MARKERS):
        return False
    declared = XML_PI_ENCODING.match(data)
    xml_encoding = declared.group(1).decode("utf-8", "replace").lower() if declared else ""
    mime, charset = parse_content_type(http.get("content-type") or "")
    if mime in _XML_TYPES or (mime.startswith("application/") and mime.endswith("+xml")):
        encoding = charset or xml_encoding or "utf-8"
    elif mime in _TEXT_XML_TYPES or (mime.startswith("text/") and mime.endswith("+xml")):
        encoding = charset or "us-ascii"
    else:
        return False  # NonXMLContentType, a bozo warning
    codec = _codec(encoding)
    if data.isascii():
        # Pure ASCII reads the same in every ASCII-based encoding.
        return codec == "utf-8" or codec in _ASCII_SUPERSETS
    return codec == "utf-8" and _decodes(data)


def _codec(label: str) -> str | None:
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def _decodes(data: bytes) -> bool:
    """Valid UTF-8 by Python's codec, the one feedparser decodes with."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _namespaces_ok(body: bytes) -> bool:
    """No RSS 1.0/0.90 namespace, and no known prefix bound to another known namespace.

    feedparser names elements by a fixed prefix per namespace URI but also maps a document's
    prefixes to those names, so ``xmlns:dc="<the content module>"`` would re-route elements.
    A match inside text only makes us decline more often.
    """
    for prefix, raw_uri in _XMLNS.findall(body):
        uri = raw_uri.decode("utf-8", "replace").lower()
        name = prefix.decode("utf-8", "replace")
        if uri in _VERSION_NAMESPACES:
            return False
        known = _KNOWN_NAMESPACES.get(uri)
        if known is not None and name in _KNOWN_PREFIXES and name != known:
            return False
    return True


def _tree(body: bytes) -> Any:
    """The root element of a well-formed XML 1.0 document without DOCTYPE, else None.

    Without a DOCTYPE nothing declares entities: an undefined one is an error.
    """
    parser = etree.XMLParser(
        encoding="utf-8",  # as feedparser decided; a declaration may say ASCII or be overridden
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(body, parser)
    except (etree.LxmlError, ValueError):
        return None
    info = root.getroottree().docinfo
    if info.doctype or info.xml_version not in ("1.0", None):
        return None
    return root


def _base(http: Mapping[str, str]) -> str:
    """feedparser's base URI: Content-Location, as it re-joins it at every start tag."""
    base = _joined_with_itself(http.get("content-location", ""))
    if _joined_with_itself(base) != base:
        raise Decline  # not a fixed point: it would differ from element to element
    return base


def _joined_with_itself(base: str) -> str:
    if not base:
        return str(urljoin(base, base))
    return str(make_safe_absolute_uri(base, base) or base)


# -- the two document shapes ----------------------------------------------------------------------


def _rss_version(root: Any) -> str:
    version = _RSS_VERSIONS.get(root.get("version", ""))
    if root.tag != "rss" or version is None:
        raise Decline
    n.attrs(root, frozenset({"version"}))
    return version


def _rss_channel(root: Any, r: Reader) -> tuple[dict[str, Any], list[Any]]:
    children = list(root)
    if len(children) != 1 or children[0].tag != "channel":
        raise Decline
    return _feed(children[0], r, "item", _RSS_CHANNEL, _RSS_ITEM)


def _atom_feed(root: Any, r: Reader) -> tuple[dict[str, Any], list[Any]]:
    return _feed(root, r, ATOM + "entry", _ATOM_FEED, _ATOM_ENTRY)


def _feed(
    el: Any, r: Reader, entry_tag: str, feed_table: _Table, entry_table: _Table
) -> tuple[dict[str, Any], list[Any]]:
    n.attrs(el, frozenset())
    feed = Node()
    entries: list[Any] = []
    for child in el:
        if child.tag == entry_tag:
            entries.append(_node(child, r, entry_table).data)
        else:
            _dispatch(child, feed, r, feed_table)
    return feed.data, entries


def _node(el: Any, r: Reader, table: _Table) -> Node:
    n.attrs(el, frozenset())
    node = Node()
    for child in el:
        _dispatch(child, node, r, table)
    return node


def _dispatch(el: Any, node: Node, r: Reader, table: _Table) -> None:
    tag = el.tag
    handler = table.get(tag) or _extension(tag)
    if tag in _SINGLE:
        if tag in node.seen:
            raise Decline  # feedparser's rules for repeats differ from element to element
        node.seen.add(tag)
    handler(el, node, r)


def _extension(tag: Any) -> Handler:
    """A leaf of a harmless extension (sy:, slash:, wfw:, feedburner:, dc:), else decline."""
    if not isinstance(tag, str) or not tag.startswith("{"):
        raise Decline
    uri, _, local = tag[1:].partition("}")
    prefix = _KNOWN_NAMESPACES.get(uri.lower())
    name = f"{prefix}_{local.lower()}"
    if prefix not in _INERT_PREFIXES or f"_start_{name}" in HANDLERS or f"_end_{name}" in HANDLERS:
        raise Decline
    return n.inert


def _atom_source(el: Any, node: Node, r: Reader) -> None:
    """atom:source: only its author matters (an entry without one inherits it)."""
    node.data["source"] = _node(el, r, _ATOM_SOURCE).data


# -- allowlists: every element outside them declines ----------------------------------------------

_Table = Mapping[str, Handler]
_MEDIA_HANDLERS: dict[str, Handler] = {
    **{ns + "thumbnail": n.media_thumbnail for ns in _MEDIA},
    **{ns + "content": n.media_content for ns in _MEDIA},
}
_RSS_COMMON: dict[str, Handler] = {
    "title": n.title,
    "category": n.category,
    ATOM + "link": n.atom_link,
    **dict.fromkeys((_DC + "language", _DC + "rights", _DC + "publisher"), n.inert),
}
_RSS_CHANNEL: dict[str, Handler] = {
    **_RSS_COMMON,
    "link": n.channel_link,
    "description": n.subtitle,
    "image": n.image,
    "ttl": n.plain("ttl"),
    "skipHours": n.inert_container(frozenset({"hour"})),
    "skipDays": n.inert_container(frozenset({"day"})),
    # Only an Atom feed's author is read; the channel's dates are not.
    **dict.fromkeys(("author", "managingEditor", "webMaster", _DC + "creator"), n.inert),
    **dict.fromkeys(("lastBuildDate", "pubDate", _DC + "date"), n.inert),
    **dict.fromkeys(("language", "copyright", "generator", "docs", "rating", "cloud"), n.inert),
}
_RSS_ITEM: dict[str, Handler] = {
    **_RSS_COMMON,
    **_MEDIA_HANDLERS,
    "link": n.item_link,
    "description": n.summary,
    _CONTENT + "encoded": n.content,
    "guid": n.guid,
    "pubDate": n.date("published"),
    _DC + "date": n.date("updated"),
    "author": n.rss_author,
    _DC + "creator": n.rss_author,
    _DC + "subject": n.category,
    "enclosure": n.enclosure,
    "comments": n.plain("comments"),
    "source": n.inert,  # <source url="...">title</source>: no author in it
}
_ATOM_COMMON: dict[str, Handler] = {
    ATOM + "title": n.title,
    ATOM + "link": n.atom_link,
    ATOM + "id": n.guid,
    ATOM + "updated": n.date("updated"),
    ATOM + "author": n.atom_author,
    ATOM + "contributor": n.contributor,
    ATOM + "category": n.category,
    ATOM + "rights": n.inert,
}
_ATOM_FEED: dict[str, Handler] = {
    **_ATOM_COMMON,
    ATOM + "subtitle": n.subtitle,
    ATOM + "icon": n.plain("icon"),
    ATOM + "logo": n.plain("logo"),
    ATOM + "generator": n.inert,
    ATOM + "published": n.inert,
}
_ATOM_ENTRY: dict[str, Handler] = {
    **_ATOM_COMMON,
    **_MEDIA_HANDLERS,
    ATOM + "published": n.date("published"),
    ATOM + "summary": n.summary,
    ATOM + "content": n.content,
    ATOM + "source": _atom_source,
}
_ATOM_SOURCE: dict[str, Handler] = {
    **_ATOM_COMMON,
    **{ATOM + name: n.inert for name in ("id", "link", "updated", "category", "subtitle")},
    **{ATOM + name: n.inert for name in ("icon", "logo", "generator")},
}
# Elements whose repeats feedparser treats in ways not reproduced here.
_SINGLE = frozenset(
    {
        *("title", "link", "description", "image", "ttl", "guid", "pubDate", "comments"),
        *("source", _DC + "date", _CONTENT + "encoded"),
        *(ATOM + name for name in ("title", "subtitle", "id", "icon", "logo", "updated")),
        *(ATOM + name for name in ("published", "summary", "content", "source")),
    }
)
