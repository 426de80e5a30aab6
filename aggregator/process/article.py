"""The article in a web page, for sources with ``full_text`` (issue #15). Pure: no I/O, no clock.

The page's bytes are decoded (the header's charset, else the page's own declaration, GBK and
GB2312 read as their superset GB18030), lazy images get their real ``src``, then the article
is taken with the source's CSS selector (beautifulsoup4 + soupsieve) or, without one, by
readability (readability-lxml: chosen over trafilatura by measured quality on
``tests/data/fulltext``, see ``bench/fulltext_quality.py``). What comes out goes through
``clean_html`` like any feed content: absolute URLs, no trackers, the nh3 allowlist.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup
from bs4.dammit import EncodingDetector, UnicodeDammit

from .html import LAZY_SRC_ATTRS, clean_html, cleaned_html_to_text

# Less text than this is not an article (a cookie wall, a login page, a selector that
# matched a caption): the feed's own content is kept instead.
MIN_TEXT = 200
MIN_TEXT_WIDE = 80  # characters, for CJK text (no spaces: each character carries more)

# Labels pages declare whose real encoding is a superset (WHATWG Encoding: GBK and GB2312 are
# GB18030's labels; ISO-8859-1 and ASCII are windows-1252's).
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030",
              "iso-8859-1": "cp1252", "latin-1": "cp1252", "ascii": "cp1252",
              "us-ascii": "cp1252"}  # fmt: skip
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
_PLACEHOLDER = re.compile(
    r"^(data:|about:blank|javascript:)|(blank|spacer|placeholder|pixel|loading)\.(gif|png|svg)",
    re.IGNORECASE,
)


_HTML_TYPES = frozenset(("text/html", "application/xhtml+xml", "text/plain", ""))


class NoArticle(ValueError):
    """The page gave no article: nothing matched the selector, or too little text."""


def _superset(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().lower()
    return _SUPERSETS.get(label, label)


def decode_page(body: bytes, content_type: str | None = None) -> str:
    """The page as text: the charset of ``content_type``, else the page's BOM or declaration,
    else what the bytes look like."""
    found = _CHARSET.search(content_type or "")
    declared = EncodingDetector.find_declared_encoding(body[:4096], is_html=True)
    known = [c for c in (_superset(found.group(1) if found else None), _superset(declared)) if c]
    dammit = UnicodeDammit(body, known_definite_encodings=known, is_html=True)
    return dammit.unicode_markup or body.decode("utf-8", "replace")


def _fix_lazy_images(soup: BeautifulSoup) -> None:
    """Lazy images get their real ``src`` (``_src``, ``data-src`` ...) before extraction:
    extractors keep ``src`` and drop attributes they do not know."""
    for img in soup.find_all("img"):
        src = img.get("src")
        for attr in LAZY_SRC_ATTRS:
            value = img.get(attr)
            if isinstance(value, str) and value.strip() and not value.startswith("data:"):
                if not isinstance(src, str) or not src.strip() or _PLACEHOLDER.search(src):
                    img["src"] = value.strip()
                break


def prepared_page(html: str) -> BeautifulSoup:
    """The page parsed (lxml's HTML parser, through bs4) with its lazy images resolved."""
    soup = BeautifulSoup(html, "lxml")
    _fix_lazy_images(soup)
    return soup


def by_selector(soup: BeautifulSoup, selector: str) -> str:
    """The HTML of every element ``selector`` matches, in document order."""
    found = soup.select(selector)
    if not found:
        raise NoArticle(f"nothing matches the content selector {selector!r}")
    return "\n".join(str(element) for element in found)


def by_readability(soup: BeautifulSoup, url: str) -> str:
    """readability-lxml's article (its best-scoring block and its siblings)."""
    from lxml.etree import LxmlError  # type: ignore[import-untyped]  # lxml ships no stubs
    from readability import Document  # only sources with full text load it

    try:
        return str(Document(str(soup), url=url).summary(html_partial=True))
    except (ValueError, LxmlError) as exc:  # readability's Unparseable is a ValueError
        raise NoArticle(f"no article found: {exc}") from exc


def _long_enough(text: str) -> bool:
    wide = sum(1 for c in text if "\u2e80" <= c <= "\u9fff" or "\uac00" <= c <= "\ud7af")
    return len(text) >= MIN_TEXT or wide >= MIN_TEXT_WIDE


def extract_article(
    body: bytes, *, url: str, content_type: str | None = None, selector: str | None = None
) -> str:
    """The article of the page at ``url`` as clean HTML; ``NoArticle`` when there is none."""
    kind = (content_type or "text/html").split(";")[0].strip().lower()
    if kind not in _HTML_TYPES:
        raise NoArticle(f"not an HTML page ({kind})")
    soup = prepared_page(decode_page(body, content_type))
    raw = by_selector(soup, selector) if selector else by_readability(soup, url)
    article = clean_html(raw, base=url)
    if not _long_enough(cleaned_html_to_text(article)):
        raise NoArticle("the page's article is too short to be one")
    return article
