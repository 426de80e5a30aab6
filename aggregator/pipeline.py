"""Compose the stages for one source: fetch -> prepare (parse + process) -> store.

``fetch_source`` does I/O only (async, no store); ``prepare`` is pure and picklable, so it can
run in a worker process; ``Ingest`` writes the results. ``SourceError`` is caught here (a
failing source never stops a tick); bugs propagate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from .config import Config, DedupConfig, OutputSpec, SourceConfig
from .errors import FetchError, SourceError
from .fetch import MAX_BYTES, Http, fetch, freshness_s, read_fixture
from .prepare import Prepared, prepare
from .process import decide
from .render import RenderReport, render_output
from .schedule import Planner
from .store import Store
from .types import (
    Channel,
    FeedHints,
    Fetched,
    PollOutcome,
    PollRecord,
    PollState,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """Per-request limits from ``[poll]``."""

    max_bytes: int = MAX_BYTES
    timeout_s: float = 60.0


async def fetch_source(
    source: SourceConfig,
    state: PollState | None,
    *,
    offline: bool,
    http: Http | None,
    limits: FetchLimits = FetchLimits(),
) -> Fetched:
    """Get the source's document (no store access); raises SourceError."""
    if offline:
        if source.fixture is None:
            raise FetchError(source.id, "no fixture configured for --offline")
        return read_fixture(source.id, source.fixture, url=source.url)
    if http is None:
        raise FetchError(source.id, "no HTTP client (offline run?)")
    return await fetch(
        http,
        source.id,
        state.url if state else source.url,
        etag=state.etag if state else None,
        last_modified=state.last_modified if state else None,
        max_bytes=limits.max_bytes,
        timeout_s=limits.timeout_s,
    )


def is_unchanged(fetched: Fetched, state: PollState | None) -> bool:
    """A 304, or the very body we parsed last time (servers that ignore validators)."""
    if fetched.not_modified:
        return True
    return (
        state is not None and state.body_hash is not None and fetched.body_hash == state.body_hash
    )


@dataclass
class Ingest:
    """Writes one tick's poll results; bookkeeping of polls without entries is batched."""

    store: Store
    planner: Planner
    dedup: DedupConfig
    records: list[PollRecord] = field(default_factory=list)
    # Written when this many wait, at every render, and at the end of the tick. Large: a flush
    # while fetches run makes the loop thread and SQLite (which lets go of the GIL on every
    # row) hand the GIL back and forth per row; 5,000 rows are ~1 MB and ~50 ms to write.
    batch: int = 5000

    @property
    def now(self) -> datetime:
        return self.planner.now

    def unchanged(
        self, source: SourceConfig, fetched: Fetched, state: PollState | None, duration_s: float
    ) -> PollOutcome:
        max_age = freshness_s(fetched.headers, self.now)
        hints = _hints(state)
        at = self.planner.next_for(source, max_age_s=max_age, hints=hints)
        self._record(
            PollRecord.from_fetched(fetched, status="not_modified", at=self.now, next_check_at=at)
        )
        return _done(
            PollOutcome(
                source.id, "not_modified", fetched.status, duration_s=duration_s, max_age_s=max_age
            )
        )

    def failed(
        self,
        source: SourceConfig,
        exc: SourceError,
        state: PollState | None,
        duration_s: float,
        http_status: int | None = None,
    ) -> PollOutcome:
        status = exc.status if isinstance(exc, FetchError) else http_status
        retry = exc.retry_after_s if isinstance(exc, FetchError) else None
        gone = status == 410
        failures = (state.failures if state else 0) + 1
        at = (
            None
            if gone
            else self.planner.next_for(
                source, failures=failures, retry_after_s=retry, hints=_hints(state)
            )
        )
        kind = "gone" if gone else "failed"
        self._record(PollRecord(source.id, kind, self.now, at, http_status=status, error=str(exc)))
        return _done(PollOutcome(source.id, kind, status, error=str(exc), duration_s=duration_s,
                                 retry_after_s=retry))  # fmt: skip

    def stored(
        self, source: SourceConfig, fetched: Fetched, prepared: Prepared, duration_s: float
    ) -> PollOutcome:
        """Decide and write the entries of a prepared document (one transaction)."""
        entries = prepared.entries
        decisions = decide(
            entries,
            self.store.known(source.id, entries),
            now=self.now,
            title_window=timedelta(hours=self.dedup.title_window_hours),
            min_title_length=self.dedup.min_title_length,
        )
        max_age = freshness_s(fetched.headers, self.now)
        at = self.planner.next_for(source, max_age_s=max_age, hints=prepared.hints)
        record = replace(
            PollRecord.from_fetched(fetched, status="ok", at=self.now, next_check_at=at),
            feed_title=prepared.title,
            feed_link=prepared.link,
            hints=prepared.hints,
        )
        result = self.store.apply(source.id, decisions, record)
        outcome = PollOutcome(source.id, "ok", fetched.status, result, warnings=prepared.warnings,
                              duration_s=duration_s, max_age_s=max_age)  # fmt: skip
        return _done(outcome)

    def ingest(
        self,
        source: SourceConfig,
        got: Fetched | SourceError,
        state: PollState | None,
        duration_s: float = 0.0,
    ) -> PollOutcome:
        """Everything after the fetch, inline: unchanged, failed, or parse and store."""
        if isinstance(got, SourceError):
            return self.failed(source, got, state, duration_s)
        if is_unchanged(got, state):
            return self.unchanged(source, got, state, duration_s)
        try:
            prepared = prepare(got)
        except SourceError as exc:
            return self.failed(source, exc, state, duration_s, http_status=got.status)
        return self.stored(source, got, prepared, duration_s)

    def _record(self, record: PollRecord) -> None:
        self.records.append(record)
        if len(self.records) >= self.batch:
            self.flush()

    def flush(self) -> None:
        """Write the batched bookkeeping (one transaction)."""
        records, self.records = self.records, []
        self.store.record_polls(records)


def _hints(state: PollState | None) -> FeedHints:
    return FeedHints() if state is None else state.hints


def _done(outcome: PollOutcome) -> PollOutcome:
    r = outcome.result
    log.info(
        "poll source=%s status=%s http=%s new=%d updated=%d duplicate=%d duration_ms=%d%s",
        outcome.source_id,
        outcome.status,
        outcome.http_status or "-",
        r.new,
        r.updated,
        r.duplicate,
        round(outcome.duration_s * 1000),
        f" error={outcome.error!r}" if outcome.error else "",
    )
    for warning in outcome.warnings:
        log.debug("poll source=%s warning=%r", outcome.source_id, warning)
    return outcome


def channel_for(config: Config, spec: OutputSpec) -> Channel:
    return Channel(name=spec.name, title=spec.title, base_url=config.output.base_url)


def render_outputs(config: Config, store: Store) -> tuple[RenderReport, ...]:
    """Regenerate every configured output from the database alone."""
    reports = []
    for spec in config.outputs:
        source_ids = [s.id for s in config.sources if spec.selects(s)]
        entries = store.recent_entries(source_ids, limit=spec.limit)
        reports.append(
            render_output(channel_for(config, spec), entries, spec.formats, config.output.dir)
        )
    return tuple(reports)


def summarise(outcomes: Sequence[PollOutcome], renders: Sequence[RenderReport]) -> str:
    """The one-line summary `aggregator once` ends with."""
    ok = sum(o.ok for o in outcomes)
    new = sum(o.result.new for o in outcomes)
    updated = sum(o.result.updated for o in outcomes)
    dup = sum(o.result.duplicate for o in outcomes)
    written = sum(len(r.written) for r in renders)
    unchanged = sum(len(r.unchanged) for r in renders)
    return (
        f"sources: {ok} ok, {len(outcomes) - ok} failed; entries: {new} new, {updated} updated, "
        f"{dup} duplicate; outputs: {written} written, {unchanged} unchanged"
    )
