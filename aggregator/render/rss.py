"""Render a channel as an RSS 2.0 document. Pure: no I/O, no clock."""

from __future__ import annotations

import html
from collections.abc import Sequence

from lxml import etree  # type: ignore[import-untyped]  # lxml ships no stubs

from aggregator.render._common import (
    GENERATOR,
    NO_LINKS,
    FeedLinks,
    author_name,
    categories,
    clean_markup,
    clean_text,
    feed_updated,
    primary_source,
    rfc822,
    self_url,
    xml_bytes,
)
from aggregator.types import Channel, Enclosure, StoredEntry

ATOM_NS = "http://www.w3.org/2005/Atom"
DC_NS = "http://purl.org/dc/elements/1.1/"
MEDIA_NS = "http://search.yahoo.com/mrss/"
_NSMAP = {"atom": ATOM_NS, "dc": DC_NS, "media": MEDIA_NS}
DOCS = "https://www.rssboard.org/rss-specification"


def file_name(channel: Channel) -> str:
    """The RSS output's file name."""
    return f"{channel.name}.rss"


def render_rss(
    channel: Channel, entries: Sequence[StoredEntry], *, links: FeedLinks = NO_LINKS
) -> bytes:
    """Render ``entries`` (already sorted and limited) as an RSS 2.0 feed."""
    rss = etree.Element("rss", nsmap=_NSMAP, version="2.0")
    head = etree.SubElement(rss, "channel")
    _text(head, "title", clean_text(channel.title))
    _text(head, "link", links.alternate or channel.base_url)
    _text(head, "description", clean_text(channel.subtitle or channel.title))
    etree.SubElement(
        head,
        f"{{{ATOM_NS}}}link",
        href=clean_markup(self_url(channel, file_name(channel))),
        rel="self",
        type="application/rss+xml",
    )
    if links.hub:  # WebSub 4: RSS carries the hub as an atom:link
        etree.SubElement(head, f"{{{ATOM_NS}}}link", href=clean_markup(links.hub), rel="hub")
    updated = feed_updated(entries)
    if updated is not None:
        _text(head, "lastBuildDate", rfc822(updated))
    _text(head, "generator", GENERATOR)
    _text(head, "docs", DOCS)
    for entry in entries:
        head.append(_item(channel, entry))
    return xml_bytes(rss)


def _item(channel: Channel, entry: StoredEntry) -> etree._Element:
    item = etree.Element("item")
    _text(item, "title", clean_text(entry.title))
    if entry.link:
        _text(item, "link", entry.link)
    _text(item, "guid", entry.uid).set("isPermaLink", "false")
    _text(item, "pubDate", rfc822(entry.published_at))
    # RSS <author> must be an email address; dc:creator takes a name.
    _text(item, f"{{{DC_NS}}}creator", author_name(entry, channel))
    for term in categories(entry):
        _text(item, "category", term)
    _text(
        item,
        "description",
        entry.content_html or html.escape(clean_text(entry.summary), quote=False),
    )
    if entry.enclosures and entry.enclosures[0].url:
        _enclosure(item, entry.enclosures[0])
    if entry.thumbnail:
        etree.SubElement(item, f"{{{MEDIA_NS}}}thumbnail", url=clean_markup(entry.thumbnail))
    source = primary_source(entry)
    if source is not None:
        _text(item, "source", clean_text(source.source_title)).set(
            "url", clean_markup(source.source_url)
        )
    return item


def _enclosure(parent: etree._Element, enclosure: Enclosure) -> None:
    """RSS allows one enclosure per item; url, length and type are all required."""
    etree.SubElement(
        parent,
        "enclosure",
        url=clean_markup(enclosure.url),
        length=str(enclosure.length or 0),
        type=clean_markup(enclosure.type) or "application/octet-stream",
    )


def _text(parent: etree._Element, tag: str, value: str | None) -> etree._Element:
    """An element holding ``value``; plain-text values come through ``clean_text`` first."""
    element = etree.SubElement(parent, tag)
    element.text = clean_markup(value)
    return element
