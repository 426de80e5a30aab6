"""Byte-level repairs for XML feeds that feedparser would misread. Pure: no I/O, no clock."""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from urllib.parse import urljoin

from ._charset import decodes, redecode

# Encodings servers and CMSs declare by default although the bytes are often UTF-8.
_WESTERN_LABELS = frozenset(
    {"iso-8859-1", "iso8859-1", "latin-1", "latin1", "windows-1252", "cp1252", "us-ascii", "ascii"}
)
_XML_DECL_ENCODING = re.compile(
    rb"\A(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?\sencoding\s*=\s*[\"']([A-Za-z0-9._:-]+)[\"']"
)
_HTTP_CHARSET = re.compile(r";\s*charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.IGNORECASE)
_WHITESPACE_BEFORE_DECL = re.compile(rb"\A(\xef\xbb\xbf)?[ \t\r\n]+(?=<\?xml)")
UTF8_XML = "application/xml; charset=utf-8"
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def response_headers(headers: Mapping[str, str] | None, url: str | None) -> dict[str, str]:
    """The ``response_headers`` feedparser gets: lower-case keys, the URL as Content-Location."""
    out = {key.lower(): value for key, value in (headers or {}).items()}
    if url:
        # feedparser takes the base URI for relative links from Content-Location; a relative
        # Content-Location header is relative to the request URL (RFC 9110, 8.7).
        try:
            out["content-location"] = urljoin(url, out.get("content-location", ""))
        except ValueError:  # a header urljoin cannot read (the server controls it): ignored
            out["content-location"] = url
    # With a non-empty header dict but no Content-Type, feedparser applies the HTTP default
    # charset ISO-8859-1 (RFC 2616); an XML media type makes it follow the XML declaration,
    # else UTF-8, as for a local file (RFC 7303, section 4.3).
    out.setdefault("content-type", "application/xml")
    return out


def strip_whitespace_before_declaration(body: bytes) -> bytes | None:
    """``body`` without the whitespace before its ``<?xml`` declaration, or None if it has none.

    XML 1.0 (section 2.8) requires the declaration at the very start, so expat rejects such a
    document and feedparser falls back to its lossy loose parser.
    """
    stripped = _WHITESPACE_BEFORE_DECL.sub(rb"\1", body, count=1)
    return stripped if stripped != body else None


def utf16_without_bom(body: bytes) -> bytes | None:
    """UTF-16 bytes with neither BOM nor XML declaration transcoded to UTF-8, else None.

    Without either, feedparser cannot tell the encoding (XML 1.0, appendix F) and finds
    nothing; the NUL byte before or after the first ``<`` gives it away.
    """
    if body[:2] == b"\x00<":
        codec = "utf-16-be"
    elif body[:2] == b"<\x00":
        codec = "utf-16-le"
    else:
        return None
    try:
        return body.decode(codec).encode("utf-8")
    except UnicodeDecodeError:
        return None


def mislabelled_utf8(body: bytes, headers: Mapping[str, str]) -> str | None:
    """The declared Western single-byte encoding of a document whose bytes are UTF-8, else None.

    Non-ASCII text in ISO-8859-1/windows-1252 is practically never valid UTF-8, so valid UTF-8
    with non-ASCII bytes means the label is wrong (a common CMS default).
    """
    declared = _declared_encoding(body, headers)
    if declared is None or declared.lower() not in _WESTERN_LABELS or body.isascii():
        return None
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return declared


def misdeclared(body: bytes, headers: Mapping[str, str]) -> tuple[bytes, str] | None:
    """A document not valid in any encoding it declares, as UTF-8 with a note; else None.

    feedparser would try UTF-8, then windows-1252 (GB18030 text comes out as ``ÄãºÃÊÀ½ç``);
    ``redecode`` finds the encoding. When that is windows-1252 too, feedparser is left to do it
    (same text; its CharacterEncodingOverride warning says what it used). A BOM, UTF-16
    without one and pure ASCII are the other paths' business.
    """
    if body.isascii() or body.startswith(_BOMS) or b"\x00" in body[:4]:
        return None
    labels = _declared_labels(body, headers) or ("utf-8",)  # XML's default (XML 1.0, 4.3.3)
    # feedparser reads a gb2312 label as its superset gb18030.
    if any(decodes(body, "gb18030" if label == "gb2312" else label) for label in labels):
        return None
    found = redecode(body)
    if found is None or found.codec == "cp1252":
        return None
    return found.text.encode("utf-8"), f"declared {labels[0]}, {found.describe()}"


def _declared_labels(body: bytes, headers: Mapping[str, str]) -> tuple[str, ...]:
    """The Content-Type charset and the XML declaration's encoding (feedparser tries both)."""
    labels = []
    if (match := _HTTP_CHARSET.search(headers.get("content-type", ""))) is not None:
        labels.append(match.group(1).lower())
    if (decl := _XML_DECL_ENCODING.match(body[:1024])) is not None:
        labels.append(decl.group(1).decode("ascii").lower())
    return tuple(labels)


def _declared_encoding(body: bytes, headers: Mapping[str, str]) -> str | None:
    match = _HTTP_CHARSET.search(headers.get("content-type", ""))
    if match:
        return match.group(1)
    decl = _XML_DECL_ENCODING.match(body[:1024])
    return decl.group(1).decode("ascii") if decl else None


# feedparser spends tens of microseconds of Python on every element, deep or flat: a hostile
# document of a few MB of empty elements would take minutes (issue #11). No feed nests deeper
# than a few dozen levels (libxml2 stops at 256 too), and a thousand entries need far fewer
# elements; escaped and CDATA content is text, not elements.
MAX_XML_DEPTH = 256
MAX_XML_ELEMENTS = 200_000
_MARKUP = re.compile(rb"<!\[CDATA\[.*?\]\]>|<!--.*?-->|<(/?)[A-Za-z_][^>]*?(/?)>", re.S)


def too_big_for_feedparser(body: bytes) -> str | None:
    """Why ``body`` is refused before feedparser reads it (too deep, too many elements), or
    None. Stops scanning at the first bound exceeded."""
    depth = elements = 0
    for match in _MARKUP.finditer(body):
        closing, empty = match.group(1), match.group(2)
        if closing is None:  # CDATA or a comment
            continue
        if closing:
            depth -= 1
            continue
        elements += 1
        if elements > MAX_XML_ELEMENTS:
            return f"more than {MAX_XML_ELEMENTS} XML elements: refused"
        if not empty:
            depth += 1
            if depth > MAX_XML_DEPTH:
                return f"XML nested deeper than {MAX_XML_DEPTH} levels: refused"
    return None
