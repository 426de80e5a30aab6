"""The poll of one source, top to bottom: fetch -> unchanged? -> prepare -> decide -> store.

``poll_source`` is the whole life of one source in one poll, its failure paths included. What
it needs from outside comes through a ``PollContext``: a slot under the tick's caps, where to
prepare (inline or in a worker process), and how to store (a unit of work on the storing
thread) or to record a poll that stored nothing (batched). The scheduler provides the context
and knows nothing about what a poll does. ``SourceError`` is caught here (a failing source never
stops a tick); anything else propagates to the scheduler.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial
from time import perf_counter  # durations of requests, not time of day
from typing import Protocol, TypeVar

from .config import DedupConfig, SourceConfig
from .errors import FetchError, SourceError
from .fetch import MAX_BYTES, Http, fetch, freshness_s, read_fixture
from .filters import screen
from .fulltext import with_full_text
from .prepare import Prepared
from .process import decide
from .schedule import Planner
from .store import Transaction
from .types import (
    Action,
    Decision,
    Entry,
    FeedHints,
    Fetched,
    Known,
    PollHistory,
    PollOutcome,
    PollRecord,
    PollState,
)

log = logging.getLogger(__name__)

Write = Callable[[Transaction], PollOutcome]  # one poll's writes, run in a unit of work
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Fetcher:
    """Where documents come from: fixtures (``offline``) or HTTP, and the per-request limits."""

    http: Http | None
    offline: bool = False
    max_bytes: int = MAX_BYTES
    timeout_s: float = 30.0


class Slot(Protocol):
    """A request's place: ``await enter()`` takes it (it may wait), ``leave()`` gives it back."""

    def enter(self) -> Awaitable[None]: ...
    def leave(self) -> None: ...


class PollContext(Protocol):
    """What a poll needs from the tick running it."""

    @property
    def fetcher(self) -> Fetcher: ...
    @property
    def planner(self) -> Planner: ...
    @property
    def dedup(self) -> DedupConfig: ...
    @property
    def explain(self) -> bool:
        """Keep each poll's history and name the entries dropped (``[explain]``, issue #14)."""

    def slot(self, source: SourceConfig, state: PollState | None) -> Slot:
        """Held while the request is in flight: the tick's global and per-host caps."""

    async def prepare(self, fetched: Fetched) -> Prepared:
        """``prepare.prepare(fetched)``, inline or in a worker process."""

    async def store(self, write: Write) -> PollOutcome:
        """Run ``write`` in a unit of work (with other polls' writes, maybe) and return its
        outcome once committed."""

    def record(self, record: PollRecord) -> None:
        """Write the bookkeeping of a poll that stored no entries (batched, later)."""

    # For sources with full text (``fulltext.PageContext``, issue #15):
    def page_slot(self, url: str) -> AbstractAsyncContextManager[None]:
        """Held while a page is fetched: the tick's global cap and the page host's."""

    async def lookup(self, source_id: str, entries: Sequence[Entry]) -> Known:
        """What the store holds of ``entries`` now (``Transaction.known``)."""

    async def offload(self, work: Callable[[], T]) -> T:
        """Run CPU-bound ``work`` (an extraction) off the event loop."""


async def poll_source(
    source: SourceConfig, state: PollState | None, ctx: PollContext
) -> PollOutcome:
    """Poll one source once: fetch, skip what did not change, prepare, decide and store."""
    keep = ctx.explain  # the poll's history, for `sources show` (issue #14)
    slot = ctx.slot(source, state)
    await slot.enter()  # the time queued for a slot is not the request's
    try:
        started = perf_counter()
        try:
            fetched = await fetch_source(source, state, ctx.fetcher)
        except SourceError as exc:
            failure = failed(ctx.planner, source, state, exc, started=started, keep=keep)
            return _recorded(ctx, *failure)
    finally:
        slot.leave()
    if is_unchanged(fetched, state):
        same = unchanged(ctx.planner, source, state, fetched, started=started, keep=keep)
        return _recorded(ctx, *same)
    try:
        prepared = await ctx.prepare(fetched)
    except SourceError as exc:
        failure = failed(ctx.planner, source, state, exc, started=started, http=fetched.status,
                         keep=keep, fetched=fetched)  # fmt: skip
        return _recorded(ctx, *failure)
    if source.full_text:  # the articles of what this poll adds or updates (issue #15)
        prepared = await with_full_text(source, prepared, ctx)
    write = partial(store_entries, ctx.planner, ctx.dedup, source, fetched, prepared,
                    started=started, keep=keep, state=state)  # fmt: skip
    return logged(await ctx.store(write))


def history(
    source: SourceConfig, state: PollState | None, fetched: Fetched | None, *, started: float
) -> PollHistory:
    """What ``sources show`` lists of this poll: the URL asked, the validators sent and those
    received, the redirects followed, how long it took."""
    url, etag, modified = source.url, None, None
    if state is not None:
        url, etag, modified = state.url, state.etag, state.last_modified
    duration_ms = round((perf_counter() - started) * 1000)
    if fetched is None:
        return PollHistory(url, etag, modified, duration_ms=duration_ms)
    got = fetched.headers
    return PollHistory(url, etag, modified, got.get("etag"), got.get("last-modified"),
                       fetched.redirects, duration_ms)  # fmt: skip


def fetch_source(source: SourceConfig, state: PollState | None, via: Fetcher) -> Awaitable[Fetched]:
    """Get the source's document: its fixture offline, else a conditional GET of the URL it
    lives at now (a permanent redirect moved it) with the validators it gave last time.

    Not a coroutine itself (one frame less per poll): a ``FetchError`` may come from the call
    or from awaiting what it returns."""
    if via.offline:
        if source.fixture is None:
            raise FetchError(source.id, "no fixture configured for --offline")
        return _done(read_fixture(source.id, source.fixture, url=source.url))
    if via.http is None:
        raise FetchError(source.id, "no HTTP client (offline run?)")
    return fetch(
        via.http,
        source.id,
        state.url if state else source.url,
        etag=state.etag if state else None,
        last_modified=state.last_modified if state else None,
        max_bytes=via.max_bytes,
        timeout_s=via.timeout_s,
        configured_url=source.url,  # the admin's: where the SSRF policy trusts any address
    )


async def _done(value: T) -> T:
    return value


# The history a repeat keeps: none of its own. A 304 that sent and got back the same validators
# writes no row (``store.history``), it only counts into its source's run of repeats; so every
# repeat carries this one value (``history.is_repeat`` reads it as a repeat) instead of
# building its own, most polls of a warm tick (issue #16). ``repeats`` says which polls.
REPEAT = PollHistory("")


def repeats(fetched: Fetched, state: PollState | None) -> bool:
    """``history.is_repeat`` of this poll's record, without its history: a 304 with no redirect
    that got back the validators it sent (``history`` says what was sent)."""
    if fetched.status != 304 or fetched.redirects:
        return False
    got = fetched.headers
    if state is None:
        return got.get("etag") is None and got.get("last-modified") is None
    return got.get("etag") == state.etag and got.get("last-modified") == state.last_modified


def is_unchanged(fetched: Fetched, state: PollState | None) -> bool:
    """A 304, or the very body we parsed last time (servers that ignore validators)."""
    if fetched.not_modified:
        return True
    return (
        state is not None and state.body_hash is not None and fetched.body_hash == state.body_hash
    )


def unchanged(
    planner: Planner,
    source: SourceConfig,
    state: PollState | None,
    fetched: Fetched,
    *,
    started: float,
    keep: bool = False,
) -> tuple[PollRecord, PollOutcome]:
    """Nothing new: when to look again (the server's freshness, the feed's hints)."""
    max_age = freshness_s(fetched.headers, planner.now)
    nxt = planner.next_for(source, max_age_s=max_age, hints=_hints(state))
    kept = None
    if keep:
        kept = REPEAT if repeats(fetched, state) else history(source, state, fetched,
                                                              started=started)  # fmt: skip
    record = PollRecord.from_fetched(fetched, status="not_modified", at=planner.now,
                                     next_check_at=nxt.at, why=nxt.why, history=kept)  # fmt: skip
    outcome = PollOutcome(source.id, "not_modified", fetched.status, max_age_s=max_age,
                          duration_s=perf_counter() - started)  # fmt: skip
    return record, outcome


def failed(
    planner: Planner,
    source: SourceConfig,
    state: PollState | None,
    exc: SourceError,
    *,
    started: float,
    http: int | None = None,
    keep: bool = False,
    fetched: Fetched | None = None,
) -> tuple[PollRecord, PollOutcome]:
    """A failed poll: back off (or honour Retry-After); a 410 Gone disables the source."""
    status = exc.status if isinstance(exc, FetchError) else http
    retry = exc.retry_after_s if isinstance(exc, FetchError) else None
    failures = (state.failures if state else 0) + 1
    kind = "gone" if status == 410 else "failed"
    nxt = planner.next_for(source, failures=failures, retry_after_s=retry, hints=_hints(state))
    at, why = (None, "gone") if kind == "gone" else (nxt.at, nxt.why)
    record = PollRecord(source.id, kind, planner.now, at, http_status=status, error=str(exc),
                        next_check_why=why,
                        history=history(source, state, fetched, started=started)
                        if keep else None)  # fmt: skip
    timed_out = isinstance(exc, FetchError) and exc.timed_out
    outcome = PollOutcome(source.id, kind, status, error=str(exc), retry_after_s=retry,
                          duration_s=perf_counter() - started, timed_out=timed_out)  # fmt: skip
    return record, outcome


def store_entries(
    planner: Planner,
    dedup: DedupConfig,
    source: SourceConfig,
    fetched: Fetched,
    prepared: Prepared,
    tx: Transaction,
    *,
    started: float,
    keep: bool = False,
    state: PollState | None = None,
) -> PollOutcome:
    """Decide each entry's fate against what is stored, and write it all (one unit of work)."""
    known = tx.known(source.id, prepared.entries)
    decisions = decide(
        prepared.entries,
        known,
        now=planner.now,
        title_window=timedelta(hours=dedup.title_window_hours),
        min_title_length=dedup.min_title_length,
    )
    decisions = screen(decisions, source.filters, tombstones=known.tombstones)  # its rules
    if keep:  # named for ``explain``: the entries over the per-feed cap
        decisions += over_cap(prepared)
    max_age = freshness_s(fetched.headers, planner.now)
    nxt = planner.next_for(source, max_age_s=max_age, hints=prepared.hints)
    record = replace(
        PollRecord.from_fetched(
            fetched, status="ok", at=planner.now, next_check_at=nxt.at, why=nxt.why
        ),
        feed_title=prepared.title,
        feed_link=prepared.link,
        hints=prepared.hints,
        history=history(source, state, fetched, started=started) if keep else None,
    )
    result = tx.apply(source.id, decisions, record)
    return PollOutcome(source.id, "ok", fetched.status, result, warnings=prepared.warnings,
                       duration_s=perf_counter() - started, max_age_s=max_age)  # fmt: skip


def over_cap(prepared: Prepared) -> tuple[Decision, ...]:
    """The entries ``prepare`` dropped over the per-feed cap, as verdicts (not stored)."""
    if not prepared.over_cap:
        return ()
    listed = len(prepared.dropped)
    more = f" ({prepared.over_cap} in all, {listed} named)" if prepared.over_cap > listed else ""
    reason = f"over the per-feed cap ([poll] max_entries_per_feed): the newest kept{more}"
    return tuple(Decision(Action.DROPPED, e, reason, rule="cap") for e in prepared.dropped)


def _recorded(ctx: PollContext, record: PollRecord, outcome: PollOutcome) -> PollOutcome:
    ctx.record(record)
    return logged(outcome)


def _hints(state: PollState | None) -> FeedHints:
    return FeedHints() if state is None else state.hints


def logged(outcome: PollOutcome) -> PollOutcome:
    """One line per source per poll (``poll source=... status=...``): at INFO when it changed
    something or failed, at DEBUG when nothing changed (an operator reads INFO in the journal;
    a thousand 304s a tick would drown what matters)."""
    r = outcome.result
    level = logging.DEBUG if outcome.status == "not_modified" else logging.INFO
    if not log.isEnabledFor(level):
        return outcome
    log.log(
        level,
        "poll source=%s status=%s http=%s new=%d updated=%d duplicate=%d duration_ms=%d%s%s",
        outcome.source_id,
        outcome.status,
        outcome.http_status or "-",
        r.new,
        r.updated,
        r.duplicate,
        round(outcome.duration_s * 1000),
        f" filtered={r.filtered}" if r.filtered else "",  # dropped by the source's rules (#15)
        f" error={outcome.error!r}" if outcome.error else "",
    )
    for warning in outcome.warnings:
        log.debug("poll source=%s warning=%r", outcome.source_id, warning)
    return outcome
