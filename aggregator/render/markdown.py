"""Export entries as Hexo Markdown posts in the seed post's exact shape. Pure: no I/O, no clock.

The shape (see seeds/huxiu/*.md) is reproduced byte for byte, odd whitespace included: a blank
first line, ``categories: `` with a trailing space, 4-space list items, ``<div>`` plus 3 spaces,
the content line ending in 2 spaces, and 12 spaces without a newline after ``</div>``.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Sequence
from datetime import UTC

import yaml

from aggregator.render._common import primary_source, rfc822, xml_chars
from aggregator.types import Channel, StoredEntry

# Characters a YAML single-quoted scalar cannot carry as they are: line breaks (folded by YAML
# 1.1, section 4.1.1) and what PyYAML's reader rejects as non-printable (C1 controls, U+FEFF).
_YAML_SPECIAL = re.compile(
    "[^\t\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)
_YAML_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")
# The first <img> src; (?<![\w-]) skips lazy-loading attributes such as _src and data-src.
_IMG_SRC = re.compile(
    r"""<img\b[^>]*?(?<![\w-])src\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE
)
_TAIL = " " * 12  # what the seed has after "</div>\n"


def post_name(entry: StoredEntry) -> str:
    """``<YYYY-MM-DD of published_at>-<first 12 hex of sha1(uid)>.md``: stable and unique."""
    day = entry.published_at.astimezone(UTC).date().isoformat()
    digest = hashlib.sha1(entry.uid.encode("utf-8"), usedforsecurity=False).hexdigest()
    return f"{day}-{digest[:12]}.md"


def render_markdown(channel: Channel, entries: Sequence[StoredEntry]) -> dict[str, bytes]:
    """Render one Hexo post per entry: file name -> bytes."""
    return {post_name(entry): render_post(channel, entry) for entry in entries}


def render_post(channel: Channel, entry: StoredEntry) -> bytes:
    """One post: YAML front matter in the seed's key order, then the content in a ``<div>``."""
    source = primary_source(entry)
    source_title = xml_chars(source.source_title if source else entry.author or channel.title)
    group = [xml_chars(entry.group)] if entry.group else []
    lines = ["", "---", f"title: {quote_single(xml_chars(entry.title))}", "categories: "]
    lines += [f"    - {yaml_scalar(term)}" for term in [*group, source_title]]
    lines += [
        f"author: {yaml_scalar(source_title)}",
        "comments: false",
        f"date: {rfc822(entry.published_at)}",
    ]
    thumbnail = xml_chars(entry.thumbnail) or first_image(entry.content_html)
    if thumbnail:
        lines.append(f"thumbnail: {quote_single(thumbnail)}")
    lines += ["---", "", "<div>   ", xml_chars(entry.content_html) + "  ", "</div>", _TAIL]
    return "\n".join(lines).encode("utf-8")


def first_image(content_html: str) -> str | None:
    """The ``src`` of the first ``<img>`` in ``content_html``, unescaped, if any."""
    match = _IMG_SRC.search(content_html)
    if match is None:
        return None
    src = xml_chars(html.unescape(next(group for group in match.groups() if group is not None)))
    return src.strip() or None


def yaml_scalar(value: str) -> str:
    """``value`` as a plain YAML scalar when that loads back unchanged, else quoted."""
    return value if _is_plain_safe(value) else quote_single(value)


def quote_single(value: str) -> str:
    """``value`` single-quoted (``'`` doubled); double-quoted when single quotes cannot hold it."""
    if _YAML_SPECIAL.search(value):
        return _quote_double(value)
    return "'" + value.replace("'", "''") + "'"


def _quote_double(value: str) -> str:
    escaped = (
        _escape(char) if char in '"\\' or _YAML_SPECIAL.match(char) else char for char in value
    )
    return '"' + "".join(escaped) + '"'


def _escape(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _is_plain_safe(value: str) -> bool:
    if not value or value != value.strip() or _YAML_SPECIAL.search(value):
        return False
    if value[0] in _YAML_INDICATORS or ": " in value or " #" in value or value.endswith(":"):
        return False
    try:  # catches what resolves to another type: true, null, 1e3, 2021-03-22, ...
        return bool(yaml.safe_load(value) == value)
    except yaml.YAMLError:
        return False
