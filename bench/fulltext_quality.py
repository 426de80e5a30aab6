"""Which extraction library gives full text (issue #15): readability-lxml against trafilatura
on the saved pages of ``tests/data/fulltext``, each through the same decoding, lazy-image fix
and ``clean_html`` as the aggregator's (``aggregator.process.article``).

    .venv/bin/pip install trafilatura readability-lxml
    .venv/bin/python bench/fulltext_quality.py

Prints, per page and library, word (CJK: character) precision / recall / F1 against the gold
article and the share of its images kept with their real src, then the means and the time
per page. Only one of the two libraries is a dependency (the chosen one).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator.process.article import by_readability, decode_page, prepared_page
from aggregator.process.html import clean_html
from tests.fulltext_gold import Page, Score, pages, score


def readability(page: Page) -> str:
    soup = prepared_page(decode_page(page.body, page.content_type))
    return by_readability(soup, page.url)


def trafilatura(page: Page) -> str:
    import trafilatura as lib

    soup = prepared_page(decode_page(page.body, page.content_type))
    found = lib.extract(
        str(soup),
        url=page.url,
        output_format="html",
        include_images=True,
        include_links=True,
        include_tables=True,
        include_comments=False,
    )
    return found or ""


EXTRACTORS: dict[str, Callable[[Page], str]] = {
    "readability-lxml": readability,
    "trafilatura": trafilatura,
}


def main() -> None:
    results: dict[str, list[Score]] = {name: [] for name in EXTRACTORS}
    timings: dict[str, float] = dict.fromkeys(EXTRACTORS, 0.0)
    for extract in EXTRACTORS.values():  # warm-up: imports and lazy tables out of the timing
        extract(pages()[0])
    print(f"{'page':26} {'library':17} {'prec':>5} {'rec':>5} {'F1':>5} {'images':>6}")
    for page in pages():
        for name, extract in EXTRACTORS.items():
            started = time.perf_counter()
            html = clean_html(extract(page), base=page.url)
            timings[name] += time.perf_counter() - started
            s = score(page, html)
            results[name].append(s)
            print(f"{page.file:26} {name:17} {s.precision:5.2f} {s.recall:5.2f} {s.f1:5.2f} "
                  f"{s.images:6.2f}")  # fmt: skip
    print()
    for name, scores in results.items():
        mean = statistics.fmean
        print(
            f"{name:17} mean precision {mean(s.precision for s in scores):.3f}  recall "
            f"{mean(s.recall for s in scores):.3f}  F1 {mean(s.f1 for s in scores):.3f}  "
            f"min F1 {min(s.f1 for s in scores):.3f}  images {mean(s.images for s in scores):.2f}"
            f"  {1000 * timings[name] / len(scores):.1f} ms/page"
        )


if __name__ == "__main__":
    main()
