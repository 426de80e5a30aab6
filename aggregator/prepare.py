"""Parse and normalise one fetched document: pure, picklable, light to import.

It runs in the parse worker processes, so it imports only the parse and process stages.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .parse import parse_document, parse_posts
from .process import html_to_text, normalise_entries
from .process.links import absolutise
from .types import Entry, FeedHints, Fetched, ParsedEntry, ParsedFeed


@dataclass(frozen=True, slots=True)
class Prepared:
    """A document parsed and normalised: everything storing needs, nothing of the store."""

    title: str | None
    link: str | None
    hints: FeedHints
    entries: tuple[Entry, ...]
    warnings: tuple[str, ...]
    # Over the per-feed cap (issue #14): the first ``MAX_LISTED_DROPS`` of the entries dropped,
    # normalised so that ``explain`` can name them, and how many were dropped in all.
    dropped: tuple[Entry, ...] = ()
    over_cap: int = 0


def _parse(fetched: Fetched) -> ParsedFeed:
    if fetched.parts:
        return parse_posts(fetched.parts, source_id=fetched.source_id)
    return parse_document(
        fetched.body or b"", source_id=fetched.source_id, headers=fetched.headers, url=fetched.url
    )


MAX_ENTRIES = 1000  # per document: a feed of a million tiny entries is an attack, not news
MAX_LISTED_DROPS = 100  # entries over the cap that are named (for ``explain``); the rest counted


def newest(feed: ParsedFeed, limit: int) -> ParsedFeed:
    """``feed`` with at most ``limit`` entries: the newest by date (undated ones after the dated,
    in document order, which feeds keep newest first), in document order."""
    return split_newest(feed, limit)[0]


def split_newest(feed: ParsedFeed, limit: int) -> tuple[ParsedFeed, tuple[ParsedEntry, ...]]:
    """``newest(feed, limit)``, and the entries it dropped (in document order)."""
    entries = feed.entries
    if len(entries) <= limit:
        return feed, ()

    def age(i: int) -> tuple[int, float, int]:
        when = entries[i].published_at or entries[i].updated_at
        return (0, -when.timestamp(), i) if when else (1, 0.0, i)

    ranked = sorted(range(len(entries)), key=age)
    kept = sorted(ranked[:limit])
    dropped = tuple(entries[i] for i in sorted(ranked[limit:]))
    warning = f"{len(entries) - limit} of {len(entries)} entries over the cap of {limit} dropped"
    return replace(feed, entries=tuple(entries[i] for i in kept),
                   warnings=(*feed.warnings, warning)), dropped  # fmt: skip


def _web_link(feed: ParsedFeed, url: str) -> ParsedFeed:
    """The feed's own link, absolute, if it is an http(s) one: it reaches every output (Atom's
    ``atom:source``) and is the base of relative URLs; a ``javascript:`` link is dropped."""
    link = absolutise(feed.link, url) if feed.link else None
    if link and not link.startswith(("http://", "https://")):
        link = None
    return feed if link == feed.link else replace(feed, link=link)


def prepare(fetched: Fetched, max_entries: int = MAX_ENTRIES) -> Prepared:
    """Parse and normalise one fetched document (its ``max_entries`` newest entries). Pure (no
    I/O, no clock): runs in workers."""
    feed, over = split_newest(_web_link(_parse(fetched), fetched.url), max_entries)
    entries, warnings = normalise_entries(feed, source_id=fetched.source_id, feed_url=fetched.url)
    dropped: tuple[Entry, ...] = ()
    if over:
        named = replace(feed, entries=over[:MAX_LISTED_DROPS])
        dropped, _ = normalise_entries(named, source_id=fetched.source_id, feed_url=fetched.url)
    return Prepared(
        title=html_to_text(feed.title) or None,  # some feeds put entities in plain-text titles
        link=feed.link,
        hints=FeedHints(feed.ttl_s, feed.skip_hours, feed.skip_days),
        entries=entries,
        warnings=feed.warnings + warnings,
        dropped=dropped,
        over_cap=len(over),
    )
