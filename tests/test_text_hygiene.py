"""Control, bidi and other unsafe code points never reach an output (issue #11).

The rule (aggregator/text.py), where process applies it, the renderers applying it again to
stored rows, and the whole offline pipeline from a hostile fixture to all.atom/all.rss/all.json.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import feedparser
import pytest
from lxml import etree

from aggregator.config import parse_config
from aggregator.parse import parse_document
from aggregator.process import clean_html, html_to_text, normalise_entries, truncate_text
from aggregator.render import render_atom, render_jsonfeed, render_rss
from aggregator.scheduler import run_once
from aggregator.store import open_store
from aggregator.text import clean_markup, clean_text
from aggregator.types import Channel, Enclosure, Provenance, StoredEntry

from .conftest import ROOT

JING = shutil.which("jing")
ATOM_RNC = ROOT / "tests" / "data" / "schemas" / "atom.rnc"

# One of each class no output may carry, by name.
UNSAFE = {
    "NUL": "\x00",
    "SOH": "\x01",
    "VT": "\x0b",
    "FF": "\x0c",
    "US": "\x1f",
    "DEL": "\x7f",
    "C1 PAD": "\x80",
    "C1 NEL": "\x85",
    "C1 APC": "\x9f",
    "LRE": "\u202a",
    "RLE": "\u202b",
    "PDF": "\u202c",
    "LRO": "\u202d",
    "RLO": "\u202e",
    "LRI": "\u2066",
    "RLI": "\u2067",
    "FSI": "\u2068",
    "PDI": "\u2069",
    # Low before high: the other order is a valid pair once JSON decodes it (U+103FF).
    "low surrogate": "\udfff",
    "high surrogate": "\ud800",
    "U+FDD0": "\ufdd0",
    "U+FDEF": "\ufdef",
    "U+FFFE": "\ufffe",
    "U+FFFF": "\uffff",
    "U+1FFFE": "\U0001fffe",
    "U+10FFFF": "\U0010ffff",
}
# Dropped from plain text only: HTML keeps U+200B as a line-break hint.
INVISIBLE = {"ZWSP": "\u200b", "BOM": "\ufeff"}
PLAIN_UNSAFE = {**UNSAFE, **INVISIBLE}
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # man ZWJ woman ZWJ girl
ENGLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"  # tag chars
KEPT = {
    "tab": "\t",
    "LF": "\n",
    "CR": "\r",
    "NBSP": "\xa0",
    "soft hyphen": "\xad",
    "ZWNJ": "\u200c",
    "ZWJ": "\u200d",
    "LRM": "\u200e",
    "RLM": "\u200f",
    "ALM": "\u061c",
    "line separator": "\u2028",
    "word joiner": "\u2060",
    "ideographic space": "\u3000",
    "replacement": "\ufffd",
    "U+1FFFD": "\U0001fffd",
    "CJK ext. B": "\U00020000",
    "family emoji": FAMILY,
    "England flag": ENGLAND,
    "CJK": "工业互联网",
    "Arabic": "مرحبا",
}
EVERY_UNSAFE = "".join(PLAIN_UNSAFE.values())


def _found(text: str, classes: dict[str, str] = PLAIN_UNSAFE) -> list[str]:
    return [name for name, char in classes.items() if char in text]


# --- the rule -----------------------------------------------------------------------------


@pytest.mark.parametrize("char", UNSAFE.values(), ids=UNSAFE.keys())
def test_unsafe_code_points_are_dropped_from_text_and_markup(char: str) -> None:
    assert clean_text(f"a{char}b") == "ab"
    assert clean_markup(f"<p title='a{char}b'>c{char}d</p>") == "<p title='ab'>cd</p>"


@pytest.mark.parametrize("char", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_invisible_characters_are_dropped_from_plain_text_only(char: str) -> None:
    assert clean_text(f"Pay{char}Pal") == "PayPal"
    assert clean_markup(f"<p>long{char}word</p>") == f"<p>long{char}word</p>"


@pytest.mark.parametrize("kept", KEPT.values(), ids=KEPT.keys())
def test_legitimate_characters_are_kept(kept: str) -> None:
    assert clean_text(f"a{kept}b") == f"a{kept}b"
    assert clean_markup(f"a{kept}b") == f"a{kept}b"


def test_everything_at_once_leaves_only_the_text() -> None:
    assert clean_text(f"{EVERY_UNSAFE}工业{EVERY_UNSAFE}{FAMILY}{EVERY_UNSAFE}") == f"工业{FAMILY}"


# --- process: where plain text and cleaned HTML are produced ------------------------------


def _json_feed(item: dict[str, Any], **feed: Any) -> bytes:
    # ensure_ascii: JSON carries every code point escaped, lone surrogates and NUL included.
    document = {"version": "https://jsonfeed.org/version/1.1", "title": "Feed", **feed}
    return json.dumps({**document, "items": [item]}, ensure_ascii=True).encode("ascii")


HOSTILE_ITEM = {
    "id": "hostile-1",
    "url": "https://example.com/1",
    "title": f"DEL\x7f RLO\u202eevil\u202c ZWSP\u200b {EVERY_UNSAFE}工业互联网 {FAMILY}",
    "authors": [{"name": f"Jane{EVERY_UNSAFE} Doe"}],
    "tags": [f"news{EVERY_UNSAFE}", f"{EVERY_UNSAFE}", "科技"],
    "summary": f"Sum{EVERY_UNSAFE}mary {ENGLAND}",
    "content_html": (
        f'<p title="t{EVERY_UNSAFE}t">Body{EVERY_UNSAFE} text &#x202E;x&#1;y&#x7f;z&#xFDD0;'
        f' {FAMILY}</p><a href="https://example.com/a{UNSAFE["RLO"]}b">link</a>'
    ),
    "date_published": "2021-03-22T04:04:00Z",
}


def test_normalised_entry_carries_no_unsafe_code_point() -> None:
    feed = parse_document(_json_feed(HOSTILE_ITEM), source_id="s")
    (entry,), warnings = normalise_entries(feed, source_id="s", feed_url="https://example.com/f")
    assert warnings == ()
    assert entry.title == f"DEL RLOevil ZWSP 工业互联网 {FAMILY}"
    assert entry.author == "Jane Doe"
    assert entry.categories == ("news", "科技")
    assert entry.summary == f"Summary {ENGLAND}"
    for field in (entry.title, entry.norm_title, entry.summary, *entry.categories):
        assert _found(field) == [], field
    assert _found(entry.content_html, UNSAFE) == []
    assert f"Body text xyz {FAMILY}" in html_to_text(entry.content_html)


def test_lone_surrogates_no_longer_cost_the_entry() -> None:
    """nh3 refuses text UTF-8 cannot encode: the entry used to be skipped with a warning."""
    item = {"id": "1", "title": "a\ud800b", "content_html": "<p>x\udfffy</p>"}
    feed = parse_document(_json_feed(item), source_id="s")
    (entry,), warnings = normalise_entries(feed, source_id="s", feed_url="https://e.com/f")
    assert warnings == ()
    assert (entry.title, entry.content_html) == ("ab", "<p>xy</p>")


def test_character_references_in_html_cannot_smuggle_them_in() -> None:
    refs = "".join(f"&#x{ord(char):x};" for char in UNSAFE.values())
    cleaned = clean_html(f'<p title="a{refs}b">c{refs}d</p>', base=None)
    # HTML turns &#0; and surrogate references into U+FFFD, &#x80;-&#x9f; into windows-1252.
    assert _found(html.unescape(cleaned), UNSAFE) == []
    assert _found(html_to_text(f"T{refs}itle"), PLAIN_UNSAFE) == []


def test_feed_title_is_plain_text_too() -> None:
    from aggregator.prepare import prepare
    from aggregator.types import Fetched

    body = _json_feed({"id": "1", "title": "t"}, title=f"Feed{EVERY_UNSAFE} 虎嗅")
    prepared = prepare(Fetched("s", "https://e.com/f", 200, body))
    assert prepared.title == "Feed 虎嗅"


def test_truncation_keeps_emoji_sequences_whole() -> None:
    text = "x" * 9 + FAMILY + " tail"
    for limit in range(10, 15):
        head = truncate_text(text, limit).removesuffix("…")
        assert head in ("x" * 9, "x" * 9 + FAMILY), (limit, head)
    flagged = "y" * 9 + ENGLAND + " tail"
    assert truncate_text(flagged, 12).removesuffix("…") in ("y" * 9, "y" * 9 + ENGLAND)


# --- render: stored rows from before the rule ---------------------------------------------

CHANNEL = Channel(name="all", title=f"All{EVERY_UNSAFE}", base_url="https://f.example/")
OLD_ROW = StoredEntry(
    uid=f"urn:uuid:00000000-0000-4000-8000-00000000000{UNSAFE['SOH']}1",
    title=f"DEL\x7f RLO\u202eevil\u202c ZWSP\u200b {EVERY_UNSAFE} 工业互联网 {FAMILY}",
    link=f"https://example.com/p{UNSAFE['NUL']}{UNSAFE['RLO']}",
    author=f"Jane{EVERY_UNSAFE} Doe",
    published_at=datetime(2021, 3, 22, 4, 4, tzinfo=UTC),
    updated_at=datetime(2021, 3, 22, 6, tzinfo=UTC),
    content_html=f'<p title="a{EVERY_UNSAFE}b">c{EVERY_UNSAFE}d {FAMILY}</p>',
    summary=f"Sum{EVERY_UNSAFE}mary",
    thumbnail=f"https://example.com/t{UNSAFE['FF']}.png",
    categories=(f"news{EVERY_UNSAFE}", "科技"),
    enclosures=(
        Enclosure(f"https://example.com/e{UNSAFE['US']}.mp3", f"audio/mpeg{UNSAFE['DEL']}"),
    ),
    group=f"g{EVERY_UNSAFE}",
    sources=(
        Provenance(
            source_id=f"src{UNSAFE['VT']}",
            source_title=f"Source{EVERY_UNSAFE}",
            source_url=f"https://example.com/feed{UNSAFE['U+FFFE']}",
            feed_link=f"https://example.com/{UNSAFE['LRI']}",
            link=f"https://example.com/p{UNSAFE['C1 NEL']}",
            guid=None,
        ),
    ),
)


def _xml_strings(data: bytes) -> Iterator[str]:
    """Every text and attribute value of an XML document, and the HTML inside each, decoded."""
    root = etree.fromstring(data)  # raises on anything not well-formed
    for element in root.iter():
        for value in (element.text, element.tail, *element.attrib.values()):
            if value:
                yield value
                yield html.unescape(value)  # escaped HTML (Atom type="html", RSS description)


def _json_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
        yield html.unescape(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item)


def _atom_is_valid(data: bytes, tmp_path: Path) -> None:
    parsed = feedparser.parse(BytesIO(data))
    assert not parsed.bozo, parsed.get("bozo_exception")
    if JING is None:  # the RELAX NG check needs jing (apt-get install jing)
        return
    path = tmp_path / "check.atom"
    path.write_bytes(data)
    done = subprocess.run([JING, "-c", str(ATOM_RNC), str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_xml_renderers_write_old_rows_as_well_formed_clean_xml(tmp_path: Path) -> None:
    for render in (render_atom, render_rss):
        data = render(CHANNEL, [OLD_ROW])
        strings = list(_xml_strings(data))
        assert [s for s in strings if _found(s, UNSAFE)] == [], render.__name__
        assert any(f"RLOevil ZWSP  工业互联网 {FAMILY}" in s for s in strings)
        assert not any(_found(s, INVISIBLE) for s in strings if "evil" in s or "Jane" in s)
    _atom_is_valid(render_atom(CHANNEL, [OLD_ROW]), tmp_path)


def test_json_feed_writes_old_rows_under_the_plain_text_rule() -> None:
    document = json.loads(render_jsonfeed(CHANNEL, [OLD_ROW]))
    assert [s for s in _json_strings(document) if _found(s, UNSAFE)] == []
    (item,) = document["items"]
    assert item["title"] == f"DEL RLOevil ZWSP  工业互联网 {FAMILY}"
    assert item["authors"] == [{"name": "Jane Doe"}]
    assert item["tags"] == ["news", "科技"]
    assert item["summary"] == "Summary"
    assert document["title"] == "All"


# --- the whole offline pipeline -----------------------------------------------------------

RSS_FIXTURE = f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel>
<title>RSS{UNSAFE["DEL"]}{UNSAFE["RLO"]} 源</title><link>https://rss.example/</link>
<description>d</description>
<item>
  <title>DEL\x7f RLO\u202eevil\u202c ZWSP\u200b C1\x85\x9f {UNSAFE["U+FDD0"]}{UNSAFE["U+1FFFE"]}工业互联网 {FAMILY}</title>
  <link>https://rss.example/1</link><guid>rss-1</guid>
  <author>ops@rss.example (Ops{UNSAFE["PDI"]}{UNSAFE["FSI"]})</author>
  <category>tech{UNSAFE["LRO"]}{INVISIBLE["ZWSP"]}</category>
  <description>&lt;p title="x&amp;#x202E;y&amp;#1;"&gt;Body&amp;#x202E; &amp;#x7f;text{UNSAFE["RLE"]} {ENGLAND}&lt;/p&gt;</description>
  <pubDate>Mon, 22 Mar 2021 04:04:00 GMT</pubDate>
</item>
</channel></rss>
"""  # noqa: E501  (one item on few lines: the fixture reads like a feed)


@pytest.fixture
def outputs(tmp_path: Path) -> dict[str, bytes]:
    (tmp_path / "hostile.json").write_bytes(_json_feed(HOSTILE_ITEM, title=f"J{EVERY_UNSAFE}"))
    (tmp_path / "hostile.rss").write_bytes(RSS_FIXTURE.encode("utf-8"))
    config = parse_config(
        {
            "storage": {"url": "sqlite:///state/test.db"},
            "output": {"dir": "public", "base_url": "https://f.example/"},
            "sources": [
                {"id": "json", "url": "https://json.example/f", "fixture": "hostile.json"},
                {"id": "rss", "url": "https://rss.example/f", "fixture": "hostile.rss"},
            ],
        },
        path=tmp_path / "aggregator.toml",
    )
    store = open_store(config.storage.url)
    try:
        report = run_once(config, store, now=datetime(2026, 1, 1, tzinfo=UTC), offline=True)
    finally:
        store.close()
    assert [o.source_id for o in report.outcomes if not o.ok] == []
    return {
        name: (tmp_path / "public" / name).read_bytes()
        for name in ("all.atom", "all.rss", "all.json")
    }


def test_pipeline_outputs_carry_no_unsafe_code_point(
    outputs: dict[str, bytes], tmp_path: Path
) -> None:
    strings = {
        "all.atom": list(_xml_strings(outputs["all.atom"])),
        "all.rss": list(_xml_strings(outputs["all.rss"])),
        "all.json": list(_json_strings(json.loads(outputs["all.json"]))),
    }
    for name, values in strings.items():
        assert [s for s in values if _found(s, UNSAFE)] == [], name
        # The measured case of issue #11: DEL, RLO ... PDF and ZWSP in a title.
        assert any(f"DEL RLOevil ZWSP 工业互联网 {FAMILY}" == s for s in values), name
        # feedparser reads C1 controls in RSS as the windows-1252 characters they stand for.
        assert any(f"DEL RLOevil ZWSP C1…Ÿ 工业互联网 {FAMILY}" == s for s in values), name
        assert any(ENGLAND in s for s in values), name
        for plain in ("Jane Doe", "news", "tech", "科技"):
            assert plain in values, (name, plain)
    for name in ("all.atom", "all.json"):  # RSS has no summary beside the content
        assert f"Summary {ENGLAND}" in strings[name]
    _atom_is_valid(outputs["all.atom"], tmp_path)
    assert not feedparser.parse(BytesIO(outputs["all.rss"])).bozo


def test_every_code_point_either_rule_drops_is_one_python_does_not_print() -> None:
    """The fast path of both rules (``_nothing_to_drop``) skips the regex for a value that
    prints once tab, LF and CR are out: right only if no code point the rules drop prints.
    Checked for every code point, alone and inside printable text (issue #16)."""
    from aggregator.text import _MARKUP, _PLAIN, _drop, _nothing_to_drop

    for code in range(0x110000):
        char = chr(code)
        dropped = _MARKUP.sub(_drop, char) != char or _PLAIN.sub(_drop, char) != char
        if dropped:
            assert not char.isprintable(), hex(code)
            assert not _nothing_to_drop(f"a{char}b"), hex(code)
    for value in ("plain ascii", "中文，标点。", "tab\tline\nfeed\r\n", "emoji \U0001f468\u200d"):
        assert clean_markup(value) == value
    assert clean_text("a\u200bb\ufeff") == "ab" and clean_markup("a\u200bb") == "a\u200bb"
    assert clean_markup("\u00a0x\x85\u202e") == "\u00a0x"  # unprintable: through the regex
