"""RFC 5005 archived feeds: page names, links and documents. Pure: no I/O, no clock.

Pages hold ``page_size`` entries each in the order they were first stored (page 1 the oldest),
so a full page never changes: a new entry always lands after the last one. Only full pages are
published, and once written a page is never rewritten (``publish`` checks), so clients may cache
them for good. The current document (``<name>.atom``) stays the newest ``limit`` entries by date
and links to the newest full page with ``prev-archive``; each page links to the one before.
"""

from __future__ import annotations

from collections.abc import Sequence

from aggregator.render._common import FeedLinks, self_url
from aggregator.render.atom import file_name, render_atom
from aggregator.types import Channel, StoredEntry

ARCHIVE_DIR = "archive"


def archive_path(channel: Channel, page: int) -> str:
    """Where archive page ``page`` (from 1, the oldest) of ``channel`` goes, relative to the
    output directory."""
    return f"{ARCHIVE_DIR}/{channel.name}/{page}.atom"


def full_pages(total: int, page_size: int) -> int:
    """How many full pages ``total`` entries fill (none when archives are off)."""
    return total // page_size if page_size > 0 else 0


def current_links(channel: Channel, pages: int, *, base: FeedLinks) -> FeedLinks:
    """``base`` plus the current document's ``prev-archive`` link to the newest full page."""
    prev = self_url(channel, archive_path(channel, pages)) if pages else None
    return FeedLinks(hub=base.hub, alternate=base.alternate, prev_archive=prev)


def page_links(channel: Channel, page: int, *, alternate: str | None = None) -> FeedLinks:
    """An archive page's own links: itself, the current document, the page before it.

    No hub and no ``next-archive``: either would change a page that must stay as it is."""
    return FeedLinks(
        alternate=alternate,
        self_href=self_url(channel, archive_path(channel, page)),
        current=self_url(channel, file_name(channel)),
        prev_archive=self_url(channel, archive_path(channel, page - 1)) if page > 1 else None,
    )


def render_archive_page(
    channel: Channel, entries: Sequence[StoredEntry], page: int, *, alternate: str | None = None
) -> bytes:
    """Archive page ``page`` from its ``entries`` as stored (oldest first); newest first inside."""
    newest_first = tuple(reversed(entries))
    return render_atom(channel, newest_first, links=page_links(channel, page, alternate=alternate))
