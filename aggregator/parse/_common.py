"""Small text, HTML and date helpers shared by the parse adapters. Pure: no I/O, no clock."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser

# An opening or closing tag, a comment or a doctype: enough to call a text "HTML".
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9:-]*(?:\s[^<>]*)?/?>|<!--|<!DOCTYPE", re.IGNORECASE)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_ISO_DATE = re.compile(r"\d{4}-\d{2}")


class _TextExtractor(HTMLParser):
    """Collects the character data of an HTML fragment (entities decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def clean(value: str | None) -> str | None:
    """``value`` stripped of surrounding whitespace; empty gives ``None``."""
    if value is None:
        return None
    value = value.strip()
    return value or None


def one_line(value: str | None) -> str | None:
    """``value`` with runs of whitespace collapsed to one space (titles); empty gives ``None``."""
    if value is None:
        return None
    return " ".join(value.split()) or None


def has_html_tags(text: str) -> bool:
    """Whether ``text`` contains at least one HTML tag (so it is markup, not plain text)."""
    return _TAG.search(text) is not None


def html_to_text(markup: str) -> str:
    """The plain text of an HTML fragment: tags dropped, entities decoded."""
    extractor = _TextExtractor()
    extractor.feed(markup)
    extractor.close()
    return "".join(extractor.parts)


def text_to_html(text: str) -> str:
    """Plain text as HTML: escaped, blank-line-separated paragraphs wrapped in ``<p>``."""
    paragraphs = _PARAGRAPH_BREAK.split(text.strip())
    return "\n".join(f"<p>{html.escape(p.strip(), quote=False)}</p>" for p in paragraphs if p)


def unique(values: Iterable[str | None]) -> tuple[str, ...]:
    """Non-empty stripped values, duplicates dropped, first occurrence order kept."""
    seen: dict[str, None] = {}
    for value in values:
        text = clean(value)
        if text is not None:
            seen.setdefault(text, None)
    return tuple(seen)


def parse_date(value: str) -> datetime | None:
    """An ISO 8601 / RFC 3339 or RFC 822 date string as a datetime (naive means UTC), else None
    (also for one whose UTC instant falls outside years 1-9999)."""
    return _representable(_parse_date(value))


def _representable(when: datetime | None) -> datetime | None:
    """``when`` if its UTC instant is a datetime too (``0001-01-01T00:30+01:00`` is not)."""
    if when is None or when.tzinfo is None:
        return when
    try:
        when.astimezone(UTC)
    except OverflowError:
        return None
    return when


def _parse_date(value: str) -> datetime | None:
    text = value.strip()
    if _ISO_DATE.match(text):
        # RFC 3339 allows a lower-case "t"/"z" and a space separator (section 5.6);
        # fromisoformat wants upper case.
        try:
            return datetime.fromisoformat(text.upper())
        except ValueError:
            return None
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


def as_datetime(value: object) -> datetime | None:
    """A YAML/JSON date value (datetime, date or string) as a datetime, else None."""
    if isinstance(value, datetime):
        return _representable(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        return parse_date(value)
    return None
