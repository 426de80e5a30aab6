"""feedparser's private helpers, so fastxml computes every value as feedparser does. Pure: no I/O.

The only module that imports them. fastxml yields exactly what ``feedparser.parse`` yields by
calling feedparser's own date parser, URL joining, encoding sniffing and element tables, which
are not public API and may change in any release. pyproject.toml pins feedparser to
``TESTED_VERSIONS``; with any other release, or if one of the names below is gone, ``usable()``
is False (with one warning) and fastxml declines every document, so rss_atom runs
``feedparser.parse`` itself.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import feedparser

__all__ = [
    "CAN_BE_RELATIVE_URI",
    "CP1252",
    "HANDLERS",
    "NAMESPACES",
    "TESTED_VERSIONS",
    "XML_PI_ENCODING",
    "looks_like_html",
    "make_safe_absolute_uri",
    "map_content_type",
    "parse_content_type",
    "parse_date",
    "sync_author_detail",
    "urljoin",
    "usable",
]

log = logging.getLogger(__name__)

# The releases tests/test_fastxml.py passed with; pyproject.toml's pin admits exactly these.
TESTED_VERSIONS = frozenset({"6.0.11", "6.0.12", "6.0.13", "6.0.14"})


def _unavailable(*args: Any) -> Any:
    raise RuntimeError("feedparser's internals are missing: fastxml must not run")


try:
    from feedparser.datetimes import _parse_date as parse_date
    from feedparser.encodings import RE_XML_PI_ENCODING as XML_PI_ENCODING
    from feedparser.encodings import parse_content_type
    from feedparser.html import _cp1252 as CP1252
    from feedparser.mixin import _FeedParserMixin
    from feedparser.urls import _urljoin as urljoin
    from feedparser.urls import make_safe_absolute_uri

    NAMESPACES: Mapping[str, str] = _FeedParserMixin.namespaces
    # Elements whose text feedparser resolves against the base URI.
    CAN_BE_RELATIVE_URI = frozenset(_FeedParserMixin.can_be_relative_uri)
    # Names of feedparser's element handlers (``_start_<name>``, ``_end_<name>``).
    HANDLERS = frozenset(n for n in dir(_FeedParserMixin) if n.startswith(("_start_", "_end_")))
    looks_like_html = _FeedParserMixin.looks_like_html
    map_content_type = _FeedParserMixin.map_content_type
    _sync_author_detail = _FeedParserMixin._sync_author_detail
    _MISSING = ""
except (ImportError, AttributeError) as exc:  # a release that moved or renamed one of them
    _MISSING = f"{type(exc).__name__}: {exc}"
    parse_date = parse_content_type = urljoin = make_safe_absolute_uri = _unavailable
    looks_like_html = map_content_type = _sync_author_detail = _unavailable
    XML_PI_ENCODING = re.compile(b"(?!)")
    CP1252 = {}
    NAMESPACES, CAN_BE_RELATIVE_URI, HANDLERS = {}, frozenset(), frozenset()


def usable() -> bool:
    """Whether fastxml may run: a tested feedparser whose internals all imported."""
    return _refusal(getattr(feedparser, "__version__", "unknown")) is None


@functools.cache
def _refusal(version: str) -> str | None:
    """Why fastxml must not run with feedparser ``version``, or None; warns once per version."""
    if _MISSING:
        reason = f"feedparser {version} lacks an internal it uses ({_MISSING})"
    elif version not in TESTED_VERSIONS:
        tested = ", ".join(sorted(TESTED_VERSIONS))
        reason = f"feedparser {version} is not a release it was tested with ({tested})"
    else:
        return None
    log.warning("fast XML path off, every RSS/Atom document goes to feedparser: %s", reason)
    return reason


@dataclass(frozen=True, slots=True)
class _Parser:
    """Stands in for feedparser in _sync_author_detail, which only asks it for the context."""

    context: dict[str, Any]

    def _get_context(self) -> dict[str, Any]:
        return self.context


def sync_author_detail(context: dict[str, Any]) -> None:
    """feedparser's ``_sync_author_detail`` on a feed or entry dict: author <-> author_detail."""
    _sync_author_detail(_Parser(context))
