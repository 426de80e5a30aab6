"""Parse stage: bytes of a feed document (or Markdown posts) into a ParsedFeed.

Pure: no I/O, no network, no clock. The format is detected from the content, never from a file
name or media type: ``{`` starts a JSON Feed, a leading ``---`` line starts a Markdown post with
YAML front matter, an HTML page is refused, and anything else goes to feedparser as RSS/Atom.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping, Sequence

from aggregator.errors import ParseError
from aggregator.types import ParsedFeed

from . import jsonfeed, markdown, rss_atom

__all__ = ["parse_document", "parse_posts"]

_SNIFF_BYTES = 4096
# An HTML page: its first element (after comments, PIs and whitespace) is <!DOCTYPE html> or
# <html>. No RSS or Atom root is called "html".
_HTML_START = re.compile(
    r"(?:<!--.*?-->\s*|<\?.*?\?>\s*)*<(?:!doctype\s+html|html)[\s>]", re.IGNORECASE | re.DOTALL
)


def parse_document(
    body: bytes,
    *,
    source_id: str,
    headers: Mapping[str, str] | None = None,
    url: str | None = None,
) -> ParsedFeed:
    """Parse one document; raise ParseError if it is not a feed we can read.

    ``headers`` are the HTTP response headers (their charset matters to XML); ``url`` is the
    document's URL, only used as the base for relative links, never fetched.
    """
    head = _head_text(body)
    if not head:
        raise ParseError(source_id, "empty document")
    if head.startswith("{"):
        return jsonfeed.parse_json(body, source_id=source_id, url=url)
    if markdown.FRONT_MATTER_START.match(head):
        return markdown.parse_markdown(body, source_id=source_id)
    if _HTML_START.match(head):
        raise ParseError(source_id, "not a feed (looks like an HTML page)")
    return rss_atom.parse_xml(body, source_id=source_id, headers=headers, url=url)


def parse_posts(posts: Sequence[tuple[str, bytes]], *, source_id: str) -> ParsedFeed:
    """A directory of Markdown posts as ``(name, bytes)`` pairs, as one ``markdown`` feed.

    Posts are read in name order; a bad post is skipped with a warning; ParseError if none is
    readable.
    """
    return markdown.parse_posts(posts, source_id=source_id)


def _head_text(body: bytes) -> str:
    """The start of ``body`` as text, without BOM and leading whitespace, for sniffing."""
    head = body[:_SNIFF_BYTES]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        codec = "utf-16"
    elif head.startswith(b"\x00"):
        codec = "utf-16-be"  # UTF-16 without a BOM: the NUL byte comes first
    elif head[1:2] == b"\x00":
        codec = "utf-16-le"
    else:
        codec = "utf-8-sig"
    # "ignore": the sniff window may cut a multi-byte character in half.
    return head.decode(codec, errors="ignore").lstrip(" \t\r\n\ufeff")
