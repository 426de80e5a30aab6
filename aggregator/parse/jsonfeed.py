"""JSON Feed 1.0 and 1.1 documents (https://www.jsonfeed.org/version/1.1/). Pure: no I/O, no clock.

Every field is type-checked where it is read: a wrongly typed field is ignored with a warning,
never a crash. Only invalid JSON, or JSON without an ``items`` list, is a ParseError.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aggregator.errors import ParseError
from aggregator.types import Enclosure, ParsedEntry, ParsedFeed

from ._charset import redecode
from ._common import clean, one_line, parse_date, text_to_html, unique

_VERSION = re.compile(r"^(?:https?://(?:www\.)?jsonfeed\.org/version/)?(\d+(?:\.\d+)?)/?$")
_FORMATS = {"1": "json10", "1.0": "json10", "1.1": "json11"}
_DEFAULT_FORMAT = "json11"


def parse_json(body: bytes, *, source_id: str, url: str | None = None) -> ParsedFeed:
    """Parse a JSON Feed; raise ParseError if it is not valid JSON or has no ``items`` list."""
    fields = _Fields()
    document = _load(body, source_id, fields)
    if not isinstance(document, dict) or not isinstance(document.get("items"), list):
        raise ParseError(source_id, "not a JSON Feed: no 'items' list")
    fmt = _format(document, fields)
    title = one_line(fields.text(document, "title", "feed"))
    link = fields.text(document, "home_page_url", "feed")
    base = fields.text(document, "feed_url", "feed") or url
    image = fields.text(document, "icon", "feed") or fields.text(document, "favicon", "feed")
    entries = _entries(document["items"], fields, feed_authors=fields.authors(document, "feed"))
    if document["items"] and not entries:
        raise ParseError(source_id, f"every item failed to parse ({fields.warnings[-1]})")
    return ParsedFeed(
        format=fmt,
        title=title,
        link=link,
        base=base,
        image=image,
        entries=entries,
        warnings=tuple(fields.warnings),
    )


def _load(body: bytes, source_id: str, fields: _Fields) -> Any:
    """The JSON value of ``body``; bytes that are not UTF-8 are decoded as what they are."""
    try:
        try:
            # json.loads on bytes detects UTF-8/16/32 and skips a UTF-8 BOM (RFC 8259, 8.1).
            return json.loads(body)
        except UnicodeDecodeError:
            if (found := redecode(body)) is None:
                raise
            fields.warn(f"feed: not UTF-8 (RFC 8259, 8.1), {found.describe()}")
            return json.loads(found.text)
    except (UnicodeDecodeError, RecursionError, json.JSONDecodeError) as exc:
        raise ParseError(source_id, f"not valid JSON ({exc})") from exc


def _format(document: dict[str, Any], fields: _Fields) -> str:
    """json10 or json11 from the ``version`` URL; a missing or unknown one reads as 1.1."""
    version = document.get("version")
    if version is None:
        fields.warn("feed: no 'version': read as JSON Feed 1.1")
        return _DEFAULT_FORMAT
    match = _VERSION.match(version.strip()) if isinstance(version, str) else None
    fmt = _FORMATS.get(match.group(1)) if match else None
    if fmt is None:
        fields.warn(f"feed: unknown version {version!r}: read as JSON Feed 1.1")
        return _DEFAULT_FORMAT
    return fmt


def _entries(
    items: list[Any], fields: _Fields, *, feed_authors: tuple[str, ...]
) -> tuple[ParsedEntry, ...]:
    entries: list[ParsedEntry] = []
    for index, item in enumerate(items):
        if isinstance(item, dict):
            entries.append(_entry(item, fields, f"item {index}", feed_authors))
        else:
            fields.warn(f"item {index}: skipped: not an object")
    return tuple(entries)


def _entry(
    item: dict[str, Any], fields: _Fields, where: str, feed_authors: tuple[str, ...]
) -> ParsedEntry:
    # JSON Feed 1.1: an item without authors has the feed's authors.
    authors = fields.authors(item, where) or feed_authors
    summary = fields.text(item, "summary", where)
    return ParsedEntry(
        guid=fields.identifier(item, where),
        link=fields.text(item, "url", where) or fields.text(item, "external_url", where),
        title=one_line(fields.text(item, "title", where)),
        author=", ".join(authors) or None,
        published_at=fields.date(item, "date_published", where),
        updated_at=fields.date(item, "date_modified", where),
        content_html=_content_html(item, fields, where),
        summary_html=text_to_html(summary) if summary else None,
        categories=unique(fields.strings(item, "tags", where)),
        enclosures=_attachments(item, fields, where),
        image=fields.text(item, "image", where) or fields.text(item, "banner_image", where),
    )


def _content_html(item: dict[str, Any], fields: _Fields, where: str) -> str | None:
    content_html = fields.text(item, "content_html", where)
    if content_html is not None:
        return content_html
    content_text = fields.text(item, "content_text", where)
    return text_to_html(content_text) if content_text else None


def _attachments(item: dict[str, Any], fields: _Fields, where: str) -> tuple[Enclosure, ...]:
    found: dict[str, Enclosure] = {}
    for index, attachment in enumerate(fields.array(item, "attachments", where)):
        at = f"{where} attachment {index}"
        if not isinstance(attachment, dict):
            fields.warn(f"{at}: skipped: not an object")
            continue
        url = fields.text(attachment, "url", at)
        if url is None:
            fields.warn(f"{at}: skipped: no url")
        elif url not in found:
            found[url] = Enclosure(
                url=url,
                type=fields.text(attachment, "mime_type", at),
                length=fields.size(attachment, "size_in_bytes", at),
            )
    return tuple(found.values())


def _type_name(value: object) -> str:
    return type(value).__name__


@dataclass(slots=True)
class _Fields:
    """Typed field readers that record a warning for each wrongly typed value."""

    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def _wrong(self, where: str, key: str, expected: str, value: object) -> None:
        self.warn(f"{where}: ignored {key!r}: expected {expected}, got {_type_name(value)}")

    def text(self, obj: dict[str, Any], key: str, where: str) -> str | None:
        value = obj.get(key)
        if value is None or isinstance(value, str):
            return clean(value)
        self._wrong(where, key, "a string", value)
        return None

    def array(self, obj: dict[str, Any], key: str, where: str) -> list[Any]:
        value = obj.get(key)
        if value is None or isinstance(value, list):
            return value or []
        self._wrong(where, key, "an array", value)
        return []

    def strings(self, obj: dict[str, Any], key: str, where: str) -> list[str]:
        values = self.array(obj, key, where)
        for value in values:
            if not isinstance(value, str):
                self._wrong(where, key, "strings", value)
        return [value for value in values if isinstance(value, str)]

    def identifier(self, obj: dict[str, Any], where: str) -> str | None:
        value = obj.get("id")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)  # the spec says string; numbers are common and unambiguous
        return self.text(obj, "id", where)

    def size(self, obj: dict[str, Any], key: str, where: str) -> int | None:
        value = obj.get(key)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value if value is None or value >= 0 else None
        self._wrong(where, key, "a whole number", value)
        return None

    def date(self, obj: dict[str, Any], key: str, where: str) -> datetime | None:
        text = self.text(obj, key, where)
        parsed = parse_date(text) if text else None
        if text and parsed is None:
            self.warn(f"{where}: ignored {key!r}: not an RFC 3339 date: {text!r}")
        return parsed

    def authors(self, obj: dict[str, Any], where: str) -> tuple[str, ...]:
        """Names from ``authors`` (1.1), else from ``author`` (1.0)."""
        authors = self.array(obj, "authors", where)
        found = unique(self._author_name(a, where, "authors[]") for a in authors)
        if found or "author" not in obj:
            return found
        return unique([self._author_name(obj["author"], where, "author")])

    def _author_name(self, author: object, where: str, key: str) -> str | None:
        if not isinstance(author, dict):
            self._wrong(where, key, "an object", author)
            return None
        return self.text(author, "name", f"{where} author")
