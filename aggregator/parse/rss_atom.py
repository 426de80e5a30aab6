"""RSS 0.9x/1.0/2.0 and Atom 0.3/1.0 documents via feedparser. Pure: no I/O, no clock.

feedparser only ever gets bytes in a ``BytesIO`` (never a URL or a str: it would fetch or open
files). Keys are read as ``x[key] if key in x``: ``FeedParserDict.get('updated')`` silently
falls back to ``published``. Plain UTF-8 RSS 2.0/Atom 1.0 documents skip feedparser: fastxml
builds the same result with lxml. Named ``rss_atom`` so it cannot shadow the ``feedparser`` library.
"""

from __future__ import annotations

import calendar
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser

from aggregator.errors import ParseError
from aggregator.types import Enclosure, ParsedEntry, ParsedFeed

from . import fastxml
from ._common import clean, html_to_text, one_line, text_to_html, unique
from ._xml_bytes import (
    UTF8_XML,
    misdeclared,
    mislabelled_utf8,
    response_headers,
    strip_whitespace_before_declaration,
    too_big_for_feedparser,
    utf16_without_bom,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SLASH_DATE = re.compile(
    r"\s*(\d{4})/(\d{1,2})/(\d{1,2})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*$"
)
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# Bozo reasons about the declared encoding or media type only: the XML itself was well-formed.
_SURVIVABLE = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)
# What mapping one malformed entry can raise; such an entry is skipped with a warning.
_ENTRY_ERRORS = (AttributeError, LookupError, OverflowError, TypeError, ValueError)


@dataclass(frozen=True, slots=True)
class _Context:
    """Document-level facts the entry mapping needs."""

    doc_url: str | None
    feed_author: str | None


def parse_xml(
    body: bytes,
    *,
    source_id: str,
    headers: Mapping[str, str] | None = None,
    url: str | None = None,
    fast: bool = True,
) -> ParsedFeed:
    """Parse an RSS or Atom document; raise ParseError if it is not a readable feed.

    ``fast``: let fastxml read the plain documents it reproduces exactly (``False``: always
    feedparser, the reference the fast path is tested against).
    """
    notes: list[str] = []
    body, http = _readable(body, response_headers(headers, url), notes)
    result = fastxml.feedparse(body, http) if fast else None
    if result is None:
        refused = too_big_for_feedparser(body)
        if refused is not None:
            raise ParseError(source_id, refused)
        result = _feedparse(body, http, source_id)
    problem = _problem(result)
    transcoded = utf16_without_bom(body) if problem else None
    if transcoded is not None:
        result = _feedparse(transcoded, {**http, "content-type": UTF8_XML}, source_id)
        problem = _problem(result)
        notes.append("UTF-16 without BOM or XML declaration: transcoded to UTF-8")
    if problem is not None:
        raise ParseError(source_id, problem)
    return _to_feed(
        result,
        source_id=source_id,
        doc_url=http.get("content-location"),
        notes=notes,
        skips=skip_hints(body),
    )


def _readable(body: bytes, http: dict[str, str], notes: list[str]) -> tuple[bytes, dict[str, str]]:
    """The document's bytes and headers, mended where they lie about the document: whitespace
    before the XML declaration, UTF-8 declared as something else, an encoding it is not in."""
    stripped = strip_whitespace_before_declaration(body)
    if stripped is not None:
        notes.append("whitespace before the XML declaration ignored")
        body = stripped
    declared = mislabelled_utf8(body, http)
    if declared is not None:
        notes.append(f"declared {declared} but the bytes are UTF-8: decoded as UTF-8")
        http = {**http, "content-type": UTF8_XML}
    elif (redecoded := misdeclared(body, http)) is not None:
        body, note = redecoded
        notes.append(note)
        http = {**http, "content-type": UTF8_XML}
    return body, http


def _feedparse(body: bytes, http: Mapping[str, str], source_id: str) -> Any:
    # Raw HTML out: process cleans it (lazy-image attributes such as data-src/_src, which
    # feedparser's sanitiser would drop), sanitises it with nh3 and resolves relative URLs
    # against ParsedEntry.base.
    try:
        return feedparser.parse(
            io.BytesIO(body),
            response_headers=dict(http),
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except (
        UnicodeError,
        ValueError,
    ) as exc:  # e.g. a lone surrogate (&#xD800;) in the loose parser
        raise ParseError(source_id, f"not a readable feed: {_describe(exc)}") from exc


def _describe(exc: object) -> str:
    return f"{type(exc).__name__}: {exc}"


def _problem(result: Any) -> str | None:
    """Why feedparser's ``result`` is not a usable feed, or None if it is one."""
    if result["entries"]:
        return None
    exc = _get(result, "bozo_exception") if result["bozo"] else None
    if exc is not None and not isinstance(exc, _SURVIVABLE):
        return f"not a readable feed: no entries and not well-formed ({_describe(exc)})"
    if not _str(result, "version"):
        return "not a feed: no RSS or Atom root element"
    return None


def _to_feed(
    result: Any,
    *,
    source_id: str,
    doc_url: str | None,
    notes: list[str],
    skips: tuple[tuple[int, ...], tuple[int, ...]] = ((), ()),
) -> ParsedFeed:
    feed = result["feed"]
    skip_hours, skip_days = skips
    version = _str(result, "version") or "unknown"
    warnings = list(notes)
    if result["bozo"] and _get(result, "bozo_exception") is not None:
        warnings.append(f"bozo: {_describe(result['bozo_exception'])}")
    # RFC 4287, 4.2.1: an Atom entry without an author has its atom:source's, else the feed's.
    feed_author = _author(feed) if version.startswith("atom") else None
    context = _Context(doc_url=doc_url, feed_author=feed_author)
    entries = _map_entries(result["entries"], context, warnings)
    if result["entries"] and not entries:
        raise ParseError(source_id, f"every entry failed to parse ({warnings[-1]})")
    return ParsedFeed(
        format=version,
        title=_title(feed),
        link=_link(feed),
        base=_detail_base(feed, ("title_detail", "subtitle_detail")) or doc_url,
        image=_feed_image(feed),
        ttl_s=_ttl_s(feed, warnings),
        skip_hours=skip_hours,
        skip_days=skip_days,
        entries=entries,
        warnings=tuple(warnings),
    )


def _map_entries(raw: list[Any], context: _Context, warnings: list[str]) -> tuple[ParsedEntry, ...]:
    entries: list[ParsedEntry] = []
    for index, entry in enumerate(raw):
        try:
            entries.append(_map_entry(entry, context))
        except _ENTRY_ERRORS as exc:
            warnings.append(f"entry {index} skipped: {_describe(exc)}")
    return tuple(entries)


def _map_entry(entry: Any, context: _Context) -> ParsedEntry:
    content_html, summary_html, base = _content(entry)
    return ParsedEntry(
        guid=clean(_str(entry, "id")),
        link=_link(entry),
        title=_title(entry),
        author=_author(entry) or _author(_get(entry, "source")) or context.feed_author,
        published_at=_date(entry, "published"),
        updated_at=_date(entry, "updated"),
        content_html=content_html,
        summary_html=summary_html,
        categories=unique(_str(tag, "term") or _str(tag, "label") for tag in _list(entry, "tags")),
        enclosures=_enclosures(entry, context.doc_url),
        image=_entry_image(entry),
        base=base or _detail_base(entry, ("title_detail",)),
        comments=clean(_str(entry, "comments")),
    )


# -- boundary readers: FeedParserDict in, typed values out --------------------------------------


def _get(node: Any, key: str) -> Any:
    """``node[key]`` if present (never ``.get``: it falls back from updated to published)."""
    # dict first: feedparser's nodes are dicts, and the ABC check costs several times more.
    if isinstance(node, (dict, Mapping)) and key in node:
        return node[key]
    return None


def _str(node: Any, key: str) -> str | None:
    value = _get(node, key)
    return value if isinstance(value, str) else None


def _list(node: Any, key: str) -> list[Any]:
    value = _get(node, key)
    return value if isinstance(value, list) else []


def _date(node: Any, key: str) -> datetime | None:
    """The ``key`` date ("published"/"updated") as an aware UTC datetime."""
    slashed = _SLASH_DATE.match(_str(node, key) or "")
    if slashed:
        return _slash_date(slashed)
    parsed = _get(node, f"{key}_parsed")  # feedparser's struct_time, already in UTC
    if parsed is None:
        return None
    try:
        return _EPOCH + timedelta(seconds=calendar.timegm(parsed))
    except (OverflowError, TypeError, ValueError):
        return None


def _slash_date(match: re.Match[str]) -> datetime | None:
    """``2020/1/10 14:33:00``, which feedparser's ISO 8601 handler misreads as 2020-11-01.

    No zone is given: taken as UTC, like every other zoneless date.
    """
    year, month, day, hour, minute, second = (int(part or 0) for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None


def _title(node: Any) -> str | None:
    title = _str(node, "title")
    if title is None:
        return None
    if _str(_get(node, "title_detail"), "type") in _HTML_TYPES:
        title = html_to_text(title)
    return one_line(title)


def _link(node: Any) -> str | None:
    link = clean(_str(node, "link"))
    # feedparser copies a guid/id into `link` when there is no link; an Atom id such as
    # "urn:uuid:..." or "tag:..." is an identifier, not a link.
    if link and _get(node, "guidislink") and not link.startswith(("http://", "https://")):
        return None
    return link


def _author(node: Any) -> str | None:
    return clean(_str(_get(node, "author_detail"), "name")) or clean(_str(node, "author"))


def _detail_base(node: Any, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        base = clean(_str(_get(node, key), "base"))
        if base:
            return base
    return None


def _as_html(value: str, content_type: str | None) -> str:
    return value if content_type is None or content_type in _HTML_TYPES else text_to_html(value)


def _content(entry: Any) -> tuple[str | None, str | None, str | None]:
    """(content_html, summary_html, base): the best content, else the summary."""
    best = _best_content([c for c in _list(entry, "content") if clean(_str(c, "value"))])
    summary = _str(entry, "summary")
    summary_detail = _get(entry, "summary_detail")
    summary_type = _str(summary_detail, "type")
    summary_html = _as_html(summary, summary_type) if summary and summary.strip() else None
    summary_base = clean(_str(summary_detail, "base"))
    if best is None:
        return summary_html, None, summary_base
    value = best["value"]
    if summary and summary.strip() == value.strip():
        summary_html = None
    return _as_html(value, _str(best, "type")), summary_html, clean(_str(best, "base"))


def _best_content(contents: list[Any]) -> Any:
    """The longest HTML content, else the longest of any type (the first on a tie)."""
    html = [c for c in contents if _str(c, "type") in _HTML_TYPES]
    pool = html or contents
    return max(pool, key=lambda c: len(c["value"])) if pool else None


def _enclosures(entry: Any, doc_url: str | None) -> tuple[Enclosure, ...]:
    found: dict[str, Enclosure] = {}
    for raw in _list(entry, "enclosures"):
        url = clean(_str(raw, "href") or _str(raw, "url"))
        # An empty href="" is resolved against the document URL: it names no enclosure.
        if url is None or url == doc_url or url in found:
            continue
        length = clean(_str(raw, "length"))
        found[url] = Enclosure(
            url=url,
            type=clean(_str(raw, "type")),
            length=int(length) if length and length.isdigit() else None,
        )
    return tuple(found.values())


def _entry_image(entry: Any) -> str | None:
    """media:thumbnail, else an image media:content, else itunes:image."""
    for thumbnail in _list(entry, "media_thumbnail"):
        url = clean(_str(thumbnail, "url"))
        if url:
            return url
    for media in _list(entry, "media_content"):
        url = clean(_str(media, "url"))
        is_image = _str(media, "medium") == "image" or (_str(media, "type") or "").startswith(
            "image/"
        )
        if url and is_image:
            return url
    return clean(_str(_get(entry, "image"), "href"))


def _feed_image(feed: Any) -> str | None:
    image = _get(feed, "image")
    return (
        clean(_str(image, "href"))
        or clean(_str(image, "url"))
        or clean(_str(feed, "logo"))
        or clean(_str(feed, "icon"))
    )


_SKIP_HOURS = re.compile(rb"<skipHours\b[^>]*>(.*?)</skipHours>", re.S | re.I)
_SKIP_DAYS = re.compile(rb"<skipDays\b[^>]*>(.*?)</skipDays>", re.S | re.I)
_HOUR = re.compile(rb"<hour>\s*(\d{1,2})\s*</hour>", re.I)
_DAY = re.compile(rb"<day>\s*([A-Za-z]+)\s*</day>", re.I)
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def skip_hints(body: bytes) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """RSS ``<skipHours>``/``<skipDays>`` (feedparser keeps only the last value of each)."""
    hours: set[int] = set()
    days: set[int] = set()
    if (block := _SKIP_HOURS.search(body)) is not None:
        hours = {int(h) for h in _HOUR.findall(block.group(1)) if int(h) < 24}
    if (block := _SKIP_DAYS.search(body)) is not None:
        names = {d.decode("ascii").lower() for d in _DAY.findall(block.group(1))}
        days = {i for i, name in enumerate(_WEEKDAYS) if name in names}
    return tuple(sorted(hours)), tuple(sorted(days))


def _ttl_s(feed: Any, warnings: list[str]) -> int | None:
    """RSS ``<ttl>`` (minutes) in seconds."""
    ttl = clean(_str(feed, "ttl"))
    if ttl is None:
        return None
    if not ttl.isdigit():
        warnings.append(f"ignored <ttl> {ttl!r}: not a number of minutes")
        return None
    return int(ttl) * 60
