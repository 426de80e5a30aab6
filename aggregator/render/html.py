"""The HTML pages: the river (every entry, newest first), a page per output and per group, and
the status page. Jinja2 templates in ``templates/`` with autoescape on. Pure: no I/O beyond
loading the templates, no clock (``now`` is an argument of the status page only).

Entries show their stored summary (plain text, escaped) and links; stored HTML is never put in
a page. Links taken from feeds are kept only when they are http(s).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aggregator.render._common import clean_text, feed_updated, rfc3339
from aggregator.render.pages import (
    OPML_PATH,
    RIVER_PATH,
    STATUS_PATH,
    Section,
    Site,
    url_path,
)
from aggregator.render.status import StatusReport
from aggregator.types import Provenance, StoredEntry

if TYPE_CHECKING:
    from jinja2 import Environment

LANG = "en"
_SCHEMES = ("http", "https")
_ROOT = re.compile(r"[^/]+")


@cache
def _env() -> Environment:
    """The template environment, built on first use (Jinja2 is imported only by what renders
    pages: `aggregator --help` and `check` never load it)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("aggregator.render", "templates"),
        autoescape=select_autoescape(("html",), default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        iso=rfc3339,
        absolute=absolute_time,
        ago=relative_time,
        http_url=http_url,
        anchor=anchor,
        source_url=source_url,
        duration=duration,
    )
    return env


def render_page(site: Site, section: Section, entries: Sequence[StoredEntry]) -> bytes:
    """One page of ``entries`` (already sorted and limited): the river, an output or a group."""
    here = posixpath.dirname(section.path)
    root = _ROOT.sub("..", here) + "/" if here else ""

    def href(path: str) -> str:
        """``path`` (from the output directory) relative to this page."""
        if path == RIVER_PATH:
            return root or "./"
        return url_path(posixpath.relpath(path, here or "."))

    # Autodiscovery: this page's own feeds first, then every output's (each file once).
    views: dict[str, dict[str, str]] = {}
    for owner in (section, *site.outputs):
        for feed in owner.feeds:
            views.setdefault(feed.path, _feed_view(owner, feed, href))
    page = _env().get_template("river.html").render(
        lang=LANG,
        site=site,
        site_title=clean_text(site.title),
        section=section,
        entries=entries,
        updated=feed_updated(entries),
        head_feeds=list(views.values()),
        nav=_nav(site, section, href),
        root=root or "./",
        opml_path=OPML_PATH,
        href=href,
    )  # fmt: skip
    return page.encode("utf-8")


def render_status(report: StatusReport, *, site_title: str, now: datetime) -> bytes:
    """The status page: the daemon's health on top, then every source, failing first."""
    page = (
        _env()
        .get_template("status.html")
        .render(
            lang=LANG,
            site_title=clean_text(site_title),
            daemon=report.daemon,
            sources=report.sources,
            failing=report.failing,
            now=now,
            root="./",
            nav=[
                {"title": "River", "href": "./", "current": False},
                {"title": "Status", "href": STATUS_PATH, "current": True},
            ],
        )
    )
    return page.encode("utf-8")


def _nav(site: Site, current: Section, href: Any) -> list[dict[str, Any]]:
    """River, the outputs that are not the river again (same feeds), Status."""
    sections = [site.river]
    sections += [s for s in site.outputs if s is current or s.feeds != site.river.feeds]
    links = [
        {"title": "River" if s is site.river else s.title, "href": href(s.path),
         "current": s is current}
        for s in sections
    ]  # fmt: skip
    links.append({"title": "Status", "href": href(STATUS_PATH), "current": False})
    return links


def _feed_view(section: Section, feed: Any, href: Any) -> dict[str, str]:
    title = f"{section.title} ({feed.label})"
    return {"title": title, "media_type": feed.media_type, "href": href(feed.path)}


def http_url(value: str | None) -> str | None:
    """``value`` when it is an absolute http(s) URL, else None (no ``javascript:`` in a page)."""
    if not value:
        return None
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    return value.strip() if parts.scheme.lower() in _SCHEMES and parts.netloc else None


def source_url(source: Provenance) -> str | None:
    """Where a source's name links: its item, else its site, else its feed."""
    for candidate in (source.link, source.feed_link, source.source_url):
        url = http_url(candidate)
        if url:
            return url
    return None


def anchor(uid: str) -> str:
    """A stable fragment id for an entry."""
    return "e-" + hashlib.sha1(uid.encode("utf-8"), usedforsecurity=False).hexdigest()[:12]


def absolute_time(value: datetime) -> str:
    """``26 Nov 2026, 12:00 UTC``."""
    utc = value.astimezone(UTC)
    return f"{utc.day} {utc:%b %Y, %H:%M} UTC"


def relative_time(value: datetime, now: datetime) -> str:
    """``3 min ago``, ``in 2 h``, ``just now`` (the status page, rendered on request)."""
    seconds = (value - now).total_seconds()
    span = abs(seconds)
    if span < 45:
        return "just now"
    text = duration(span)
    return f"in {text}" if seconds > 0 else f"{text} ago"


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3 h``, ``2 d``."""
    for limit, unit, name in ((90, 1, "s"), (5400, 60, "min"), (129600, 3600, "h")):
        if seconds < limit:
            return f"{round(seconds / unit)} {name}"
    return f"{round(seconds / 86400)} d"
