"""Full text for summary-only feeds (issue #15): the article of each entry a poll will add or
update, from the entry's page, in place of the feed's teaser.

What to fetch is decided first, against what the store holds (the same ``decide`` and rules
the store step applies): an entry whose version, the feed's content hash, is stored already
is never fetched again, nor one pruned or dropped by a rule, nor a merge into another
source's story. Pages come through the poll's own client under the tick's caps (per host: the
page's), with its timeouts, body cap and SSRF policy (the source's configured host is trusted,
no other private address). The entry keeps the feed's content hash: the next poll of the same
feed finds it unchanged and fetches nothing. A page that fails leaves the feed's content, with
a warning.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Protocol, TypeVar

from .config import DedupConfig, SourceConfig
from .errors import FetchError
from .fetch import fetch
from .filters import screen
from .prepare import Prepared
from .process import decide
from .process.article import NoArticle, extract_article
from .process.html import first_image
from .schedule import Planner
from .types import Action, Entry, Fetched, Known

if TYPE_CHECKING:
    from .pipeline import Fetcher

log = logging.getLogger(__name__)
T = TypeVar("T")


class PageContext(Protocol):
    """What full text needs of the tick running the poll (``pipeline.PollContext`` has it)."""

    @property
    def fetcher(self) -> Fetcher: ...
    @property
    def planner(self) -> Planner: ...
    @property
    def dedup(self) -> DedupConfig: ...

    def page_slot(self, url: str) -> AbstractAsyncContextManager[None]:
        """Held while a page is fetched: the tick's global cap and the page host's."""

    async def lookup(self, source_id: str, entries: Sequence[Entry]) -> Known:
        """What the store holds of ``entries`` now (``Transaction.known``)."""

    async def offload(self, work: Callable[[], T]) -> T:
        """Run CPU-bound ``work`` (an extraction) off the event loop."""


async def with_full_text(source: SourceConfig, prepared: Prepared, ctx: PageContext) -> Prepared:
    """``prepared`` with the articles of the entries this poll will add or update."""
    known = await ctx.lookup(source.id, prepared.entries)
    wanted = pages_wanted(source, prepared.entries, known, planner=ctx.planner, dedup=ctx.dedup)
    if not wanted:
        return prepared
    found = await asyncio.gather(*(article_of(source, prepared.entries[i], ctx) for i in wanted))
    entries, warnings = list(prepared.entries), list(prepared.warnings)
    for i, (article, warning) in zip(wanted, found, strict=True):
        if article is not None:
            entry = entries[i]
            entries[i] = replace(entry, content_html=article,
                                 thumbnail=entry.thumbnail or first_image(article))  # fmt: skip
        if warning is not None:
            warnings.append(warning)
    return replace(prepared, entries=tuple(entries), warnings=tuple(warnings))


def pages_wanted(
    source: SourceConfig,
    entries: Sequence[Entry],
    known: Known,
    *,
    planner: Planner,
    dedup: DedupConfig,
) -> list[int]:
    """Which entries (by index) get their page: new ones, and updates of the entries whose
    content comes from this source, that the source's rules let in and that have a link."""
    window = timedelta(hours=dedup.title_window_hours)
    verdicts = decide(entries, known, now=planner.now, title_window=window,
                      min_title_length=dedup.min_title_length)  # fmt: skip
    verdicts = screen(verdicts, source.filters, tombstones=known.tombstones)
    return [
        i
        for i, d in enumerate(verdicts)
        if (d.action is Action.NEW or (d.action is Action.UPDATE and d.primary)) and d.entry.link
    ]


async def article_of(
    source: SourceConfig, entry: Entry, ctx: PageContext
) -> tuple[str | None, str | None]:
    """The article of ``entry``'s page, or None and a warning saying why not."""
    assert entry.link is not None
    try:
        page = await fetch_page(source, entry.link, ctx)
        extract = partial(extract_article, page.body or b"", url=page.url,
                          content_type=page.headers.get("content-type"),
                          selector=source.content_selector)  # fmt: skip
        return await ctx.offload(extract), None
    except (FetchError, NoArticle) as exc:
        log.warning("full_text source=%s link=%s error=%r: the feed's content is kept",
                    source.id, entry.link, str(exc))  # fmt: skip
        return None, f"{source.id}: full text of {entry.link}: {exc} (the feed's content kept)"


async def fetch_page(source: SourceConfig, url: str, ctx: PageContext) -> Fetched:
    """GET ``url`` as the source's own feed is fetched (no validators: asked once)."""
    via = ctx.fetcher
    if via.http is None:
        raise FetchError(source.id, "no HTTP client (offline run)")
    async with ctx.page_slot(url):
        return await fetch(via.http, source.id, url, max_bytes=via.max_bytes,
                           timeout_s=via.timeout_s, configured_url=source.url)  # fmt: skip
