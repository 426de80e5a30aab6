"""Compose the stages: poll_source() = fetch -> parse -> process -> store; render_outputs().

Catches ``SourceError`` only (a failing source never stops a run); bugs propagate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import httpx

from .config import Config, DedupConfig, OutputSpec, SourceConfig
from .errors import FetchError, SourceError
from .fetch import MAX_BYTES, fetch, freshness_s, read_fixture
from .parse import parse_document, parse_posts
from .process import decide, html_to_text, normalise_entries
from .render import RenderReport, render_output
from .store import Store
from .types import (
    Channel,
    FeedHints,
    Fetched,
    ParsedFeed,
    PollOutcome,
    SourceState,
    StoreResult,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunReport:
    """What one ``aggregator once`` did."""

    outcomes: tuple[PollOutcome, ...]
    renders: tuple[RenderReport, ...]

    def summary(self) -> str:
        ok = sum(o.ok for o in self.outcomes)
        failed = len(self.outcomes) - ok
        new = sum(o.result.new for o in self.outcomes)
        updated = sum(o.result.updated for o in self.outcomes)
        dup = sum(o.result.duplicate for o in self.outcomes)
        written = sum(len(r.written) for r in self.renders)
        unchanged = sum(len(r.unchanged) for r in self.renders)
        return (
            f"sources: {ok} ok, {failed} failed; entries: {new} new, {updated} updated, "
            f"{dup} duplicate; outputs: {written} written, {unchanged} unchanged"
        )


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """Per-request limits from ``[poll]``."""

    max_bytes: int = MAX_BYTES
    timeout_s: float = 60.0


def fetch_source(
    source: SourceConfig,
    state: SourceState | None,
    *,
    offline: bool,
    client: httpx.Client | None,
    limits: FetchLimits = FetchLimits(),
) -> Fetched:
    """Get the source's document (no store access: safe in worker threads); raises SourceError."""
    if offline:
        if source.fixture is None:
            raise FetchError(source.id, "no fixture configured for --offline")
        return read_fixture(source.id, source.fixture, url=source.url)
    if client is None:
        raise FetchError(source.id, "no HTTP client (offline run?)")
    return fetch(
        client,
        source.id,
        state.url if state else source.url,
        etag=state.etag if state else None,
        last_modified=state.last_modified if state else None,
        max_bytes=limits.max_bytes,
        timeout_s=limits.timeout_s,
    )


def _parse(fetched: Fetched) -> ParsedFeed:
    if fetched.parts:
        return parse_posts(fetched.parts, source_id=fetched.source_id)
    return parse_document(
        fetched.body or b"", source_id=fetched.source_id, headers=fetched.headers, url=fetched.url
    )


def _store_feed(
    source: SourceConfig, fetched: Fetched, *, store: Store, now: datetime, dedup: DedupConfig
) -> tuple[StoreResult, tuple[str, ...]]:
    feed = _parse(fetched)
    entries, warnings = normalise_entries(feed, source_id=source.id, feed_url=fetched.url)
    decisions = decide(
        entries,
        store.known(source.id, entries),
        now=now,
        title_window=timedelta(hours=dedup.title_window_hours),
        min_title_length=dedup.min_title_length,
    )
    title = html_to_text(feed.title) or None  # some feeds put entities in plain-text titles
    hints = FeedHints(feed.ttl_s, feed.skip_hours, feed.skip_days)
    result = store.apply(
        source.id,
        decisions,
        fetched=fetched,
        feed_title=title,
        feed_link=feed.link,
        now=now,
        hints=hints,
    )
    return result, feed.warnings + warnings


def ingest(
    source: SourceConfig,
    got: Fetched | SourceError,
    *,
    store: Store,
    now: datetime,
    dedup: DedupConfig,
    duration_s: float = 0.0,
) -> PollOutcome:
    """Parse, process and store what ``fetch_source`` got (or record its error)."""
    started = time.perf_counter()
    try:
        if isinstance(got, SourceError):
            raise got
        outcome = _ingest_fetched(source, got, store=store, now=now, dedup=dedup)
    except SourceError as exc:
        status = exc.status if isinstance(exc, FetchError) else getattr(got, "status", None)
        gone = status == 410
        store.record_failure(source.id, error=str(exc), http_status=status, gone=gone, now=now)
        retry = exc.retry_after_s if isinstance(exc, FetchError) else None
        outcome = PollOutcome(
            source.id, "gone" if gone else "failed", status, error=str(exc), retry_after_s=retry
        )
    outcome = replace(outcome, duration_s=duration_s + time.perf_counter() - started)
    _log(outcome)
    return outcome


def _ingest_fetched(
    source: SourceConfig, fetched: Fetched, *, store: Store, now: datetime, dedup: DedupConfig
) -> PollOutcome:
    max_age = freshness_s(fetched.headers, now)
    state = store.source_state(source.id)
    unchanged_body = state is not None and fetched.body_hash == state.body_hash
    if fetched.not_modified or unchanged_body:
        store.record_unchanged(source.id, fetched=fetched, now=now)
        return PollOutcome(source.id, "not_modified", fetched.status, max_age_s=max_age)
    result, warnings = _store_feed(source, fetched, store=store, now=now, dedup=dedup)
    return PollOutcome(
        source.id, "ok", fetched.status, result, warnings=warnings, max_age_s=max_age
    )


def poll_source(
    source: SourceConfig,
    *,
    store: Store,
    now: datetime,
    dedup: DedupConfig,
    offline: bool = False,
    client: httpx.Client | None = None,
    limits: FetchLimits = FetchLimits(),
) -> PollOutcome:
    """Poll one source once and record the outcome; never raises ``SourceError``."""
    started = time.perf_counter()
    got: Fetched | SourceError
    try:
        state = store.source_state(source.id)
        got = fetch_source(source, state, offline=offline, client=client, limits=limits)
    except SourceError as exc:
        got = exc
    return ingest(
        source, got, store=store, now=now, dedup=dedup, duration_s=time.perf_counter() - started
    )


def _log(outcome: PollOutcome) -> None:
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


def run_once(
    config: Config,
    store: Store,
    *,
    now: datetime,
    offline: bool,
    client: httpx.Client | None = None,
    sources: Sequence[SourceConfig] | None = None,
) -> RunReport:
    """Poll every enabled source once (in config order), then render every output."""
    store.sync_sources(config.sources, now=now)
    limits = FetchLimits(config.poll.max_bytes, config.poll.timeout_s)
    outcomes = tuple(
        poll_source(
            s,
            store=store,
            now=now,
            dedup=config.dedup,
            offline=offline,
            client=client,
            limits=limits,
        )
        for s in (sources if sources is not None else config.enabled_sources)
    )
    return RunReport(outcomes, render_outputs(config, store))
