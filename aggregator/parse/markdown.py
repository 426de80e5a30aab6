"""Hexo-style Markdown posts: YAML front matter, then an HTML body. Pure: no I/O, no clock.

No Markdown library: exported posts carry HTML bodies (kept untouched; cleaning is process's
job). A body without a single tag is plain text, escaped and split into paragraphs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

import yaml

from aggregator.errors import ParseError
from aggregator.types import ParsedEntry, ParsedFeed

from ._charset import redecode
from ._common import as_datetime, clean, has_html_tags, one_line, text_to_html, unique

FORMAT = "markdown"
# Leading blank lines are tolerated: the huxiu seed starts with one.
FRONT_MATTER_START = re.compile(r"---[ \t]*\r?\n")
_FRONT_MATTER = re.compile(
    r"\A\s*---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*\r?(?:\n|\Z)", re.DOTALL | re.MULTILINE
)
# Front matter keys, in order of preference, for each entry field.
_GUID_KEYS = ("id", "guid")
_LINK_KEYS = ("link", "permalink", "url")
_IMAGE_KEYS = ("thumbnail", "cover")


def parse_markdown(body: bytes, *, source_id: str) -> ParsedFeed:
    """One Markdown post as a feed of one entry, titled after its author."""
    entry, warnings = parse_post(body, source_id=source_id)
    return ParsedFeed(format=FORMAT, title=entry.author, entries=(entry,), warnings=warnings)


def parse_posts(posts: Sequence[tuple[str, bytes]], *, source_id: str) -> ParsedFeed:
    """A directory of posts as one feed; a bad post is skipped with a warning."""
    entries: list[ParsedEntry] = []
    warnings: list[str] = []
    for name, body in sorted(posts, key=itemgetter(0)):
        try:
            entry, notes = parse_post(body, source_id=source_id)
        except ParseError as exc:
            warnings.append(f"post {name}: skipped: {exc.detail}")
            continue
        entries.append(entry)
        warnings.extend(f"post {name}: {note}" for note in notes)
    if not entries:
        reason = f"all {len(posts)} failed: {'; '.join(warnings)}" if posts else "there are none"
        raise ParseError(source_id, f"no readable Markdown posts ({reason})")
    authors = {entry.author for entry in entries}
    # Exported posts carry the source's name as author (the huxiu seed): it titles the feed.
    title = authors.pop() if len(authors) == 1 else None
    return ParsedFeed(format=FORMAT, title=title, entries=tuple(entries), warnings=tuple(warnings))


def parse_post(body: bytes, *, source_id: str) -> tuple[ParsedEntry, tuple[str, ...]]:
    """One post as (entry, warnings); ParseError if it has no readable front matter."""
    warnings: list[str] = []
    text = _decode(body, source_id, warnings)
    match = _FRONT_MATTER.match(text)
    if match is None:
        raise ParseError(source_id, "Markdown post without a closed '---' front matter block")
    meta = _load_front_matter(match.group(1), source_id)
    entry = _entry(meta, text[match.end() :], warnings)
    return entry, tuple(warnings)


def _decode(body: bytes, source_id: str, warnings: list[str]) -> str:
    """The post as text: UTF-8, else what it is encoded in, with a warning."""
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        found = redecode(body)
        if found is None:
            raise ParseError(source_id, f"Markdown post is not UTF-8 ({exc})") from exc
        warnings.append(f"not UTF-8, {found.describe()}")
        return found.text


def _load_front_matter(front: str, source_id: str) -> dict[Any, Any]:
    try:
        meta = yaml.safe_load(front)
    except RecursionError as exc:  # PyYAML's composer recurses once per level of nesting
        raise ParseError(source_id, "malformed YAML front matter (nested too deep)") from exc
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: an impossible date like 2021-02-30
        detail = " ".join(str(exc).split())  # PyYAML's messages span several lines
        raise ParseError(source_id, f"malformed YAML front matter ({detail})") from exc
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise ParseError(source_id, f"front matter is a {type(meta).__name__}, not a mapping")
    return meta


def _entry(meta: dict[Any, Any], body: str, warnings: list[str]) -> ParsedEntry:
    return ParsedEntry(
        guid=_text(meta, _GUID_KEYS, warnings),
        link=_text(meta, _LINK_KEYS, warnings),
        title=one_line(_text(meta, ("title",), warnings)),
        author=_text(meta, ("author",), warnings),
        published_at=_date(meta, "date", warnings),
        updated_at=_date(meta, "updated", warnings),
        content_html=_body_html(body),
        # Hexo's tags come after its categories: both are just labels here.
        categories=unique(_terms(meta, "categories", warnings) + _terms(meta, "tags", warnings)),
        image=_text(meta, _IMAGE_KEYS, warnings),
        comments=_comments(meta, warnings),
    )


def _body_html(body: str) -> str | None:
    body = body.strip()
    if not body:
        return None
    return body if has_html_tags(body) else text_to_html(body)


def _text(meta: dict[Any, Any], keys: tuple[str, ...], warnings: list[str]) -> str | None:
    """The first usable value among ``keys`` as text (numbers are taken as text)."""
    for key in keys:
        value = meta.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value.strip():
            return value.strip()
        if value is not None and not isinstance(value, str):
            warnings.append(f"ignored {key!r}: expected text, got {type(value).__name__}")
    return None


MAX_TERMS = 1000  # categories or tags of one post: more is an alias bomb, not a taxonomy


def _terms(meta: dict[Any, Any], key: str, warnings: list[str]) -> list[str]:
    """A string or a list of strings (Hexo nests lists for category paths: flattened). YAML
    aliases can make a few bytes a list of lists seen billions of times: each list is visited
    once, and at most ``MAX_TERMS`` terms are kept."""
    terms: list[str] = []
    seen: set[int] = set()
    todo = [meta.get(key)]
    while todo and len(terms) < MAX_TERMS:
        value = todo.pop()
        if value is None:
            continue
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            terms.append(str(value))
        elif isinstance(value, list):
            if id(value) not in seen:
                seen.add(id(value))
                todo.extend(reversed(value))
        else:
            warnings.append(f"ignored {key!r}: expected a list or text, got {type(value).__name__}")
    return terms


def _date(meta: dict[Any, Any], key: str, warnings: list[str]) -> datetime | None:
    """RFC 822 ("Mon, 22 Mar 2021 04:04:00 GMT"), ISO 8601 or a YAML timestamp/date."""
    value = meta.get(key)
    if value is None:
        return None
    parsed = as_datetime(value)
    if parsed is None:
        warnings.append(f"ignored {key!r}: not a date: {value!r}")
    return parsed


def _comments(meta: dict[Any, Any], warnings: list[str]) -> str | None:
    value = meta.get("comments")
    # `comments: true/false` is Hexo's switch for the comment box, not a comments URL.
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return clean(value)
    warnings.append(f"ignored 'comments': expected a URL, got {type(value).__name__}")
    return None
