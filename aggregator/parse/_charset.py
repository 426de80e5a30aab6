"""Reading documents whose bytes are not valid in their declared encoding. Pure: no I/O, no clock.

Only for documents that fail to decode as declared (issue #11: GB18030 served as UTF-8 came
out as ``ÄãºÃÊÀ½ç``): a correctly declared document never reaches ``redecode``.
"""

from __future__ import annotations

import codecs
import unicodedata
from dataclasses import dataclass

__all__ = ["Redecoded", "decodes", "redecode"]

# More valid multi-byte UTF-8 characters than this per invalid sequence: a UTF-8 document with
# a few broken bytes (a cut-off character, one stray windows-1252 quote). Text in another
# multi-byte encoding forms valid UTF-8 sequences only by chance: GB18030, Big5, EUC-KR,
# EUC-JP and Shift_JIS text, fewer than 1 per 2 errors; 4 keeps a margin of 8 over that, and
# still reads a UTF-8 feed with one broken byte per 16 characters as UTF-8 (tests/test_hostile).
_UTF8_VALID_PER_ERROR = 4
# Markup every format here starts with; an encoding that changes these bytes (UTF-16, EBCDIC)
# is not the one of a document whose markup was readable as ASCII.
_ASCII_PROBE = "<?xml encoding='utf-8'?><rss>{\"items\": []}\n---\ntitle: x\n"
# windows-1252: what WHATWG Encoding and feedparser fall back to for Western text.
_WESTERN = "cp1252"
# Below this many non-ASCII bytes there is no guess: charset-normalizer is right on GB18030
# news text 40 % of the time at 16 bytes (it says Korean cp949), 85 % at 32, 95 % at 64; on
# windows-1251 Russian 80 %, 100 %, 95 % (measured on the seeds' text in a small RSS document).
_MIN_SAMPLE = 32
# charset-normalizer's default 0.2 rejects real GB18030 text full of symbols (★, 、) outright.
_MAX_CHAOS = 0.5
_ASCII_BYTES = bytes(range(0x80))


@dataclass(frozen=True, slots=True)
class Redecoded:
    """A document's text as decoded by ``redecode``, and how."""

    text: str
    codec: str  # Python's name for it: "gb18030", "cp1251", "utf-8"
    replaced: int = 0  # invalid byte sequences replaced by U+FFFD (only for mostly UTF-8)

    def describe(self) -> str:
        """How it was decoded, for a warning: "decoded as gb18030"."""
        if not self.replaced:
            return f"decoded as {self.codec}"
        plural = "s" if self.replaced > 1 else ""
        return f"decoded as {self.codec}, {self.replaced} invalid byte sequence{plural} replaced"


def decodes(body: bytes, label: str) -> bool:
    """Whether ``body`` is valid in the encoding called ``label`` (an unknown label is not)."""
    try:
        body.decode(label)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def redecode(body: bytes) -> Redecoded | None:
    """The most plausible text of ``body``, which is not valid in its declared encoding.

    UTF-8 with a few broken bytes stays UTF-8 (U+FFFD for each); anything else is what
    charset-normalizer finds, except that Latin-script text is read as windows-1252 (below).
    None when nothing plausible decodes it, or there is too little non-ASCII text to tell.
    """
    return _mostly_utf8(body) or _detected(body)


def _mostly_utf8(body: bytes) -> Redecoded | None:
    text = body.decode("utf-8-sig", "replace")
    replaced = text.count("\ufffd") - body.count("\ufffd".encode())
    multibyte = len(text) - len(text.encode("ascii", "ignore")) - replaced
    if replaced and multibyte >= replaced * _UTF8_VALID_PER_ERROR:
        return Redecoded(text, "utf-8", replaced)
    return None


def _detected(body: bytes) -> Redecoded | None:
    if len(body.translate(None, _ASCII_BYTES)) < _MIN_SAMPLE:
        return None
    # Imported here: only misdeclared documents need it, and the parse workers start faster.
    from charset_normalizer import from_bytes

    # preemptive_behaviour=False: the declaration it would trust is the one that just failed.
    for match in from_bytes(body, threshold=_MAX_CHAOS, preemptive_behaviour=False):
        codec = codecs.lookup(match.encoding).name
        if not _ascii_compatible(codec):
            continue
        try:
            text = body.decode(codec)
        except UnicodeDecodeError:
            continue
        if codec != _WESTERN and _latin_script(text) and decodes(body, _WESTERN):
            # charset-normalizer cannot tell the Latin single-byte code pages apart (it reads
            # the corpus's ISO-8859-1 Portuguese and English as cp1250); windows-1252 is the
            # common one, and what feedparser used before.
            return Redecoded(body.decode(_WESTERN), _WESTERN)
        return Redecoded(text, codec)
    return None


def _ascii_compatible(codec: str) -> bool:
    try:
        return _ASCII_PROBE.encode(codec) == _ASCII_PROBE.encode("ascii")
    except UnicodeEncodeError:
        return False


def _latin_script(text: str) -> bool:
    """Whether every non-ASCII letter of ``text`` is a Latin one (é, ñ, ł, ...)."""
    letters = [char for char in set(text) if char > "\x7f" and char.isalpha()]
    return all(unicodedata.name(char, "").startswith("LATIN ") for char in letters)
