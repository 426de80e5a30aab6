"""The code points no output may carry (issue #11). Pure: no I/O; imports nothing but ``re``.

A leaf like ``types`` and ``errors``: process applies the rule where it produces text, render
applies it again when it writes (rows stored before the rule existed).

``clean_markup`` drops, from anything written out (HTML, URLs, ids):

- C0 controls other than tab, LF and CR, and lone surrogates: XML 1.0 forbids them (section
  2.2, the Char production) and lxml refuses them; a surrogate cannot even be encoded.
  CR stays: it is a line break (CRLF), XML-legal, and XML parsers turn it into LF anyway.
- DEL and the C1 controls (U+007F-U+009F): XML-legal but "discouraged" (XML 1.0, 2.2); in
  feeds they are mis-decoded bytes or terminal escape sequences, never text.
- Noncharacters (U+FDD0-U+FDEF and U+nFFFE/U+nFFFF of every plane): "not for interchange"
  (Unicode 15, section 23.7); U+FFFE/U+FFFF are also outside XML's Char.
- The bidi embedding, override and isolate controls (U+202A-U+202E, U+2066-U+2069): they
  reorder what follows them, beyond the field they came in ("Trojan Source",
  CVE-2021-42574), so one title can flip the text after it in a reader's list.

``clean_text`` (plain text: titles, names, categories, summaries) also drops U+200B ZERO WIDTH
SPACE and U+FEFF (a BOM, or the deprecated zero-width no-break space): invisible, no meaning in
a one-line field but a line-break hint that Thai or Khmer text renders the same without, and
the usual way to make two titles look equal but differ (dedup, search, spoofing). HTML keeps
U+200B, where CMSs put it as a break hint in long words and URLs.

Kept on purpose: U+200D ZERO WIDTH JOINER (emoji sequences such as the family emoji need it),
U+200C ZWNJ (Persian and Indic spelling), and the bidi *marks* U+200E LRM, U+200F RLM and
U+061C ALM: each is one zero-width strong character, it cannot reorder a run of text or leak
past the end of its field, and Arabic, Hebrew and Urdu publishers need them to place
punctuation and digits (UAX #9, section 2.6).
"""

from __future__ import annotations

import re

__all__ = ["clean_markup", "clean_text"]

_UNSAFE = (
    "\x00-\x08\x0b\x0c\x0e-\x1f"  # C0 controls but tab, LF, CR
    "\x7f-\x9f"  # DEL, C1 controls
    "\u202a-\u202e\u2066-\u2069"  # bidi embeddings, overrides, isolates
    "\ud800-\udfff"  # lone surrogates
    "\ufdd0-\ufdef\ufffe\uffff"  # noncharacters of the BMP
)
_INVISIBLE = "\u200b\ufeff"  # zero width space, BOM / zero width no-break space
# Every code point from U+1FFFE up is a candidate that ``_drop`` checks: listing the 32 astral
# noncharacters in the class would make the regex scan ~10x slower (sre tests them one by one).
_ASTRAL = "\U0001fffe-\U0010ffff"
_MARKUP = re.compile(f"[{_UNSAFE}{_ASTRAL}]")
_PLAIN = re.compile(f"[{_UNSAFE}{_INVISIBLE}{_ASTRAL}]")


def _drop(match: re.Match[str]) -> str:
    char = match.group()
    # An astral candidate stays unless it is a noncharacter (U+1FFFE, U+1FFFF, ..., U+10FFFF).
    return char if char > "\uffff" and ord(char) & 0xFFFE != 0xFFFE else ""


def _nothing_to_drop(value: str) -> bool:
    """True when ``value`` holds none of the code points either rule may drop.

    Each of them is one Python does not print (categories Cc, Cf, Cs and Cn: a test checks
    every code point), so a value that prints once tab, LF and CR are taken out has none.
    ASCII, the common case of HTML and URLs, is checked as bytes (~1 ns a character), the rest
    with ``isprintable`` (~2 ns): the regex's class of ranges costs ~5 ns a character, 10 µs
    for 2 KB of an entry's HTML, paid by every entry a feed writes (issue #16). A value that
    does not print (a no-break space, say) goes through the regex as before.
    """
    if value.isascii():
        return not value.encode("ascii").translate(None, _ASCII_KEPT)
    return value.replace("\n", "").replace("\t", "").replace("\r", "").isprintable()


_ASCII_KEPT = bytes([0x09, 0x0A, 0x0D, *range(0x20, 0x7F)])  # tab, LF, CR and the printable


def clean_markup(value: str) -> str:
    """``value`` without the code points no output may carry (see the module docstring).

    For HTML, URLs and ids: safe to run over serialised HTML, since none of these characters
    can be part of a tag, and the sanitiser writes every other character as itself.
    """
    return value if _nothing_to_drop(value) else _MARKUP.sub(_drop, value)


def clean_text(value: str) -> str:
    """Plain text without unsafe code points, zero width spaces and stray BOMs.

    Whitespace is left as it is: the callers collapse it where a field is one line.
    """
    return value if _nothing_to_drop(value) else _PLAIN.sub(_drop, value)
