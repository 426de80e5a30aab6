"""What the HTML pages and the outputs' OPML show: the site's sections and their feeds.

Pure: no I/O, no clock. ``publish`` builds a ``Site`` from the config; ``html`` renders it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from lxml import etree  # type: ignore[import-untyped]  # lxml ships no stubs

from aggregator.render._common import clean_text, xml_bytes

GROUPS_DIR = "groups"
RIVER_PATH = "index.html"
OPML_PATH = "outputs.opml"
STATUS_PATH = "status"
MEDIA_TYPES = {
    "atom": "application/atom+xml",
    "rss": "application/rss+xml",
    "json": "application/feed+json",
}
LABELS = {"atom": "Atom", "rss": "RSS", "json": "JSON Feed"}
_UNSAFE = re.compile(r"[^\w-]+")


@dataclass(frozen=True, slots=True)
class FeedRef:
    """One feed file: its format and where it is, relative to the output directory."""

    format: str  # "atom", "rss" or "json"
    path: str

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]

    @property
    def label(self) -> str:
        return LABELS[self.format]


@dataclass(frozen=True, slots=True)
class Section:
    """A page of entries (the river, an output or a group) and the feeds of the same entries."""

    kind: str  # "river", "output" or "group"
    name: str  # output name, group name, or "" for the river
    title: str
    path: str  # the page, relative to the output directory
    feeds: tuple[FeedRef, ...] = ()


@dataclass(frozen=True, slots=True)
class Site:
    """Every page and feed, so each page can link to all the others."""

    title: str
    base_url: str
    river: Section
    outputs: tuple[Section, ...] = ()
    groups: tuple[Section, ...] = ()

    @property
    def sections(self) -> tuple[Section, ...]:
        return (self.river, *self.outputs, *self.groups)

    def group_page(self, group: str | None) -> str | None:
        for section in self.groups:
            if section.name == group:
                return section.path
        return None


def feed_refs(stem: str, formats: Iterable[str]) -> tuple[FeedRef, ...]:
    """The feed files ``<stem>.atom/.rss/.json`` of ``formats`` (markdown has no single file)."""
    suffix = {"atom": "atom", "rss": "rss", "json": "json"}
    return tuple(FeedRef(fmt, f"{stem}.{suffix[fmt]}") for fmt in MEDIA_TYPES if fmt in formats)


def group_slugs(groups: Iterable[str]) -> dict[str, str]:
    """A stable file-name stem per group: letters (any script), digits, ``-`` and ``_``; other
    runs become ``-`` ("Tech/Python" -> "tech-python"); clashes get ``-2``, ``-3`` in name
    order."""
    slugs: dict[str, str] = {}
    taken: set[str] = set()
    for group in sorted(set(groups)):
        stem = _UNSAFE.sub("-", group.casefold()).strip("-_") or "group"
        slug, n = stem, 2
        while slug in taken:
            slug, n = f"{stem}-{n}", n + 1
        taken.add(slug)
        slugs[group] = slug
    return slugs


def url_path(path: str) -> str:
    """A relative path as it goes in a URL (each segment percent-encoded)."""
    return quote(path, safe="/")


def render_outputs_opml(site: Site) -> bytes:
    """OPML 2.0 of the outputs, one outline per output (its Atom feed, else RSS, else JSON),
    so a reader subscribes to all of them in one import."""
    opml = etree.Element("opml", version="2.0")
    head = etree.SubElement(opml, "head")
    etree.SubElement(head, "title").text = clean_text(site.title)
    etree.SubElement(head, "docs").text = "http://opml.org/spec2.opml"
    body = etree.SubElement(opml, "body")
    for section in site.outputs:
        if not section.feeds:
            continue
        feed = section.feeds[0]
        etree.SubElement(
            body,
            "outline",
            type="rss",
            text=clean_text(section.title),
            title=clean_text(section.title),
            xmlUrl=site.base_url + url_path(feed.path),
            htmlUrl=site.base_url + url_path(section.path),
        )
    return xml_bytes(opml)
