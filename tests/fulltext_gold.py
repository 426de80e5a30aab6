"""The saved article pages of ``tests/data/fulltext`` and how close an extraction is to each
page's gold article (issue #15): word (CJK: character) precision, recall and F1, and the
article's images found with their real, absolute ``src``. Used by ``tests/test_fulltext.py``
and by ``bench/fulltext_quality.py``, which compares the extraction libraries."""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path

from aggregator.process.article import decode_page, prepared_page
from aggregator.process.html import cleaned_html_to_text

PAGES_DIR = Path(__file__).parent / "data" / "fulltext"
_TOKEN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\W\d_]+|\d+")
_SRC = re.compile(r'<img\b[^>]*?\ssrc="([^"]+)"')


@dataclass(frozen=True)
class Page:
    file: str
    url: str
    gold: str
    selector: str
    images: tuple[str, ...]
    content_type: str | None = None
    gold_exclude: tuple[str, ...] = field(default=())

    @property
    def body(self) -> bytes:
        return (PAGES_DIR / self.file).read_bytes()

    def gold_text(self) -> str:
        soup = prepared_page(decode_page(self.body, self.content_type))
        for node in soup.select(", ".join(self.gold_exclude)) if self.gold_exclude else ():
            node.decompose()
        return " ".join(node.get_text(" ") for node in soup.select(self.gold))


def pages() -> list[Page]:
    raw = tomllib.loads((PAGES_DIR / "pages.toml").read_text(encoding="utf-8"))
    return [
        Page(
            **{**p, "images": tuple(p["images"]), "gold_exclude": tuple(p.get("gold_exclude", ()))}
        )
        for p in raw["pages"]
    ]


def tokens(text: str) -> Counter[str]:
    return Counter(_TOKEN.findall(unicodedata.normalize("NFKC", text).casefold()))


@dataclass(frozen=True)
class Score:
    precision: float
    recall: float
    images: float  # share of the article's images present, with their real src

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score(page: Page, article_html: str) -> Score:
    """How close ``article_html`` (already through ``clean_html``) is to the page's gold."""
    got, want = tokens(cleaned_html_to_text(article_html)), tokens(page.gold_text())
    common = sum((got & want).values())
    srcs = {unescape(s) for s in _SRC.findall(article_html)}
    found = sum(1 for image in page.images if image in srcs)
    return Score(
        precision=common / max(1, sum(got.values())),
        recall=common / max(1, sum(want.values())),
        images=found / len(page.images) if page.images else 1.0,
    )
