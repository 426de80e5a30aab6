"""OPML subscription lists: read OPML 1.0/2.0 (as feed readers export them), write OPML 2.0.

Pure: bytes in, values out, and the reverse; no files, no network, no clock (``now`` is an
argument). Nested outlines are groups: a feed inside "Tech" > "Python" has the group
"Tech/Python", and a group with "/" is written back as nested outlines. Each exported feed
carries its source id in an attribute of our own namespace (``aggregator:id``: OPML 2.0 allows
namespaced extensions), so an export imported elsewhere keeps the ids outputs refer to.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from lxml import etree  # type: ignore[import-untyped]  # lxml ships no stubs

from . import PROJECT_URL
from .errors import AggregatorError

GROUP_SEPARATOR = "/"
NAMESPACE = f"{PROJECT_URL}/opml"  # a name, never fetched
_ID = f"{{{NAMESPACE}}}id"
# Outline types that are feeds. Readers write "rss" for Atom and JSON Feed too (OPML 2.0 says
# type="rss" for subscription lists); "atom" and "json" appear in some exports. FreshRSS's
# web-scraping types ("HTML+XPath", "XML+XPath", "JSON+DotNotation" ...) are not feeds.
FEED_TYPES = frozenset(("", "rss", "atom", "rdf", "json", "jsonfeed", "feed"))


class OpmlError(AggregatorError):
    """The file is not an OPML document we can read."""

    exit_status = 2  # the command line's input: see aggregator.cli


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    """One subscription: ``url`` is the feed (xmlUrl), ``html_url`` the site."""

    url: str
    title: str | None = None
    html_url: str | None = None
    group: str | None = None
    id: str | None = None  # the source id an export of ours carries (aggregator:id)


@dataclass(frozen=True, slots=True)
class OpmlSkip:
    """An outline that is not imported, and why."""

    what: str
    reason: str


@dataclass(frozen=True, slots=True)
class Opml:
    title: str | None
    feeds: tuple[OpmlFeed, ...]
    skipped: tuple[OpmlSkip, ...]


def read_opml(data: bytes) -> Opml:
    """The subscriptions of an OPML document; OpmlError if it is not OPML."""
    # No DTDs, no entities, no network: an OPML file is data from elsewhere.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             remove_comments=True, remove_pis=True)  # fmt: skip
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise OpmlError(f"not well-formed XML: {exc}") from exc
    if _local(root.tag) != "opml":
        raise OpmlError(f"not OPML: the root element is <{_local(root.tag)}>, not <opml>")
    body = next((c for c in root if _local(c.tag) == "body"), None)
    if body is None:
        raise OpmlError("not OPML: no <body>")
    head = next((c for c in root if _local(c.tag) == "head"), None)
    title = None
    if head is not None:
        title = _text(next((c for c in head if _local(c.tag) == "title"), None))
    feeds: list[OpmlFeed] = []
    skipped: list[OpmlSkip] = []
    for outline, groups in _outlines(body, ()):
        attrs = _attributes(outline)
        label = attrs.get("title") or attrs.get("text")
        url = attrs.get("xmlurl")
        if not url:
            continue  # a folder, or a note: its children are walked
        kind = attrs.get("type", "").lower()
        if kind not in FEED_TYPES:
            skipped.append(OpmlSkip(label or url, f"type {attrs['type']!r} is not a feed"))
            continue
        group = GROUP_SEPARATOR.join(groups) or None
        site = attrs.get("htmlurl") or None
        feeds.append(OpmlFeed(url, label, site, group, outline.get(_ID) or None))
    return Opml(title, tuple(feeds), tuple(skipped))


def _outlines(parent: Any, groups: tuple[str, ...]) -> Iterator[tuple[Any, tuple[str, ...]]]:
    """Every ``<outline>`` under ``parent`` with the folder names above it, in document order."""
    for child in parent:
        if not isinstance(child.tag, str) or _local(child.tag) != "outline":
            continue
        yield child, groups
        attrs = _attributes(child)
        name = (attrs.get("text") or attrs.get("title") or "").strip()
        below = groups if attrs.get("xmlurl") or not name else (*groups, name)
        yield from _outlines(child, below)


def _attributes(element: Any) -> dict[str, str]:
    """Attributes without namespace, names lower-cased (readers write xmlUrl, xmlurl ...)."""
    out: dict[str, str] = {}
    for name, value in element.attrib.items():
        if not name.startswith("{"):  # namespaced extensions (frss:...) are not ours
            out.setdefault(name.lower(), value.strip())
    return out


def _local(tag: Any) -> str:
    return str(tag).rpartition("}")[2].lower()


def _text(element: Any) -> str | None:
    if element is None or element.text is None:
        return None
    return element.text.strip() or None


def write_opml(
    feeds: Sequence[OpmlFeed], *, title: str, now: datetime, owner: str | None = None
) -> bytes:
    """OPML 2.0, feeds in the given order, each group an outline (nested at each "/") placed
    where its first feed is; every feed outline has ``type="rss"``, ``text``, ``title``,
    ``xmlUrl`` and, when known, ``htmlUrl``."""
    root = etree.Element("opml", version="2.0", nsmap={"aggregator": NAMESPACE})
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = title
    etree.SubElement(head, "dateCreated").text = format_datetime(now, usegmt=True)
    if owner:
        etree.SubElement(head, "ownerName").text = owner
    etree.SubElement(head, "docs").text = "https://opml.org/spec2.opml"
    body = etree.SubElement(root, "body")
    folders: dict[tuple[str, ...], Any] = {(): body}
    for feed in feeds:
        parent = _folder(folders, _group_path(feed.group))
        label = feed.title or feed.url
        attrs: Mapping[str, str] = {"type": "rss", "text": label, "title": label,
                                    "xmlUrl": feed.url}  # fmt: skip
        if feed.html_url:
            attrs = {**attrs, "htmlUrl": feed.html_url}
        if feed.id:
            attrs = {**attrs, _ID: feed.id}
        etree.SubElement(parent, "outline", attrs)
    etree.indent(root, space="  ")
    xml: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return xml + b"\n"


def _group_path(group: str | None) -> tuple[str, ...]:
    if not group:
        return ()
    return tuple(part.strip() for part in group.split(GROUP_SEPARATOR) if part.strip())


def _folder(folders: dict[tuple[str, ...], Any], path: tuple[str, ...]) -> Any:
    if path not in folders:
        parent = _folder(folders, path[:-1])
        folders[path] = etree.SubElement(parent, "outline", text=path[-1], title=path[-1])
    return folders[path]
