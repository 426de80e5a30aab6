"""fastxml's element handlers: feedparser 6.0.x's ``_start_*``/``_end_*`` for the allowlisted
elements, writing the same keys and values into the same context dicts. Pure: no I/O, no clock.

Each handler gets the lxml element, the feed/entry being filled (``Node``) and the document's
``Reader``, and raises ``Decline`` wherever feedparser would do something not reproduced here.
The references are ``feedparser/mixin.py`` (``pop``, ``_sync_author_detail``) and
``feedparser/namespaces/_base.py``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._feedparser_private import (
    CAN_BE_RELATIVE_URI,
    CP1252,
    looks_like_html,
    map_content_type,
    parse_date,
    sync_author_detail,
    urljoin,
)

ATOM = "{http://www.w3.org/2005/Atom}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# The `type` values of a text construct feedparser keeps as text (others: XHTML, base64, ...).
_TEXT_TYPES = {"text": "text/plain", "plain": "text/plain", "text/plain": "text/plain"}
_TEXT_TYPES |= {"html": "text/html", "text/html": "text/html"}
_QUERY_FIX = re.compile("&([A-Za-z0-9_]+);")  # feedparser's repair of `&a;` in links
_PERSON = {ATOM + "name": "name", ATOM + "email": "email", ATOM + "uri": "href"}
_IMAGE_PARTS = frozenset({"url", "title", "link", "width", "height"})
_NO_ATTRS: frozenset[str] = frozenset()


class Decline(Exception):
    """The document needs feedparser."""


@dataclass(frozen=True, slots=True)
class Reader:
    """Document-wide facts: the base URI relative links resolve against; Atom or RSS."""

    base: str
    atom: bool


@dataclass(slots=True)
class Node:
    """One feed, entry or atom:source being filled: feedparser's context dict."""

    data: dict[str, Any] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    has_content: bool = False


Handler = Callable[[Any, Node, Reader], None]


# -- feedparser's value pipeline (_FeedParserMixin.pop) -------------------------------------------


def text(el: Any) -> str:
    """The stripped character data of a leaf element (child elements: decline)."""
    if len(el):
        raise Decline
    return (el.text or "").strip()


def _repair(value: str) -> str:
    """pop's last steps: UTF-8 misread as Latin-1 undone, C1 controls read as windows-1252."""
    if value.isascii():
        return value
    with contextlib.suppress(UnicodeError):
        value = value.encode("iso-8859-1").decode("utf-8")
    return value.translate(CP1252)


def _value(el: Any, r: Reader, element: str) -> str:
    """An element's text as feedparser stores it under ``element``."""
    value = text(el)
    if value and element in CAN_BE_RELATIVE_URI:
        value = urljoin(r.base, value)
    return _repair(value)


def attrs(el: Any, allowed: frozenset[str] | None) -> dict[str, str]:
    """Attributes as feedparser sees them: names lower-cased, rel/type values too.

    ``allowed``: the names the element may have (None: any without a namespace). Every element
    passes through here, so xml:base (or a plain ``base``, which feedparser also takes as the
    base URI) declines the document.
    """
    out: dict[str, str] = {}
    for key, value in el.attrib.items():
        if key == _XML_LANG:
            continue
        name = key.lower()
        if name == "base" or (name not in allowed if allowed is not None else name[0] == "{"):
            raise Decline
        out[name] = value.lower() if name in ("rel", "type") else value
    return out


def _construct(el: Any, r: Reader, default: str) -> dict[str, Any]:
    """A text construct (title, summary, content...): its ``*_detail`` dict, with the value."""
    kind = _TEXT_TYPES.get(attrs(el, frozenset({"type"})).get("type", default))
    if kind is None:
        raise Decline
    value = text(el)
    # RSS leaves the reader to guess: feedparser upgrades plain text that looks like HTML.
    if not r.atom and kind == "text/plain" and looks_like_html(value):
        kind = "text/html"
    return {"type": kind, "base": r.base, "value": _repair(value)}


# -- text constructs ------------------------------------------------------------------------------


def title(el: Any, node: Node, r: Reader) -> None:
    detail = _construct(el, r, "text/plain")
    node.data["title"], node.data["title_detail"] = detail["value"], detail


def subtitle(el: Any, node: Node, r: Reader) -> None:
    """atom:subtitle, or the RSS channel's <description>."""
    detail = _construct(el, r, "text/plain" if r.atom else "text/html")
    node.data["subtitle"], node.data["subtitle_detail"] = detail["value"], detail


def summary(el: Any, node: Node, r: Reader) -> None:
    """atom:summary, or an RSS item's <description>."""
    if "summary" in node.data and not node.has_content:
        raise Decline  # a second summary: feedparser takes it as content
    detail = _construct(el, r, "text/plain" if r.atom else "text/html")
    node.data["summary"], node.data["summary_detail"] = detail["value"], detail


def content(el: Any, node: Node, r: Reader) -> None:
    """atom:content or content:encoded; its value is the summary until there is one."""
    detail = _construct(el, r, "text/plain" if r.atom else "text/html")
    node.has_content = True
    node.data.setdefault("content", []).append(detail)
    node.data.setdefault("summary", detail["value"])


# -- links and ids --------------------------------------------------------------------------------


def channel_link(el: Any, node: Node, r: Reader) -> None:
    """The RSS channel's <link>: its resolved text, `&name;` made `&name`."""
    attrs(el, _NO_ATTRS)
    node.data["link"] = _fix_query(_value(el, r, "link"))


def item_link(el: Any, node: Node, r: Reader) -> None:
    """An RSS item's <link>: as the channel's, with `&amp;` undone first."""
    attrs(el, _NO_ATTRS)
    node.data["link"] = _fix_query(_value(el, r, "link").replace("&amp;", "&"))


def _fix_query(link: str) -> str:
    return _QUERY_FIX.sub(r"&\g<1>", link) if "&" in link else link


def atom_link(el: Any, node: Node, r: Reader) -> None:
    """atom:link (also in RSS): an alternate HTML link is the link, rel=enclosure an enclosure."""
    link = attrs(el, frozenset({"href", "rel", "type", "title", "length", "hreflang"}))
    text(el)
    rel = link.setdefault("rel", "alternate")
    link.setdefault("type", "application/atom+xml" if rel == "self" else "text/html")
    if "href" not in link:
        raise Decline  # feedparser would take the element's text as the link
    link["href"] = urljoin(r.base, link["href"])  # even "": it becomes the base
    if rel == "enclosure":
        node.data.setdefault("enclosures", []).append({k: v for k, v in link.items() if k != "rel"})
    if rel == "alternate" and map_content_type(link["type"]) in _HTML_TYPES:
        node.data["link"] = link["href"]


def guid(el: Any, node: Node, r: Reader) -> None:
    """<guid>/atom:id: resolved unless isPermaLink is not "true"; the link if there is none yet."""
    is_link = attrs(el, frozenset({"ispermalink"})).get("ispermalink", "true") == "true"
    value = text(el)
    if value and is_link:
        value = urljoin(r.base, value)
    value = node.data["id"] = _repair(value)
    node.data.setdefault("guidislink", is_link and "link" not in node.data)
    if is_link:
        node.data.setdefault("link", value)


def date(key: str) -> Handler:
    """A date element stored as ``key`` (published/updated) and ``key_parsed``."""

    def handle(el: Any, node: Node, r: Reader) -> None:
        attrs(el, _NO_ATTRS)
        value = node.data[key] = _value(el, r, key)
        node.data[f"{key}_parsed"] = parse_date(value)

    return handle


def plain(key: str) -> Handler:
    """An element feedparser has no handler for, stored under its name (without attributes)."""

    def handle(el: Any, node: Node, r: Reader) -> None:
        attrs(el, _NO_ATTRS)
        node.data[key] = _value(el, r, key)

    return handle


# -- people ---------------------------------------------------------------------------------------


def rss_author(el: Any, node: Node, r: Reader) -> None:
    """<author>/<dc:creator>: feedparser's own code splits "email (Name)"."""
    attrs(el, _NO_ATTRS)
    node.data.setdefault("authors", []).append({})
    node.data["author"] = _value(el, r, "author")
    sync_author_detail(node.data)


def atom_author(el: Any, node: Node, r: Reader) -> None:
    """atom:author, step by step as _save_author/_end_author: with several, the order matters."""
    _person(el)
    node.data.setdefault("authors", []).append({})
    for child in el:
        key = _PERSON[child.tag]
        value = _value(child, r, "href") if key == "href" else text(child)
        node.data.setdefault("author_detail", {})[key] = value
        sync_author_detail(node.data)
        node.data["authors"][-1][key] = value
    node.data["author"] = ""  # what pop('author') leaves: the whitespace between the children
    sync_author_detail(node.data)


def contributor(el: Any, node: Node, r: Reader) -> None:
    """atom:contributor goes to `contributors`, which nothing reads: only checked."""
    _person(el)


def _person(el: Any) -> None:
    attrs(el, _NO_ATTRS)
    if (el.text or "").strip() or any((child.tail or "").strip() for child in el):
        raise Decline
    for child in el:
        if child.tag not in _PERSON:
            raise Decline
        attrs(child, _NO_ATTRS)
        text(child)


# -- categories, enclosures, images ---------------------------------------------------------------


def category(el: Any, node: Node, r: Reader) -> None:
    """_start_category/_end_category: attributes first; the text fills in a missing term."""
    given = attrs(el, frozenset({"term", "scheme", "domain", "label"}))
    tags = node.data.setdefault("tags", [])
    scheme = given.get("scheme", given.get("domain"))
    _add_tag(tags, given.get("term"), scheme, given.get("label"))
    value = _value(el, r, "category")
    if value and tags and not tags[-1]["term"]:
        tags[-1]["term"] = value
    elif value:
        _add_tag(tags, value, None, None)


def _add_tag(tags: list[dict[str, Any]], term: Any, scheme: Any, label: Any) -> None:
    tag = {"term": term, "scheme": scheme, "label": label}
    if (term or scheme or label) and tag not in tags:
        tags.append(tag)


def enclosure(el: Any, node: Node, r: Reader) -> None:
    """RSS <enclosure>: its url is not resolved (feedparser's _start_enclosure)."""
    found = attrs(el, frozenset({"url", "type", "length"}))
    text(el)
    if found.get("url"):
        found["href"] = found.pop("url")
    node.data.setdefault("enclosures", []).append(found)


def media_thumbnail(el: Any, node: Node, r: Reader) -> None:
    """media:thumbnail: its url attribute, else its text (resolved)."""
    found = attrs(el, frozenset({"url", "width", "height", "time"}))
    value = _value(el, r, "url")
    if value.strip() and "url" not in found:
        found["url"] = value
    node.data.setdefault("media_thumbnail", []).append(found)


def media_content(el: Any, node: Node, r: Reader) -> None:
    """media:content without children (media:title, media:description... act on the entry)."""
    found = attrs(el, None)
    text(el)
    node.data.setdefault("media_content", []).append(found)


def image(el: Any, node: Node, r: Reader) -> None:
    """The RSS channel's <image>: its url is the feed's image."""
    attrs(el, _NO_ATTRS)
    found = node.data.setdefault("image", {})
    for child in el:
        if child.tag not in _IMAGE_PARTS:
            raise Decline  # any other element ends feedparser's image context early
        attrs(child, _NO_ATTRS)
        if child.tag == "url":
            found["href"] = _value(child, r, "href")
        text(child)


# -- elements that set nothing rss_atom reads ---------------------------------------------------


def inert(el: Any, node: Node, r: Reader) -> None:
    """A leaf element whose value nothing reads."""
    attrs(el, None)
    text(el)


def inert_container(children: frozenset[str]) -> Handler:
    """An element of such leaves (RSS <skipHours>, read from the bytes by rss_atom)."""

    def handle(el: Any, node: Node, r: Reader) -> None:
        attrs(el, None)
        for child in el:
            if child.tag not in children:
                raise Decline
            inert(child, node, r)

    return handle
