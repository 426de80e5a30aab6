"""Render a channel as an Atom 1.0 document (RFC 4287). Pure: no I/O, no clock."""

from __future__ import annotations

import re
from collections.abc import Sequence

from lxml import etree  # type: ignore[import-untyped]  # lxml ships no stubs

from aggregator.render._common import (
    EPOCH,
    GENERATOR,
    NO_LINKS,
    FeedLinks,
    author_name,
    categories,
    clean_markup,
    clean_text,
    feed_updated,
    primary_source,
    rfc3339,
    self_url,
    xml_bytes,
)
from aggregator.types import Channel, Enclosure, Provenance, StoredEntry

ATOM_NS = "http://www.w3.org/2005/Atom"
MEDIA_NS = "http://search.yahoo.com/mrss/"
FH_NS = "http://purl.org/syndication/history/1.0"  # RFC 5005 feed history
_NSMAP = {None: ATOM_NS, "media": MEDIA_NS}
_ARCHIVE_NSMAP = {**_NSMAP, "fh": FH_NS}
# atomMediaType in RFC 4287 Appendix B: "whatever a media type is, it contains at least one slash".
_MEDIA_TYPE = re.compile(r".+/.+")


def file_name(channel: Channel) -> str:
    """The Atom output's file name."""
    return f"{channel.name}.atom"


def render_atom(
    channel: Channel, entries: Sequence[StoredEntry], *, links: FeedLinks = NO_LINKS
) -> bytes:
    """Render ``entries`` (already sorted and limited) as an Atom feed.

    With ``links.current`` set, the document is an RFC 5005 archive page of that feed: it keeps
    the feed's id, links to the current document and carries ``fh:archive``.
    """
    archive = links.current is not None
    feed = etree.Element(_atom("feed"), nsmap=_ARCHIVE_NSMAP if archive else _NSMAP)
    url = self_url(channel, file_name(channel))
    _text(feed, "id", url)
    _text(feed, "title", clean_text(channel.title), type="text")
    if channel.subtitle:
        _text(feed, "subtitle", clean_text(channel.subtitle), type="text")
    # Never the clock: an empty feed gets the epoch so the bytes stay deterministic.
    _text(feed, "updated", rfc3339(feed_updated(entries) or EPOCH))
    _link(feed, links.self_href or url, rel="self", type="application/atom+xml")
    _link(feed, links.alternate or channel.base_url, rel="alternate")
    _feed_links(feed, links)
    _text(feed, "generator", GENERATOR)
    if archive:
        etree.SubElement(feed, f"{{{FH_NS}}}archive")
    for entry in entries:
        feed.append(_entry(channel, entry))
    return xml_bytes(feed)


def _feed_links(feed: etree._Element, links: FeedLinks) -> None:
    """WebSub's hub (W3C WebSub 4) and RFC 5005's current and prev-archive links."""
    if links.hub:
        _link(feed, links.hub, rel="hub")
    if links.current:
        _link(feed, links.current, rel="current", type="application/atom+xml")
    if links.prev_archive:
        _link(feed, links.prev_archive, rel="prev-archive", type="application/atom+xml")


def _entry(channel: Channel, entry: StoredEntry) -> etree._Element:
    element = etree.Element(_atom("entry"))
    _text(element, "id", entry.uid)
    _text(element, "title", clean_text(entry.title), type="text")
    if entry.link:
        _link(element, entry.link, rel="alternate")
    _text(element, "published", rfc3339(entry.published_at))
    _text(element, "updated", rfc3339(entry.updated_at))
    author = etree.SubElement(element, _atom("author"))
    _text(author, "name", author_name(entry, channel))
    for term in categories(entry):
        etree.SubElement(element, _atom("category"), term=term)
    if entry.summary.strip():
        _text(element, "summary", clean_text(entry.summary), type="text")
    _text(element, "content", entry.content_html, type="html")
    for enclosure in entry.enclosures:
        _enclosure(element, enclosure)
    if entry.thumbnail:
        etree.SubElement(element, f"{{{MEDIA_NS}}}thumbnail", url=clean_markup(entry.thumbnail))
    source = primary_source(entry)
    if source is not None:
        element.append(_source(source))
    return element


def _enclosure(parent: etree._Element, enclosure: Enclosure) -> None:
    if not enclosure.url:
        return
    attrs: dict[str, str] = {}
    if enclosure.type and _MEDIA_TYPE.fullmatch(enclosure.type):
        attrs["type"] = enclosure.type
    if enclosure.length is not None:
        attrs["length"] = str(enclosure.length)
    _link(parent, enclosure.url, rel="enclosure", **attrs)


def _source(source: Provenance) -> etree._Element:
    """atom:source (RFC 4287 section 4.2.11): the feed the merged entry's content came from."""
    element = etree.Element(_atom("source"))
    _text(element, "id", source.source_url)
    _text(element, "title", clean_text(source.source_title), type="text")
    _link(element, source.source_url, rel="self")
    if source.feed_link:
        _link(element, source.feed_link, rel="alternate")
    return element


def _atom(tag: str) -> str:
    return f"{{{ATOM_NS}}}{tag}"


def _text(parent: etree._Element, tag: str, value: str | None, **attrs: str) -> None:
    """An element holding ``value``; plain-text values come through ``clean_text`` first."""
    element = etree.SubElement(parent, _atom(tag), **attrs)
    element.text = clean_markup(value)


def _link(parent: etree._Element, href: str, **attrs: str) -> None:
    link = etree.SubElement(parent, _atom("link"), href=clean_markup(href))
    for key, value in attrs.items():
        link.set(key, clean_markup(value))
