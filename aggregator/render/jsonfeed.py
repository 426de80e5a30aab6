"""Render a channel as a JSON Feed 1.1 document (https://jsonfeed.org/version/1.1). Pure."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aggregator.render._common import (
    NO_LINKS,
    FeedLinks,
    author_name,
    categories,
    clean_markup,
    clean_text,
    rfc3339,
    self_url,
)
from aggregator.types import Channel, Enclosure, Provenance, StoredEntry

VERSION = "https://jsonfeed.org/version/1.1"
DEFAULT_MIME_TYPE = "application/octet-stream"


def file_name(channel: Channel) -> str:
    """The JSON Feed output's file name."""
    return f"{channel.name}.json"


def render_jsonfeed(
    channel: Channel, entries: Sequence[StoredEntry], *, links: FeedLinks = NO_LINKS
) -> bytes:
    """Render ``entries`` (already sorted and limited) as JSON Feed 1.1, keys in a fixed order."""
    feed: dict[str, Any] = {
        "version": VERSION,
        "title": clean_text(channel.title),
        "home_page_url": clean_markup(links.alternate or channel.base_url),
        "feed_url": clean_markup(self_url(channel, file_name(channel))),
    }
    if channel.subtitle:
        feed["description"] = clean_text(channel.subtitle)
    if links.hub:  # JSON Feed 1.1 "hubs": endpoints to subscribe to for real-time updates
        feed["hubs"] = [{"type": "WebSub", "url": clean_markup(links.hub)}]
    feed["items"] = [_item(channel, entry) for entry in entries]
    return (json.dumps(feed, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _item(channel: Channel, entry: StoredEntry) -> dict[str, Any]:
    item: dict[str, Any] = {"id": clean_markup(entry.uid)}
    if entry.link:
        item["url"] = clean_markup(entry.link)
    item["title"] = clean_text(entry.title)
    item["content_html"] = clean_markup(entry.content_html)
    if entry.summary.strip():
        item["summary"] = clean_text(entry.summary)
    if entry.thumbnail:
        item["image"] = clean_markup(entry.thumbnail)
    item["date_published"] = rfc3339(entry.published_at)
    item["date_modified"] = rfc3339(entry.updated_at)
    item["authors"] = [{"name": author_name(entry, channel)}]
    tags = categories(entry)
    if tags:
        item["tags"] = list(tags)
    attachments = [_attachment(enclosure) for enclosure in entry.enclosures if enclosure.url]
    if attachments:
        item["attachments"] = attachments
    # Extension keys start with "_" (JSON Feed 1.1, "Extensions"): every source that carried it.
    item["_aggregator"] = {"sources": [_source(source) for source in entry.sources]}
    return item


def _attachment(enclosure: Enclosure) -> dict[str, Any]:
    attachment: dict[str, Any] = {
        "url": clean_markup(enclosure.url),
        "mime_type": clean_markup(enclosure.type) or DEFAULT_MIME_TYPE,
    }
    if enclosure.length is not None:
        attachment["size_in_bytes"] = enclosure.length
    return attachment


def _source(source: Provenance) -> dict[str, str | None]:
    return {
        "id": clean_markup(source.source_id),
        "title": clean_text(source.source_title),
        "url": clean_markup(source.source_url),
        "link": clean_markup(source.link) or None,
    }
