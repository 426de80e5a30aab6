"""Entry HTML cleaning: lazy images, absolute URLs, tracking parameters, allowlist sanitising.

Pure: no I/O, no clock. Everything an output shows passes through ``clean_html``, every plain
text through ``html_to_text`` or ``cleaned_html_to_text`` (both apply ``aggregator.text``).
"""

from __future__ import annotations

import re
import unicodedata
from contextvars import ContextVar
from html import unescape

import nh3
from bs4 import BeautifulSoup, Tag

from ..text import clean_markup, clean_text
from .links import absolutise, strip_tracking

# Attributes lazy-loading scripts use for the real image URL, in order of preference.
LAZY_SRC_ATTRS = ("data-src", "data-original", "data-lazy-src", "_src", "data-actualsrc")
_PLACEHOLDER = re.compile(
    r"^(data:|about:blank|javascript:)|(blank|spacer|placeholder|pixel)\.(gif|png)", re.I
)

_TAGS = nh3.ALLOWED_TAGS | {"audio", "video", "source", "picture", "figure", "figcaption"}
_ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "a": {"href", "hreflang", "title"},
    "img": {"src", "srcset", "alt", "title", "width", "height", "referrerpolicy"},
    "video": {"src", "poster", "controls", "width", "height"},
    "audio": {"src", "controls"},
    "source": {"src", "srcset", "type", "media"},
    "abbr": {"title"},
    "time": {"datetime"},
    "*": {"lang", "dir"},
}
_SCHEMES = {"http", "https", "mailto"}


def _lazy_src(img: Tag) -> str | None:
    for attr in LAZY_SRC_ATTRS:
        value = img.get(attr)
        if isinstance(value, str) and value.strip() and not value.startswith("data:"):
            return value.strip()
    return None


def _fix_images(soup: BeautifulSoup) -> None:
    for img in soup.find_all("img"):
        lazy = _lazy_src(img)
        src = img.get("src")
        if lazy and (not isinstance(src, str) or not src.strip() or _PLACEHOLDER.search(src)):
            img["src"] = lazy
        for attr in LAZY_SRC_ATTRS:
            if attr in img.attrs:
                del img[attr]


_URL_ATTR_NAMES = frozenset({"href", "src", "poster", "cite"})


# The base URL of the entry being cleaned, read by the filter of the one reusable cleaner (a
# per-call cleaner costs more to build than to run; tests/test_seams.py proves them equal).
_BASE: ContextVar[str | None] = ContextVar("clean_html_base", default=None)


def _filter_attribute(tag: str, attr: str, value: str) -> str | None:
    """Called by the sanitiser for each allowed attribute: URLs made absolute, trackers cut."""
    base = _BASE.get()
    if attr in _URL_ATTR_NAMES:
        url = absolutise(value, base)
        # nh3 checks the scheme of href and src itself, not of cite (blockquote, q, del, ins)
        return strip_tracking(url) if url and _allowed_scheme(url) else None
    if attr == "srcset":
        return _absolutise_srcset(value, base)
    return value


def _allowed_scheme(url: str) -> bool:
    scheme, colon, _ = url.partition(":")
    return not colon or scheme.strip().lower() in _SCHEMES


def _absolutise_srcset(srcset: str, base: str | None) -> str | None:
    out = []
    for candidate in srcset.split(","):
        bits = candidate.strip().split(None, 1)
        if bits:
            url = absolutise(bits[0], base)
            if not url or not _allowed_scheme(url):  # (nh3 leaves srcset's schemes alone)
                continue
            bits[0] = url
            out.append(" ".join(bits))
    return ", ".join(out) or None


_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    attributes=_ATTRIBUTES,
    attribute_filter=_filter_attribute,
    url_schemes=_SCHEMES,
    strip_comments=True,
    link_rel="noopener noreferrer",
    set_tag_attribute_values={"img": {"referrerpolicy": "no-referrer"}},
)

# Lazy-loaded images are the one thing the sanitiser cannot fix (it would have to move one
# attribute's value into another): bs4 does that, for the entries that have them.
_LAZY = re.compile(r"\b(?:" + "|".join(LAZY_SRC_ATTRS) + r")\s*=", re.IGNORECASE)


# Hostile entry HTML (issue #11): the sanitiser's time grows with the square of the nesting
# depth, and one entry's size with what the body cap lets through. No article needs more.
MAX_HTML_CHARS = 1_000_000  # longer entry HTML is cut (at a tag boundary) before sanitising
MAX_DEPTH = 100  # deeper nesting is flattened to its text
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)[^>]*?(/?)>")
# Elements that never nest (void) or that the HTML parser closes by itself when the next one
# opens: counting them would make ordinary markup look deep.
_FLAT = frozenset(
    ("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
     "track", "wbr", "param", "p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup",
     "colgroup", "thead", "tbody", "tfoot", "rb", "rt", "rp")
)  # fmt: skip


def nesting_depth(html: str) -> int:
    """How deep elements nest in ``html``, counting only elements that can nest."""
    depth = deepest = 0
    for closing, name, selfclosing in _TAG.findall(html):
        if selfclosing or name.lower() in _FLAT:
            continue
        if closing:
            depth = max(0, depth - 1)
        else:
            depth += 1
            deepest = max(deepest, depth)
    return deepest


def _bounded(html: str) -> str:
    """``html`` cut to ``MAX_HTML_CHARS`` and, when nested deeper than ``MAX_DEPTH``, flattened
    to its escaped text (formatting lost, words kept)."""
    if len(html) > MAX_HTML_CHARS:
        cut = MAX_HTML_CHARS
        opened = html.rfind("<", 0, cut)
        if opened > html.rfind(">", 0, cut):  # not inside a tag
            cut = opened
        html = html[:cut]
    if html.count("<") > MAX_DEPTH and nesting_depth(html) > MAX_DEPTH:
        text = " ".join(unescape(_TAG.sub(" ", html)).split())
        html = "<p>" + text.replace("&", "&amp;").replace("<", "&lt;") + "</p>"
    return html


def clean_html(html: str | None, *, base: str | None) -> str:
    """Return sanitised HTML: lazy images resolved, URLs absolute, trackers dropped, allowlisted.

    The nh3 (ammonia) allowlist does the sanitising and, through its attribute filter, the URL
    rewriting in the same pass; bs4 only moves lazy-image sources into ``src``. Oversized or
    absurdly nested HTML is bounded first (``_bounded``).
    """
    if not html or not html.strip():
        return ""
    html = _bounded(html)
    if ("data-" in html or "_src" in html) and _LAZY.search(html):
        soup = BeautifulSoup(html, "html.parser")
        _fix_images(soup)
        html = str(soup)
    token = _BASE.set(base)
    try:
        # After the sanitiser, which decodes character references (&#x202E; is U+202E): text
        # and attribute values alike lose what no output may carry.
        cleaned = _sanitise(_CLEANER, html)
        if "<a" in cleaned and "<table" in cleaned and cleaned.count("<a") > 1:
            # An <a> the HTML parser moved inside another (adoption agency, foster parenting)
            # serialises to markup that parses differently: once more reaches a fixed point.
            cleaned = _sanitise(_CLEANER, cleaned)
        # (A leading U+FEFF would be taken for a byte order mark and dropped the next time.)
        return clean_markup(cleaned).strip().lstrip("\ufeff").strip()
    finally:
        _BASE.reset(token)


def _sanitise(cleaner: nh3.Cleaner, html: str) -> str:
    try:
        return cleaner.clean(html)
    except UnicodeEncodeError:
        # A lone surrogate (a JSON Feed's "\ud800"): nh3 takes only text UTF-8 can encode.
        return cleaner.clean(clean_markup(html))


_BLOCKS = ("p", "div", "br", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6",
           "blockquote", "pre", "figure", "figcaption", "section", "article", "table", "ul", "ol",
           "dd", "dt", "hr")  # fmt: skip


_BLOCK_TAG = re.compile(r"<(?=/?(?:" + "|".join(_BLOCKS) + r")\b)", re.IGNORECASE)
_IMG_SRC = re.compile(r'<img\b[^>]*?\ssrc="([^"]+)"')


def html_to_text(html: str | None) -> str:
    """Visible text of an HTML fragment, whitespace collapsed.

    Block elements separate words; inline ones do not ("<a>x</a>," stays "x,"). The sanitiser
    with no allowed tags does the tag stripping (scripts and styles go with their content).
    """
    if not html:
        return ""
    if "<" not in html and "&" not in html:
        return " ".join(clean_text(html).split())
    spaced = _BLOCK_TAG.sub(" <", html)
    return " ".join(clean_text(unescape(_sanitise(_TEXT_CLEANER, spaced))).split())


# No tags at all: what is left is the text, escaped (one reusable cleaner: building one per call
# costs more than cleaning).
_TEXT_CLEANER = nh3.Cleaner(tags=set(), attributes={})
# A tag as the sanitiser writes it: attribute values double-quoted, with no '"' inside
# (escaped as &quot;), though '>' may be.
_SERIALISED_TAG = re.compile(r'<[^>"]*(?:"[^"]*"[^>"]*)*>')


def cleaned_html_to_text(html: str) -> str:
    """``html_to_text`` of what ``clean_html`` returned, without parsing it a second time.

    The sanitiser's output is plain to read: no comments, scripts or styles, every '<' and '>'
    of text escaped, every tag in one shape; dropping the tags and unescaping the rest gives
    the same text as parsing it again (tested against ``html_to_text`` over the corpus) at a
    tenth of the cost. Only for ``clean_html``'s output: anything else goes to
    ``html_to_text``.
    """
    if "<" not in html and "&" not in html:
        return " ".join(clean_text(html).split())
    spaced = _BLOCK_TAG.sub(" <", html)
    return " ".join(clean_text(unescape(_SERIALISED_TAG.sub("", spaced))).split())


def first_image(html: str) -> str | None:
    """The ``src`` of the first image in already-cleaned HTML (nh3 output: double quotes)."""
    found = _IMG_SRC.search(html)
    return unescape(found.group(1)) if found else None


def _is_wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


_ZWJ = "\u200d"


def _continues_previous(text: str, index: int) -> bool:
    """Whether ``text[index]`` belongs with the character before it: a combining mark, or a
    part of an emoji sequence (after or before a ZWJ, a variation selector, a skin tone, the
    tag characters of a flag such as England's)."""
    char = text[index]
    return bool(
        unicodedata.combining(char)
        or char == _ZWJ
        or text[index - 1] == _ZWJ
        or "\ufe00" <= char <= "\ufe0f"
        or "\U0001f3fb" <= char <= "\U0001f3ff"
        or "\U000e0020" <= char <= "\U000e007f"
    )


def truncate_text(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters plus an ellipsis.

    Words in space-separated scripts are not split; CJK text (no spaces) is cut between
    characters; combining marks stay with their base character, emoji sequences whole.
    """
    if len(text) <= limit:
        return text
    cut = limit
    while cut > 0 and _continues_previous(text, cut):
        cut -= 1
    head = text[:cut]
    last = head[-1:]
    if last and not _is_wide(last) and not text[cut].isspace() and not _is_wide(text[cut]):
        space = head.rfind(" ")
        if space >= limit * 0.6:
            head = head[:space]
    return head.rstrip(" ,.;:，。；：、") + "…"
