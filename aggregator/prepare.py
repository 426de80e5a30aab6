"""Parse and normalise one fetched document: pure, picklable, light to import.

It runs in the parse worker processes, so it imports only the parse and process stages.
"""

from __future__ import annotations

from dataclasses import dataclass

from .parse import parse_document, parse_posts
from .process import html_to_text, normalise_entries
from .types import Entry, FeedHints, Fetched, ParsedFeed


@dataclass(frozen=True, slots=True)
class Prepared:
    """A document parsed and normalised: everything storing needs, nothing of the store."""

    title: str | None
    link: str | None
    hints: FeedHints
    entries: tuple[Entry, ...]
    warnings: tuple[str, ...]


def _parse(fetched: Fetched) -> ParsedFeed:
    if fetched.parts:
        return parse_posts(fetched.parts, source_id=fetched.source_id)
    return parse_document(
        fetched.body or b"", source_id=fetched.source_id, headers=fetched.headers, url=fetched.url
    )


def prepare(fetched: Fetched) -> Prepared:
    """Parse and normalise one fetched document. Pure (no I/O, no clock): runs in workers."""
    feed = _parse(fetched)
    entries, warnings = normalise_entries(feed, source_id=fetched.source_id, feed_url=fetched.url)
    return Prepared(
        title=html_to_text(feed.title) or None,  # some feeds put entities in plain-text titles
        link=feed.link,
        hints=FeedHints(feed.ttl_s, feed.skip_hours, feed.skip_days),
        entries=entries,
        warnings=feed.warnings + warnings,
    )
