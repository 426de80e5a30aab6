"""The tick: due sources from the database, polled concurrently, outputs rendered when changed.

The schedule is data (``sources.next_check_at``), not one job per source: the daemon runs one
coalesced ``tick`` at a time, and ``aggregator once`` runs one. ``Scheduler`` owns the config
(``reload`` swaps it between ticks), the fetch loop and the parse workers; ``runner`` runs the
polls; ``pipeline.poll_source`` is what each poll does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Collection, Coroutine, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import httpx

from . import USER_AGENT
from .config import Config, SourceConfig
from .errors import RenderError, StoreError
from .explain import HistoryPruner
from .fetch import Http, make_http
from .fetchloop import FetchLoop, host_of, interleave_by_host
from .metrics import Metrics
from .pipeline import Fetcher
from .prune import QuietPruner, run_prune
from .publish import render_outputs
from .render import RenderReport
from .renderstamp import clear_stamp, is_current, write_stamp
from .report import TickReport
from .runner import Message, TickRun, Writer
from .schedule import Planner
from .store import Store
from .types import PollOutcome, PollState
from .workers import ParseWorkers

if TYPE_CHECKING:
    from .cluster import Work

log = logging.getLogger(__name__)

METRICS_BATCH = 256  # polls counted into /metrics at a time (and at the end of each tick)
POOL_MIN_SOURCES = 64  # smaller ticks prepare inline unless the workers already run
T = TypeVar("T")

__all__ = ["POOL_MIN_SOURCES", "Scheduler", "TickReport", "build_scheduler", "run_once"]


class Replay(Protocol):
    """A recording played back instead of the network (``replay.Replayer``, issue #14)."""

    @property
    def transport(self) -> httpx.AsyncBaseTransport: ...
    def clock(self) -> datetime:
        """The time the round now playing was recorded at."""

    def advance(self) -> frozenset[str]:
        """Play the next round; return the sources it polled (none once all are played)."""


@dataclass
class Scheduler:
    """Owns the current config and runs ticks; ``reload`` swaps the config between ticks."""

    config: Config
    store: Store
    metrics: Metrics
    offline: bool = False
    ordered: bool = False  # one poll at a time, in config order: as offline, for replays
    replay: Replay | None = None  # a recording played back: each tick plays its next round
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    transport: httpx.AsyncBaseTransport | None = None  # tests inject a MockTransport
    parse_workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    on_tick: Callable[[TickReport], None] | None = None  # e.g. systemd WATCHDOG=1 + STATUS=
    on_progress: Callable[[], None] | None = None  # after each poll: keeps a long tick alive
    last_tick_at: datetime | None = None
    drain_s: float = 8.0  # on stop, how long in-flight polls may still finish
    render_every_s: float = 10.0  # during a long tick, publish finished sources this often
    tick_deadline_s: float | None = None  # no poll starts later than this into a tick
    monotonic: Callable[[], float] = time.monotonic  # for the tick's deadline (tests move it)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _render_due: bool = True  # render at the first tick, after every reload and failed render
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: FetchLoop | None = None
    _workers: ParseWorkers | None = None
    _hosts: dict[str, str] = field(default_factory=dict)  # URL -> host, kept across ticks
    pruner: QuietPruner | None = None  # the daemon's: retention at a quiet moment (issue #15)
    history: HistoryPruner = field(default_factory=HistoryPruner)  # [explain] keep_days (#14)
    work: Work | None = None  # several nodes on one database (issue #17); None: this node alone
    _observed: list[PollOutcome] = field(default_factory=list)  # not yet in the metrics

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Register the configured sources; new ones are due at once. The first tick renders
        unless the outputs on disk already show what is stored (``renderstamp``)."""
        with self.store.transaction() as tx:
            tx.sync_sources(self.config.sources, now=self.clock())
        if self.work is not None:
            self.work.synced(self.config, now=self.clock())
        if self._render_due and is_current(self.config, self.store.content_generation()):
            self._render_due = False

    def stop(self) -> None:
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def workers_started(self) -> bool:
        return self._workers is not None and self._workers.started

    def wait_idle(self, timeout_s: float) -> bool:
        """True once no tick is running (a tick holds the lock), False after ``timeout_s``."""
        if not self._lock.acquire(timeout=timeout_s):
            return False
        self._lock.release()
        return True

    def close(self) -> None:
        """Release the event loop, its HTTP client and the worker processes."""
        if self._loop is not None:
            self._loop.close()
            self._loop = None
        if self._workers is not None:
            self._workers.close()
            self._workers = None

    def reload(self, config: Config) -> tuple[str, ...]:
        """Take a new (already validated) config; return the ids of removed sources."""
        with self._lock:
            old = {s.id for s in self.config.sources}
            self.config = config
            removed = tuple(sorted(old - {s.id for s in config.sources}))
            with self.store.transaction() as tx:
                tx.sync_sources(config.sources, now=self.clock())
                if removed and not config.storage.keep_removed:
                    orphans = tx.remove_sources(removed)
                    log.info("reload removed sources=%s entries_dropped=%d", ",".join(removed),
                             orphans)  # fmt: skip
            if self.work is not None:
                self.work.synced(config, now=self.clock())
            self._render_due = True
        return removed

    def failing_sources(self) -> int:
        return self.store.count_failing()

    # -- the tick ---------------------------------------------------------------------------------

    def tick(self, *, force: bool = False, only: Collection[str] | None = None) -> TickReport:
        """Poll every due source once (with ``force`` also those not yet due, but never one that
        is gone or waiting out a Retry-After; with ``only``, none but these); render if anything
        changed. A replay's tick plays the recording's next round, at the time it was made."""
        with self._lock:
            if self.replay is not None:  # the round's sources, as the recording polled them
                only, force = self.replay.advance(), True
            config, now, started = self.config, self.clock(), time.monotonic()
            report = replace(self._tick(config, now, force, only),
                             duration_s=time.monotonic() - started)  # fmt: skip
            self.last_tick_at = now
            self._maybe_prune(config, now, quiet=not (report.new or report.updated))
            self.history.maybe_forget(self.store, config, now, quiet=not report.new)
        self.metrics.ticks.inc()
        self.metrics.last_tick.set(time.time())
        self.metrics.sources_failing.set(self.failing_sources())
        if self.on_tick is not None:
            self.on_tick(report)
        log.info("%s", report.log_line())
        return report

    def _maybe_prune(self, config: Config, now: datetime, *, quiet: bool) -> None:
        """Retention, when the pruner says it is time; outputs follow what it deleted."""
        if self.pruner is None or not self.pruner.due(config, now=now, quiet=quiet):
            return
        self.pruner.done(now)
        try:
            pruned = run_prune(config, self.store, now=now)
        except StoreError as exc:  # tried again at the next quiet moment
            log.error("prune failed: %s", exc)
            return
        if pruned.items:
            self._render_due = not _Publisher(self, config).publish()

    def _tick(
        self, config: Config, now: datetime, force: bool, only: Collection[str] | None
    ) -> TickReport:
        order, states = self._due(config, now, force, only)
        publisher = _Publisher(self, config)
        outcomes: Sequence[PollOutcome] = ()
        abandoned = 0
        try:
            if order:
                outcomes, abandoned = self._poll(config, now, order, states, publisher)
        finally:
            if self.work is not None:  # the hosts it claimed are free again
                self.work.give_back(now)
        elsewhere = self.work is not None and self.work.settle(now, changed=publisher.changed)
        if publisher.changed or self._render_due or elsewhere:
            self._render_due = not publisher.publish()
        return TickReport(len(order), tuple(outcomes), tuple(publisher.renders), abandoned,
                          render_error=publisher.error)  # fmt: skip

    def _due(
        self, config: Config, now: datetime, force: bool, only: Collection[str] | None = None
    ) -> tuple[list[SourceConfig], dict[str, PollState]]:
        """The sources to poll, in the order to start them, and their stored poll state."""
        enabled = {s.id: s for s in config.enabled_sources if only is None or s.id in only}
        due_states = self.work.take if self.work else self.store.due_states  # issue #17
        states = due_states(now, among=list(enabled), force=force)
        due = [s for i, s in enabled.items() if i in states]  # config order
        if self.offline or self.ordered:  # fixture runs and replays stay in config order
            return due, states
        return interleave_by_host([(self._host(s, states.get(s.id)), s) for s in due]), states

    def _host(self, source: SourceConfig, state: PollState | None) -> str:
        url = state.url if state else source.url
        host = self._hosts.get(url)
        if host is None:
            host = self._hosts[url] = host_of(url)
        return host

    def _poll(
        self,
        config: Config,
        now: datetime,
        order: Sequence[SourceConfig],
        states: dict[str, PollState],
        publisher: _Publisher,
    ) -> tuple[list[PollOutcome], int]:
        """Run the polls on the fetch loop while this thread stores what they bring."""
        loop = self._fetch_loop()
        inbox: queue.SimpleQueue[list[Message]] = queue.SimpleQueue()
        run = self._tick_run(config, now, order, states, loop, inbox)
        # Offline (fixture) runs poll one source at a time, in config order: ids, merges and
        # outputs are reproducible. Otherwise: the caps' worth of requests, plus documents
        # waiting to be stored (backpressure: a fast network cannot pile every body of a
        # large tick up in memory ahead of the parsers).
        size = run.parse_workers.size if run.parse_workers else 1
        pending = max(2 * config.poll.max_concurrency, 4 * size)
        workers = 1 if self.offline or self.ordered else config.poll.max_concurrency + pending
        polls = run.run(order, states, workers=workers, drain_s=self.drain_s)
        future = _submit(loop, polls)
        writer = Writer(self.store, loop.loop)
        try:
            writer.run(inbox, between=lambda: publisher.maybe(writer))
        except BaseException:
            future.cancel()
            raise
        publisher.changed = publisher.changed or writer.changed
        try:
            return future.result()
        finally:  # the polls are over: the rest of their counts (no race with the loop now)
            self._flush_metrics()

    def _tick_run(
        self,
        config: Config,
        now: datetime,
        order: Sequence[SourceConfig],
        states: dict[str, PollState],
        loop: FetchLoop,
        inbox: queue.SimpleQueue[list[Message]],
    ) -> TickRun:
        poll = config.poll
        return TickRun(
            fetcher=Fetcher(_submit(loop, loop.client()).result(), offline=self.offline,
                            max_bytes=poll.max_bytes, timeout_s=poll.timeout_s),
            planner=Planner(poll, now),
            dedup=config.dedup,
            outbox=inbox,
            max_concurrency=poll.max_concurrency,
            per_host=poll.per_host,
            parse_workers=self._parse_workers(len(order)),
            max_entries=poll.max_entries_per_feed,
            explain=config.explain.keep_days > 0,
            hosts={s.id: self._host(s, states.get(s.id)) for s in order},
            on_outcome=self._observe,
            deadline=self._deadline(),
            clock=self.monotonic,
            stopping=self._stopping,
        )  # fmt: skip

    def _deadline(self) -> float | None:
        limit = self.tick_deadline_s
        return None if limit is None else self.monotonic() + limit

    def _parse_workers(self, due: int) -> ParseWorkers | None:
        """The worker processes, for a large tick (or once they run), unless offline."""
        if self.offline or self.ordered or self.parse_workers <= 1:
            return None
        if self._workers is None:
            if due < POOL_MIN_SOURCES:
                return None
            self._workers = ParseWorkers(self.parse_workers)
        return self._workers if self._workers.size > 1 else None

    def _fetch_loop(self) -> FetchLoop:
        if self._loop is None:
            self._loop = FetchLoop(None if self.offline else self._make_http)
        return self._loop

    def _make_http(self) -> Http:
        if self.transport is not None:
            return Http(self.transport, user_agent=USER_AGENT)
        return network_http(self.config)

    def _observe(self, outcome: PollOutcome) -> None:
        """After each poll (on the fetch loop): progress, and metrics in batches."""
        observed = self._observed
        observed.append(outcome)
        if len(observed) >= METRICS_BATCH:
            self._flush_metrics()
        if self.on_progress is not None:
            self.on_progress()

    def _flush_metrics(self) -> None:
        observed, self._observed = self._observed, []
        if observed:
            self.metrics.observe_polls(observed)


@dataclass
class _Publisher:
    """Renders the outputs: during a long tick every ``render_every_s``, and at its end."""

    scheduler: Scheduler
    config: Config
    changed: bool = False
    renders: list[RenderReport] = field(default_factory=list)
    error: str | None = None
    last: float = field(default_factory=time.monotonic)

    def maybe(self, writer: Writer) -> None:
        """Between batches: publish what a long tick has stored so far, every so often."""
        if writer.changed and time.monotonic() - self.last >= self.scheduler.render_every_s:
            writer.changed = False
            self.changed = not self.publish()  # slow sources must not hold back fast ones

    def publish(self) -> bool:
        """Render every output; False (logged, retried later) when one cannot be written."""
        self.last = time.monotonic()
        store = self.scheduler.store
        try:
            generation = store.content_generation()  # before: a change made meanwhile is due
            clear_stamp(self.config)
            renders = render_outputs(self.config, store)
        except (RenderError, StoreError, OSError) as exc:  # (reading entries can fail too)
            log.error("render failed (old outputs kept, retried at the next tick): %s", exc)
            self.error = str(exc)
            return False
        self.renders.extend(renders)
        write_stamp(self.config, generation, renders)
        self.error = None
        self.scheduler.metrics.last_render.set(time.time())
        return True


def network_http(config: Config) -> Http:
    """The daemon's client (``fetch.make_http``) as ``[poll]`` and ``[fetch]`` configure it;
    create it inside the event loop that uses it."""
    poll = config.poll
    return make_http(
        user_agent=USER_AGENT,
        connect_timeout_s=poll.connect_timeout_s,
        read_timeout_s=poll.read_timeout_s,
        max_connections=poll.max_concurrency,
        policy=config.fetch,
    )


def _submit(loop: FetchLoop, coro: Coroutine[Any, Any, T]) -> Future[T]:
    """Run ``coro`` on the fetch loop; its result comes back through the future."""
    return asyncio.run_coroutine_threadsafe(coro, loop.loop)


def build_scheduler(
    config: Config,
    store: Store,
    *,
    metrics: Metrics | None = None,
    offline: bool = False,
    clock: Callable[[], datetime] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    on_progress: Callable[[], None] | None = None,
    replay: Replay | None = None,
) -> Scheduler:
    """A scheduler that builds its own HTTP client from ``[poll]`` (none when offline);
    ``on_progress`` is called after each poll (`aggregator once` draws its progress bar).
    ``replay``: play a recording back (its responses, its clock, config order) instead."""
    if replay is not None:
        transport, clock = replay.transport, replay.clock
    scheduler = Scheduler(config, store, metrics or Metrics(), offline=offline, transport=transport,
                          on_progress=on_progress, ordered=replay is not None,
                          replay=replay)  # fmt: skip
    if config.poll.parse_workers:
        scheduler.parse_workers = config.poll.parse_workers
    scheduler.tick_deadline_s = config.poll.tick_deadline_s
    if clock is not None:
        scheduler.clock = clock
    if config.cluster.enabled and replay is None:
        from .cluster import join_cluster

        join_cluster(scheduler, config)
    return scheduler


def run_once(
    config: Config,
    store: Store,
    *,
    now: datetime,
    offline: bool,
    force: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    on_progress: Callable[[], None] | None = None,
) -> TickReport:
    """`aggregator once [--force]`: one tick (the due sources, or with ``force`` those not yet
    due too), store, render what changed (every output, the first time)."""
    scheduler = build_scheduler(config, store, offline=offline, clock=lambda: now,
                                transport=transport, on_progress=on_progress)  # fmt: skip
    try:
        scheduler.start()
        return scheduler.tick(force=force)
    finally:
        scheduler.close()
