"""Helpers shared by the renderers: text cleaning, dates, self URLs. Pure: no I/O, no clock."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from lxml import etree  # type: ignore[import-untyped]  # lxml ships no stubs

from aggregator.text import clean_markup as _clean_markup
from aggregator.text import clean_text as _clean_text
from aggregator.types import Channel, Provenance, StoredEntry

GENERATOR = "aggregator"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Characters outside the XML 1.0 Char production (W3C XML 1.0, section 2.2): C0 controls other
# than tab/LF/CR, lone surrogates and U+FFFE/U+FFFF. lxml refuses them; aggregator.text drops
# them with the rest, and the Markdown posts drop at least these.
_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# Process already applies the aggregator.text rule; the feeds apply it again as they write, for
# rows stored before it existed and so that no stored value can make lxml refuse a document.
def clean_text(value: str | None) -> str:
    """Plain text (titles, names, categories, summaries) as the feeds write it (None gives "")."""
    return _clean_text(value) if value else ""


def clean_markup(value: str | None) -> str:
    """HTML, URLs and ids as the feeds write them: no unsafe code point (None gives "")."""
    return _clean_markup(value) if value else ""


def xml_chars(value: str | None) -> str:
    """Return ``value`` without characters that XML 1.0 forbids (``None`` gives "").

    Only for the Markdown posts, which keep every other value exactly (YAML can quote C1
    controls); the feeds use ``clean_text`` and ``clean_markup``.
    """
    if not value:
        return ""
    return _XML_ILLEGAL.sub("", value)


def rfc3339(value: datetime) -> str:
    """Format as RFC 3339 in UTC with a 'Z' suffix, whole seconds (e.g. 2021-03-22T04:04:00Z)."""
    utc = value.astimezone(UTC).replace(microsecond=0, tzinfo=None)
    return utc.isoformat() + "Z"


def rfc822(value: datetime) -> str:
    """Format as RFC 822/1123 in GMT (e.g. Mon, 22 Mar 2021 04:04:00 GMT)."""
    return format_datetime(value.astimezone(UTC).replace(microsecond=0), usegmt=True)


@dataclass(frozen=True, slots=True)
class FeedLinks:
    """Links a feed carries beyond its self link; absolute URLs, ``None`` for none.

    ``hub``: the WebSub hub (W3C WebSub 4, ``rel="hub"``). ``alternate``: the HTML page (else the
    channel's base URL). ``prev_archive``: the newest RFC 5005 archive page. On an archive page
    itself, ``self_href`` is its own URL and ``current`` the current feed document.
    """

    hub: str | None = None
    alternate: str | None = None
    prev_archive: str | None = None
    current: str | None = None
    self_href: str | None = None


NO_LINKS = FeedLinks()


def self_url(channel: Channel, file_name: str) -> str:
    """The public URL of one output file of ``channel``."""
    return channel.base_url + file_name


def primary_source(entry: StoredEntry) -> Provenance | None:
    """The source the entry's content comes from (listed first), if any."""
    return entry.sources[0] if entry.sources else None


def author_name(entry: StoredEntry, channel: Channel) -> str:
    """The entry's author, else its primary source's title, else the channel title."""
    source = primary_source(entry)
    for candidate in (entry.author, source.source_title if source else None, channel.title):
        text = clean_text(candidate).strip()
        if text:
            return text
    return channel.name


def feed_updated(entries: Sequence[StoredEntry]) -> datetime | None:
    """The latest ``updated_at`` of ``entries``, or ``None`` when there are none."""
    return max((entry.updated_at for entry in entries), default=None)


def categories(entry: StoredEntry) -> tuple[str, ...]:
    """The entry's categories, cleaned, without empty ones (order kept)."""
    cleaned = (clean_text(term).strip() for term in entry.categories)
    return tuple(term for term in cleaned if term)


def xml_bytes(root: Any) -> bytes:
    """Serialise an lxml tree as UTF-8 with ``<?xml version='1.0' encoding='utf-8'?>``."""
    document: bytes = etree.tostring(
        root, xml_declaration=True, encoding="utf-8", pretty_print=True
    )
    return document
