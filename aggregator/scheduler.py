"""The daemon's tick: due sources from the DB, concurrent fetches under caps, store, render.

The schedule is data (``sources.next_check_at``), not one job per source: APScheduler runs one
coalesced ``tick`` at a time. Fetches run in worker threads (a global cap and a per-host cap);
each finished fetch is parsed and stored in the tick's thread while the others are still in
flight. ``next_check`` is pure.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx

from .config import Config, SourceConfig
from .errors import SourceError
from .metrics import Metrics
from .pipeline import FetchLimits, fetch_source, ingest, render_outputs
from .store import Store
from .types import Fetched, PollOutcome, SourceState

log = logging.getLogger(__name__)

MAX_BACKOFF_SHIFT = 6  # 2**6: at most 64 times the interval (then the ceiling applies)
MAX_RETRY_AFTER_S = 7 * 86400.0


def _unit(key: str) -> float:
    """A stable pseudo-random number in [0, 1) for ``key`` (jitter without an RNG)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def _skip(at: datetime, hours: Sequence[int], days: Sequence[int]) -> datetime:
    """Move ``at`` to the first hour not in RSS skipHours/skipDays (both in GMT)."""
    if not hours and not days:
        return at
    candidate = at
    for _ in range(24 * 8):
        if candidate.hour not in hours and candidate.weekday() not in days:
            return candidate
        candidate = candidate.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return at  # every hour of every day skipped: the feed is misconfigured; ignore the hint


def next_check(
    now: datetime,
    interval_s: float,
    *,
    key: str,
    floor_s: float,
    ceiling_s: float,
    jitter: float = 0.0,
    failures: int = 0,
    max_age_s: float | None = None,
    ttl_s: float | None = None,
    retry_after_s: float | None = None,
    skip_hours: Sequence[int] = (),
    skip_days: Sequence[int] = (),
) -> datetime:
    """When to poll a source next. Pure: the same inputs give the same answer.

    The wait is the largest of the interval, the server's freshness and the feed's TTL, doubled
    per consecutive failure, kept within [floor, ceiling], spread by up to ``jitter`` of itself
    (stable per ``key``) so sources sharing a host drift apart; a Retry-After is always honoured
    (up to a week), and RSS skipHours/skipDays push it out of the skipped hours.
    """
    wait = max(interval_s, max_age_s or 0.0, ttl_s or 0.0)
    wait *= 1 << min(failures, MAX_BACKOFF_SHIFT)
    wait = min(max(wait, floor_s), ceiling_s)
    wait += wait * jitter * _unit(key)
    if retry_after_s:
        wait = max(wait, min(retry_after_s, MAX_RETRY_AFTER_S))
    return _skip(now + timedelta(seconds=wait), skip_hours, skip_days)


@dataclass(frozen=True, slots=True)
class TickReport:
    due: int = 0
    outcomes: tuple[PollOutcome, ...] = ()
    rendered: bool = False
    abandoned: int = 0

    def summary(self) -> str:
        ok = sum(o.ok for o in self.outcomes)
        return (
            f"tick due={self.due} ok={ok} failed={len(self.outcomes) - ok} "
            f"new={sum(o.result.new for o in self.outcomes)} "
            f"updated={sum(o.result.updated for o in self.outcomes)} rendered={self.rendered}"
        )


def _changes_outputs(outcome: PollOutcome) -> bool:
    """New or updated entries, or merges (which add provenance), change what outputs show."""
    return outcome.result.changed or outcome.result.duplicate > 0


def _host(source: SourceConfig, state: SourceState | None) -> str:
    return urlsplit(state.url if state else source.url).netloc.lower()


def interleave_by_host(items: Sequence[tuple[str, SourceConfig]]) -> list[SourceConfig]:
    """Round-robin over hosts, so workers are not all queued behind one host's cap."""
    queues: dict[str, deque[SourceConfig]] = defaultdict(deque)
    for host, source in items:
        queues[host].append(source)
    out: list[SourceConfig] = []
    while queues:
        for host in list(queues):
            out.append(queues[host].popleft())
            if not queues[host]:
                del queues[host]
    return out


@dataclass
class Scheduler:
    """Owns the current config and runs ticks; ``reload`` swaps the config between ticks."""

    config: Config
    store: Store
    metrics: Metrics
    offline: bool = False
    client: httpx.Client | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    on_tick: Callable[[TickReport], None] | None = None  # e.g. systemd WATCHDOG=1 + STATUS=
    on_progress: Callable[[], None] | None = None  # after each poll: keeps a long tick alive
    last_tick_at: datetime | None = None
    drain_s: float = 8.0  # on stop, how long in-flight fetches may still finish
    render_every_s: float = 10.0  # during a long tick, publish finished sources this often
    _stopping: threading.Event = field(default_factory=threading.Event)
    _render_due: bool = True  # render at the first tick, and after every reload
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        """Register the configured sources; new ones are due at once."""
        self.store.sync_sources(self.config.sources, now=self.clock())

    def stop(self) -> None:
        self._stopping.set()

    def wait_idle(self, timeout_s: float) -> bool:
        """True once no tick is running (a tick holds the lock), False after ``timeout_s``."""
        if not self._lock.acquire(timeout=timeout_s):
            return False
        self._lock.release()
        return True

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def reload(self, config: Config) -> tuple[str, ...]:
        """Take a new (already validated) config; return the ids of removed sources."""
        with self._lock:
            old = {s.id for s in self.config.sources}
            self.config = config
            self.store.sync_sources(config.sources, now=self.clock())
            removed = tuple(sorted(old - {s.id for s in config.sources}))
            if removed and not config.storage.keep_removed:
                orphans = self.store.remove_sources(removed)
                log.info("reload removed sources=%s entries_dropped=%d", ",".join(removed), orphans)
            self._render_due = True
        return removed

    def tick(self) -> TickReport:
        """Poll every due source once; render if anything changed. Never raises on a source."""
        with self._lock:
            config, now = self.config, self.clock()
            report = self._tick(config, now)
            self.last_tick_at = now
        self.metrics.ticks.inc()
        self.metrics.last_tick.set(time.time())
        self.metrics.sources_failing.set(self.failing_sources())
        if self.on_tick is not None:
            self.on_tick(report)
        log.info("%s", report.summary())
        return report

    def _tick(self, config: Config, now: datetime) -> TickReport:
        enabled = {s.id: s for s in config.enabled_sources}
        due_ids = self.store.due_sources(now, among=list(enabled))
        states = {i: self.store.source_state(i) for i in due_ids}
        order = interleave_by_host([(_host(enabled[i], states[i]), enabled[i]) for i in due_ids])
        outcomes: list[PollOutcome] = []
        abandoned, unrendered, rendered = 0, False, False
        last_render = time.monotonic()
        for source, got, duration in self._fetch_all(config, order, states):
            if got is None:
                abandoned += 1
                continue
            outcome = ingest(
                source, got, store=self.store, now=now, dedup=config.dedup, duration_s=duration
            )
            self._reschedule(config, source, outcome, now)
            self.metrics.observe_poll(outcome)
            outcomes.append(outcome)
            unrendered = unrendered or _changes_outputs(outcome)
            if unrendered and time.monotonic() - last_render >= self.render_every_s:
                # Slow sources must not hold back what the fast ones brought.
                rendered = self._render(config) or rendered
                unrendered, last_render = False, time.monotonic()
            if self.on_progress is not None:
                self.on_progress()
        if unrendered or self._render_due:
            rendered = self._render(config)
        return TickReport(len(due_ids), tuple(outcomes), rendered, abandoned)

    def _fetch_all(
        self, config: Config, order: Sequence[SourceConfig], states: dict[str, SourceState | None]
    ) -> Iterator[tuple[SourceConfig, Fetched | SourceError | None, float]]:
        """Yield each source's fetch result as it completes; ``None`` when abandoned on stop."""
        if not order:
            return
        limits = FetchLimits(config.poll.max_bytes, config.poll.timeout_s)
        host_caps: dict[str, threading.BoundedSemaphore] = defaultdict(
            lambda: threading.BoundedSemaphore(config.poll.per_host)
        )
        caps = {s.id: host_caps[_host(s, states[s.id])] for s in order}

        def work(source: SourceConfig) -> tuple[Fetched | SourceError, float]:
            with caps[source.id]:
                started = time.perf_counter()
                try:
                    got: Fetched | SourceError = fetch_source(
                        source,
                        states[source.id],
                        offline=self.offline,
                        client=self.client,
                        limits=limits,
                    )
                except SourceError as exc:
                    got = exc
                return got, time.perf_counter() - started

        workers = min(config.poll.max_concurrency, len(order))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch")
        futures: dict[Future[tuple[Fetched | SourceError, float]], SourceConfig] = {
            pool.submit(work, s): s for s in order
        }
        try:
            yield from self._as_completed(futures)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _as_completed(
        self, futures: dict[Future[tuple[Fetched | SourceError, float]], SourceConfig]
    ) -> Iterator[tuple[SourceConfig, Fetched | SourceError | None, float]]:
        pending = set(futures)
        deadline: float | None = None
        while pending:
            if self.stopping and deadline is None:
                deadline = time.monotonic() + self.drain_s
                for fut in pending:
                    fut.cancel()  # not yet started: never will be
            # Wake at least once a second to notice a stop request.
            left = 1.0 if deadline is None else max(0.0, deadline - time.monotonic())
            done, pending = wait(pending, timeout=min(left, 1.0), return_when=FIRST_COMPLETED)
            for fut in done:
                if fut.cancelled():
                    yield futures[fut], None, 0.0
                else:
                    got, duration = fut.result()
                    yield futures[fut], got, duration
            if deadline is not None and time.monotonic() >= deadline:
                for fut in pending:
                    yield futures[fut], None, 0.0
                return

    def _reschedule(
        self, config: Config, source: SourceConfig, outcome: PollOutcome, now: datetime
    ) -> None:
        if outcome.status == "gone":
            self.store.schedule(source.id, None)  # 410: never again (until the config changes)
            return
        state = self.store.source_state(source.id)
        failures = state.failures if state else 0
        poll = config.poll
        at = next_check(
            now,
            source.interval_s or poll.interval_s,
            key=f"{source.id}@{now.isoformat()}",
            floor_s=poll.min_interval_s,
            ceiling_s=poll.max_interval_s,
            jitter=poll.jitter,
            failures=failures,
            max_age_s=outcome.max_age_s,
            ttl_s=state.ttl_s if state else None,
            retry_after_s=outcome.retry_after_s,
            skip_hours=state.skip_hours if state else (),
            skip_days=state.skip_days if state else (),
        )
        self.store.schedule(source.id, at)

    def _render(self, config: Config) -> bool:
        render_outputs(config, self.store)
        self._render_due = False
        self.metrics.last_render.set(time.time())
        return True

    def failing_sources(self) -> int:
        return sum(1 for s in self.store.source_states() if s.status in ("failed", "gone"))
