"""The tick: due sources from the DB, async fetches under caps, parse in worker processes, store.

The schedule is data (``sources.next_check_at``), not one job per source: the daemon runs one
coalesced ``tick`` at a time. Fetches run on an event loop in a thread of their own (one
shared httpx client over aiohttp; a global and a per-host cap on requests in flight); bodies
are parsed and processed in a process pool sized to the cores; the tick's thread stores each
result as soon as it is ready, so slow sources never hold back finished ones.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import httpx

from . import USER_AGENT
from .config import Config, SourceConfig
from .errors import FetchError, ParseError, SourceError
from .fetch import Http, make_http
from .metrics import Metrics
from .pipeline import (
    FetchLimits,
    Ingest,
    fetch_source,
    is_unchanged,
    render_outputs,
    summarise,
)
from .prepare import Prepared, prepare
from .render import RenderReport
from .schedule import Planner
from .store import Store
from .types import Fetched, PollOutcome, PollState

log = logging.getLogger(__name__)

POOL_MIN_SOURCES = 64  # smaller ticks parse inline unless the workers already run
STORE_BATCH = 64  # at most this many sources' results per store transaction


@dataclass(frozen=True, slots=True)
class TickReport:
    due: int = 0
    outcomes: tuple[PollOutcome, ...] = ()
    renders: tuple[RenderReport, ...] = ()
    abandoned: int = 0

    @property
    def rendered(self) -> bool:
        return bool(self.renders)

    def log_line(self) -> str:
        ok = sum(o.ok for o in self.outcomes)
        return (
            f"tick due={self.due} ok={ok} failed={len(self.outcomes) - ok} "
            f"new={sum(o.result.new for o in self.outcomes)} "
            f"updated={sum(o.result.updated for o in self.outcomes)} rendered={self.rendered}"
        )

    def summary(self) -> str:
        return summarise(self.outcomes, self.renders)


@lru_cache(maxsize=100_000)
def _netloc(url: str) -> str:
    return urlsplit(url).netloc.lower()


def _host(source: SourceConfig, state: PollState | None) -> str:
    return _netloc(state.url if state else source.url)


def interleave_by_host(items: Sequence[tuple[str, SourceConfig]]) -> list[SourceConfig]:
    """Round-robin over hosts, so the workers are not all queued behind one host's cap."""
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


def _holds_slot(got: Fetched | SourceError) -> bool:
    """A fetched document (not a 304, not an error) waits for a ``pending`` slot (backpressure)."""
    return isinstance(got, Fetched) and not got.not_modified


def _changes_outputs(outcome: PollOutcome) -> bool:
    """New or updated entries, or merges (which add provenance), change what outputs show."""
    return outcome.result.changed or outcome.result.duplicate > 0


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop where it is installed (a dependency on Linux and macOS), else
    asyncio's: its timers, callbacks and socket I/O cost a warm tick ~15 % less (issue #5)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - e.g. Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class _Loop:
    """An event loop in a thread of its own, with the one shared HTTP client on it."""

    def __init__(self, make: Callable[[], Http] | None) -> None:
        self.loop = new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fetch-loop", daemon=True)
        self.thread.start()
        self._make = make
        self.client: Http | None = None

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def get_client(self) -> Http | None:
        if self.client is None and self._make is not None:
            self.client = self._make()
        return self.client

    def close(self) -> None:
        if self.client is not None:
            self.run(self.client.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


Result = tuple[str, SourceConfig, Any, float]  # (kind, source, payload, fetch seconds)


@dataclass
class Scheduler:
    """Owns the current config and runs ticks; ``reload`` swaps the config between ticks."""

    config: Config
    store: Store
    metrics: Metrics
    offline: bool = False
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    transport: httpx.AsyncBaseTransport | None = None  # tests inject a MockTransport
    parse_workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    on_tick: Callable[[TickReport], None] | None = None  # e.g. systemd WATCHDOG=1 + STATUS=
    on_progress: Callable[[], None] | None = None  # after each poll: keeps a long tick alive
    last_tick_at: datetime | None = None
    drain_s: float = 8.0  # on stop, how long in-flight fetches may still finish
    render_every_s: float = 10.0  # during a long tick, publish finished sources this often
    _stopping: threading.Event = field(default_factory=threading.Event)
    _render_due: bool = True  # render at the first tick, and after every reload
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: _Loop | None = None
    _pool: ProcessPoolExecutor | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Register the configured sources; new ones are due at once."""
        self.store.sync_sources(self.config.sources, now=self.clock())

    def stop(self) -> None:
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

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
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _make_client(self) -> Http:
        poll = self.config.poll
        if self.transport is not None:
            return Http(self.transport, user_agent=USER_AGENT)
        return make_http(
            user_agent=USER_AGENT,
            connect_timeout_s=poll.connect_timeout_s,
            read_timeout_s=poll.read_timeout_s,
            max_connections=poll.max_concurrency,
        )

    def _event_loop(self) -> _Loop:
        if self._loop is None:
            self._loop = _Loop(None if self.offline else self._make_client)
        return self._loop

    def workers_broken(self) -> None:
        """The worker processes died (killed, or cannot start): parse inline from now on."""
        if self._pool is not None:
            log.error("parse workers died: parsing inline from now on (see earlier errors)")
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None
        self.parse_workers = 1

    def _workers(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # forkserver: never fork a process that runs threads (loop, server, APScheduler).
            # (No forkserver preload of the parse stages: it would save each worker ~0.2 s of
            # imports at its start, but the server then holds them too: +15 MB to the process
            # tree's summed RSS at N = 10,000, which issue #5 bounds.)
            context = multiprocessing.get_context("forkserver")
            self._pool = ProcessPoolExecutor(self.parse_workers, mp_context=context)
        return self._pool

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

    # -- the tick ---------------------------------------------------------------------------------

    def tick(self, *, force: bool = False) -> TickReport:
        """Poll every due source (every enabled one with ``force``) once; render if changed."""
        with self._lock:
            config, now = self.config, self.clock()
            report = self._tick(config, now, force)
            self.last_tick_at = now
        self.metrics.ticks.inc()
        self.metrics.last_tick.set(time.time())
        self.metrics.sources_failing.set(self.failing_sources())
        if self.on_tick is not None:
            self.on_tick(report)
        log.info("%s", report.log_line())
        return report

    def _tick(self, config: Config, now: datetime, force: bool) -> TickReport:
        enabled = {s.id: s for s in config.enabled_sources}
        if force:
            states = self.store.poll_states(list(enabled))
        else:
            states = self.store.due_states(now, among=list(enabled))
        ids = tuple(i for i in enabled if force or i in states)  # config order
        host_of = {i: _host(enabled[i], states.get(i)) for i in ids}
        if self.offline:  # no hosts to spare; and fixture runs stay in config order (goldens)
            order = [enabled[i] for i in ids]
        else:
            order = interleave_by_host([(host_of[i], enabled[i]) for i in ids])
        ingest = Ingest(self.store, Planner(config.poll, now), config.dedup)
        pool_ok = self._pool is not None or len(order) >= POOL_MIN_SOURCES
        run = _TickRun(self, config, ingest, states, pool_ok=pool_ok)
        if order:
            loop = self._event_loop().loop
            # Backpressure: at most this many fetched documents wait to be stored, so a fast
            # network cannot pile every body of a large tick up in memory ahead of the parsers.
            pending = asyncio.Semaphore(
                max(2 * config.poll.max_concurrency, 4 * self.parse_workers)
            )

            def release(slots: int) -> None:
                for _ in range(slots):
                    pending.release()

            run.release = lambda slots: loop.call_soon_threadsafe(release, slots)
            outbox = _Outbox(loop, run.results.put)
            loop.call_soon_threadsafe(
                lambda: asyncio.ensure_future(
                    self._fetch_all(config, order, states, host_of, outbox.put, pending)
                )
            )
            run.consume(order, ordered=self.offline)
        ingest.flush()
        if run.unrendered or self._render_due:
            run.render()
        self._render_due = False
        return TickReport(len(ids), tuple(run.outcomes), tuple(run.renders), run.abandoned)

    async def _fetch_all(
        self,
        config: Config,
        order: Sequence[SourceConfig],
        states: dict[str, PollState],
        host_of: dict[str, str],
        put: Callable[[Result], None],
        pending: asyncio.Semaphore,
    ) -> None:
        """Fetch every source with at most ``max_concurrency`` workers and ``per_host`` per host.

        A fetched document takes a ``pending`` slot before it is handed over, given back once
        it is stored; 304s and errors (no body to hold) take none.
        """
        loop = self._event_loop()
        client = await loop.get_client()
        limits = FetchLimits(config.poll.max_bytes, config.poll.timeout_s)
        hosts: dict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(config.poll.per_host)
        )
        todo = deque(order)

        async def one(source: SourceConfig) -> Fetched | SourceError:
            state = states.get(source.id)
            async with hosts[host_of[source.id]]:
                try:
                    return await fetch_source(
                        source, state, offline=self.offline, http=client, limits=limits
                    )
                except SourceError as exc:
                    return exc
                except Exception as exc:  # a bug: fail this source alone, keep the traceback
                    log.exception("fetch of %s crashed", source.id)
                    return FetchError(source.id, f"internal error: {exc!r}")

        async def worker() -> None:
            while todo and not self.stopping:
                source = todo.popleft()
                started = time.perf_counter()
                try:
                    got = await one(source)
                    if _holds_slot(got):  # a document to store: wait while too many do
                        await pending.acquire()
                except asyncio.CancelledError:  # stopping, and the drain time is over
                    put(("abandoned", source, None, 0.0))
                    raise
                put(("fetched", source, got, time.perf_counter() - started))

        workers = [
            asyncio.ensure_future(worker())
            for _ in range(min(config.poll.max_concurrency, len(order)))
        ]
        await self._drain(workers)
        while todo:  # never started: stopping
            put(("abandoned", todo.popleft(), None, 0.0))

    async def _drain(self, workers: Sequence[asyncio.Future[None]]) -> None:
        pending = set(workers)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=0.5)
            if self.stopping and pending:
                _, pending = await asyncio.wait(pending, timeout=self.drain_s)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                return

    def failing_sources(self) -> int:
        return self.store.count_failing()


class _Outbox:
    """Results leave the loop thread in batches (what finished in one loop iteration).

    One hand-over (and one wake-up of the storing thread) per batch, not per source: a warm
    tick's 304s complete many per iteration.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Callable[[list[Result]], None]):
        self._loop, self._send = loop, send
        self._items: list[Result] = []

    def put(self, item: Result) -> None:
        if not self._items:
            self._loop.call_soon(self._flush)
        self._items.append(item)

    def _flush(self) -> None:
        items, self._items = self._items, []
        self._send(items)


class _TickRun:
    """The consuming side of one tick: results arrive on a queue and are stored in order."""

    def __init__(
        self,
        scheduler: Scheduler,
        config: Config,
        ingest: Ingest,
        states: dict[str, PollState],
        *,
        pool_ok: bool,
    ) -> None:
        self.scheduler, self.config, self.ingest, self.states = scheduler, config, ingest, states
        self.pool_ok = pool_ok and scheduler.parse_workers > 1
        self.results: queue.SimpleQueue[list[Result]] = queue.SimpleQueue()
        self.outcomes: list[PollOutcome] = []
        self.renders: list[RenderReport] = []
        self.abandoned = 0
        self.unrendered = False
        self.last_render = time.monotonic()
        self.release: Callable[[int], object] = lambda slots: None  # frees fetch slots
        self.freed = 0  # slots of stored documents not yet given back (one wake-up per batch)

    def consume(self, order: Sequence[SourceConfig], *, ordered: bool) -> None:
        """Handle results until every source has an outcome (or was abandoned).

        As they come by default (fast sources first); ``ordered`` stores in ``order`` instead,
        which makes ids, merges and outputs reproducible (offline fixture runs). The results
        ready at one moment (up to ``STORE_BATCH``) are stored in one transaction: when storing
        is the bottleneck, results queue up and batches grow; when it is not, each result is
        stored as soon as it arrives.
        """
        ready: dict[str, Result] = {}
        done = 0
        while done < len(order):
            batch: list[Result] = []
            for item in self._arrived():
                kind, source, payload, seconds = item
                if kind == "fetched" and self._parse_elsewhere(source, payload, seconds):
                    continue
                if not ordered:
                    batch.append(item)
                    continue
                ready[source.id] = item
                while done + len(batch) < len(order) and order[done + len(batch)].id in ready:
                    batch.append(ready.pop(order[done + len(batch)].id))
            if batch:
                try:
                    with self.scheduler.store.batch():
                        for item in batch:
                            self._handle(item)
                finally:
                    if self.freed:
                        self.release(self.freed)
                    self.freed = 0
                done += len(batch)
                self._maybe_render()

    def _arrived(self) -> list[Result]:
        """The next results (waiting for them), and every other one already queued."""
        items = self.results.get()
        while len(items) < STORE_BATCH:
            try:
                items += self.results.get_nowait()
            except queue.Empty:
                break
        return items

    def _handle(self, item: Result) -> None:
        kind, source, payload, seconds = item
        try:
            if kind == "abandoned":
                self.abandoned += 1
                return
            self._finish(self._outcome(kind, source, payload, seconds))
        finally:
            if kind == "prepared" or (kind == "fetched" and _holds_slot(payload)):
                self.freed += 1

    def _parse_elsewhere(self, source: SourceConfig, got: Any, seconds: float) -> bool:
        """Send a body to the worker processes; its result comes back through the queue."""
        if not self.pool_ok or isinstance(got, SourceError):
            return False
        if is_unchanged(got, self.states.get(source.id)):
            return False
        future: Future[Prepared] = self.scheduler._workers().submit(prepare, got)
        future.add_done_callback(
            lambda f: self.results.put([("prepared", source, (got, f), seconds)])
        )
        return True

    def _outcome(
        self, kind: str, source: SourceConfig, payload: Any, seconds: float
    ) -> PollOutcome:
        state = self.states.get(source.id)
        if kind == "fetched":
            return self.ingest.ingest(source, payload, state, seconds)
        fetched, future = payload
        try:
            prepared = future.result()
        except SourceError as exc:
            return self.ingest.failed(source, exc, state, seconds, http_status=fetched.status)
        except BrokenProcessPool:
            self.scheduler.workers_broken()
            self.pool_ok = False
            return self.ingest.ingest(source, fetched, state, seconds)
        except Exception as exc:  # a parser bug on one document fails that source alone
            log.exception("parsing %s crashed", source.id)
            error = ParseError(source.id, f"internal error: {exc!r}")
            return self.ingest.failed(source, error, state, seconds, http_status=fetched.status)
        return self.ingest.stored(source, fetched, prepared, seconds)

    def _finish(self, outcome: PollOutcome) -> None:
        self.scheduler.metrics.observe_poll(outcome)
        self.outcomes.append(outcome)
        self.unrendered = self.unrendered or _changes_outputs(outcome)
        if self.scheduler.on_progress is not None:
            self.scheduler.on_progress()

    def _maybe_render(self) -> None:
        """Between batches: publish what a long tick has stored so far, every so often."""
        if self.unrendered and time.monotonic() - self.last_render >= self.scheduler.render_every_s:
            self.render()  # slow sources must not hold back what the fast ones brought

    def render(self) -> None:
        self.ingest.flush()
        self.renders.extend(render_outputs(self.config, self.scheduler.store))
        self.unrendered, self.last_render = False, time.monotonic()
        self.scheduler.metrics.last_render.set(time.time())


def build_scheduler(
    config: Config,
    store: Store,
    *,
    metrics: Metrics | None = None,
    offline: bool = False,
    clock: Callable[[], datetime] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Scheduler:
    """A scheduler that builds its own HTTP client from ``[poll]`` (none when offline)."""
    scheduler = Scheduler(config, store, metrics or Metrics(), offline=offline, transport=transport)
    if config.poll.parse_workers:
        scheduler.parse_workers = config.poll.parse_workers
    if clock is not None:
        scheduler.clock = clock
    return scheduler


def run_once(
    config: Config,
    store: Store,
    *,
    now: datetime,
    offline: bool,
    transport: httpx.AsyncBaseTransport | None = None,
) -> TickReport:
    """`aggregator once`: poll every enabled source now, store, render every output."""
    scheduler = build_scheduler(
        config, store, offline=offline, clock=lambda: now, transport=transport
    )
    try:
        scheduler.start()
        return scheduler.tick(force=True)
    finally:
        scheduler.close()
