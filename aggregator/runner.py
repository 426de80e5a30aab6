"""Run one tick's polls concurrently; knows how to run them, nothing of what a poll does.

Two contexts: the polls (``pipeline.poll_source``) run on an event loop in a thread of their
own, under a global and a per-host cap on requests in flight; their writes run on the tick's
own thread, which stores the jobs that are ready together in one unit of work. Between them
travel typed messages: ``StoreJob`` (one poll's writes, its outcome sent back), ``Bookkeeping``
(the batched records of polls that stored nothing) and ``PollsDone``. Documents are prepared
in worker processes when a tick is large.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import TypeVar

from .config import DedupConfig, SourceConfig
from .errors import FetchError, ParseError, SourceError, StoreError
from .fetchloop import host_of
from .gate import Gate
from .pipeline import Fetcher, Write, failed, logged, poll_source
from .prepare import MAX_ENTRIES, Prepared, prepare
from .schedule import Planner
from .store import Store
from .types import Entry, Fetched, Known, PollOutcome, PollRecord, PollState
from .workers import ParseWorkers

log = logging.getLogger(__name__)
T = TypeVar("T")

STORE_BATCH = 64  # at most this many polls' writes per unit of work
# Records of polls that stored nothing, written this many at a time (and at the end of the
# tick). Large: a write while fetches run makes the loop thread and SQLite (which lets go of
# the GIL on every row) hand the GIL back and forth per row.
BOOKKEEPING_BATCH = 5000


# -- messages from the loop to the storing thread -------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoreJob:
    """One poll's writes; the outcome (or the error) goes back to ``done`` on the loop."""

    write: Write
    done: asyncio.Future[PollOutcome]


@dataclass(frozen=True, slots=True)
class Bookkeeping:
    """Records of polls that stored no entries (304s, unchanged bodies, failures)."""

    records: tuple[PollRecord, ...]


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the store holds of one poll's entries (for full text, issue #15), sent back to
    ``done`` on the loop."""

    source_id: str
    entries: tuple[Entry, ...]
    done: asyncio.Future[Known]


@dataclass(frozen=True, slots=True)
class PollsDone:
    """The loop's last message of a tick."""


Message = StoreJob | Bookkeeping | Lookup | PollsDone


# -- the loop's side ------------------------------------------------------------------------------


class Deferred(Exception):
    """Not polled this tick (its host timed out, or the tick ran out of time): due again next."""


class _Abandoned(Exception):
    """The tick was asked to stop while this poll waited for its slot: it never begins (the
    source stays due)."""


class _Slot:
    """A request's place under the caps: its host's, then one of the tick's. A host that timed
    out earlier in the tick is not asked again: its sources are deferred.

    ``enter()`` (awaited) takes both places, ``leave()`` gives them back; ``async with`` does
    the same (page fetches). When both places are free, ``enter`` returns a finished future:
    no coroutine is made for the poll that has nothing to wait for (issue #16)."""

    __slots__ = ("_host", "_run")

    def __init__(self, run: TickRun, host: str) -> None:
        self._run, self._host = run, host

    def enter(self) -> Awaitable[None]:
        run = self._run
        cap = run._host_caps.get(self._host)
        if cap is None:
            cap = run._host_caps[self._host] = Gate(run.per_host)
        if not cap.take_now():
            return self._wait(cap, taken=False)
        if not run.total.take_now():
            return self._wait(cap, taken=True)
        self._begin(cap)
        return run.ready

    async def _wait(self, cap: Gate, *, taken: bool) -> None:
        """``enter`` when a place is taken: each in turn, the host's first."""
        if not taken:
            await cap.take()
        total = self._run.total
        if not total.take_now():
            try:
                await total.take()
            except BaseException:
                cap.give()
                raise
        self._begin(cap)

    def _begin(self, cap: Gate) -> None:
        """Both places are held: give them back and raise if the poll must not begin."""
        run = self._run
        if run.stopping.is_set():  # it waited for a slot while the stop came: never begun
            run.total.give()
            cap.give()
            raise _Abandoned
        why = run.why_not_now(self._host)
        if why is not None:
            run.total.give()
            cap.give()
            raise Deferred(why)

    def leave(self) -> None:
        self._run.total.give()
        self._run._host_caps[self._host].give()

    async def __aenter__(self) -> None:
        await self.enter()

    async def __aexit__(self, *exc: object) -> None:
        self.leave()


@dataclass
class TickRun:
    """One tick's polls on the loop: the ``PollContext`` they run in, and the workers."""

    fetcher: Fetcher
    planner: Planner
    dedup: DedupConfig
    outbox: queue.SimpleQueue[list[Message]]
    max_concurrency: int
    per_host: int
    parse_workers: ParseWorkers | None = None  # None: prepare inline
    max_entries: int = MAX_ENTRIES  # per document: the newest are kept
    explain: bool = True  # polls keep their history and name dropped entries ([explain])
    hosts: dict[str, str] = field(default_factory=dict)  # source id -> host of its URL
    on_outcome: Callable[[PollOutcome], None] = lambda outcome: None
    deadline: float | None = None  # ``clock()`` past which no new poll starts (deferred)
    clock: Callable[[], float] = time.monotonic
    gave_up: set[str] = field(default_factory=set)  # hosts that timed out in this tick
    stopping: threading.Event = field(default_factory=threading.Event)  # the daemon's stop
    _records: list[PollRecord] = field(default_factory=list)
    _total: Gate | None = None
    _ready: asyncio.Future[None] | None = None
    _host_caps: dict[str, Gate] = field(default_factory=dict)
    _sending: list[Message] = field(default_factory=list)

    @property
    def ready(self) -> asyncio.Future[None]:
        """A finished future: what ``_Slot.enter`` returns when nothing is to wait for."""
        if self._ready is None:
            self._ready = asyncio.get_running_loop().create_future()
            self._ready.set_result(None)
        return self._ready

    @property
    def total(self) -> Gate:
        if self._total is None:
            self._total = Gate(self.max_concurrency)
        return self._total

    def why_not_now(self, host: str) -> str | None:
        """Why a request to ``host`` should wait for the next tick, if it should."""
        if host in self.gave_up:
            return f"{host} timed out earlier in this tick: deferred"
        if self.deadline is not None and self.clock() >= self.deadline:
            return "the tick ran out of time: deferred"
        return None

    # -- PollContext ------------------------------------------------------------------------------

    def slot(self, source: SourceConfig, state: PollState | None) -> _Slot:
        return _Slot(self, self.hosts.get(source.id, ""))

    async def prepare(self, fetched: Fetched) -> Prepared:
        try:
            return await self._prepare(fetched)
        except SourceError:
            raise
        except Exception as exc:  # a parser bug on one document fails that source alone
            log.error("preparing %s crashed", fetched.source_id, exc_info=exc)
            raise ParseError(fetched.source_id, f"internal error: {exc!r}") from exc

    async def _prepare(self, fetched: Fetched) -> Prepared:
        if self.parse_workers is not None:
            try:
                submitted = self.parse_workers.submit(fetched, self.max_entries)
                return await asyncio.wrap_future(submitted)
            except BrokenProcessPool:
                self.parse_workers.broken()
                self.parse_workers = None
        # Inline, but off the loop: a slow document must not hold up the requests in flight
        # (their deadlines run on the loop; a stalled loop would time honest neighbours out).
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, prepare, fetched, self.max_entries)

    async def store(self, write: Write) -> PollOutcome:
        done: asyncio.Future[PollOutcome] = asyncio.get_running_loop().create_future()
        self._send(StoreJob(write, done))
        return await done

    def record(self, record: PollRecord) -> None:
        self._records.append(record)
        if len(self._records) >= BOOKKEEPING_BATCH:
            self._send(Bookkeeping(tuple(self._records)))
            self._records.clear()

    def page_slot(self, url: str) -> _Slot:
        return _Slot(self, host_of(url))

    async def lookup(self, source_id: str, entries: Sequence[Entry]) -> Known:
        done: asyncio.Future[Known] = asyncio.get_running_loop().create_future()
        self._send(Lookup(source_id, tuple(entries), done))
        return await done

    async def offload(self, work: Callable[[], T]) -> T:
        return await asyncio.to_thread(work)

    # -- running ----------------------------------------------------------------------------------

    def _send(self, message: Message) -> None:
        """Messages leave in batches: what one loop iteration produced, one hand-over."""
        if not self._sending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._sending.append(message)

    def _flush(self) -> None:
        messages, self._sending = self._sending, []
        self.outbox.put(messages)

    async def run(
        self,
        order: Sequence[SourceConfig],
        states: dict[str, PollState],
        *,
        workers: int,
        drain_s: float,
    ) -> tuple[list[PollOutcome], int]:
        """Poll ``order`` with ``workers`` polls at a time; return the outcomes (as they came)
        and how many sources were abandoned because the tick was asked to stop: those not
        begun (waiting for a slot, or not taken up yet) and, after ``drain_s``, those still in
        flight."""
        stopping = self.stopping
        todo = deque(order)
        outcomes: list[PollOutcome] = []
        cancelled = 0

        async def worker() -> None:
            nonlocal cancelled
            while todo and not stopping.is_set():
                source = todo.popleft()
                state = states.get(source.id)
                try:
                    outcome = await poll_source(source, state, self)
                except asyncio.CancelledError:  # stopping, and the drain time is over
                    cancelled += 1
                    raise
                except _Abandoned:
                    cancelled += 1
                    return
                except Exception as exc:  # (no frame of its own around each poll: issue #16)
                    outcome = self._failed(source, state, exc)
                else:
                    if outcome.timed_out:  # a struggling host: ask it nothing more this tick
                        self.gave_up.add(self.hosts.get(source.id, ""))
                outcomes.append(outcome)
                self.on_outcome(outcome)

        try:
            tasks = [asyncio.ensure_future(worker()) for _ in range(min(workers, len(order)))]
            await _drain(tasks, stopping, drain_s)
        finally:
            self._finish()
        return outcomes, cancelled + len(todo)

    def _finish(self) -> None:
        """The tick's last messages: the bookkeeping not sent yet, then ``PollsDone``."""
        if self._records:
            self._send(Bookkeeping(tuple(self._records)))
            self._records.clear()
        self._send(PollsDone())

    def _failed(self, source: SourceConfig, state: PollState | None, exc: Exception) -> PollOutcome:
        """What ``poll_source`` raised, as the poll's outcome: a bug or a database failure
        fails this source alone."""
        if isinstance(exc, Deferred):  # nothing was asked: the source stays due, next tick
            return _deferred(source.id, str(exc))
        if isinstance(exc, StoreError):  # nothing was written: the source stays due
            return logged(PollOutcome(source.id, "failed", error=f"{source.id}: {exc}"))
        log.error("poll of %s crashed", source.id, exc_info=exc)
        error = FetchError(source.id, f"internal error: {exc!r}")
        record, outcome = failed(self.planner, source, state, error, started=0.0)
        self.record(record)
        return logged(outcome)


def _deferred(source_id: str, why: str) -> PollOutcome:
    return logged(PollOutcome(source_id, "deferred", error=why))


async def _drain(
    tasks: Sequence[asyncio.Future[None]], stopping: threading.Event, drain_s: float
) -> None:
    """Wait for ``tasks``; once ``stopping`` is set, give them ``drain_s``, then cancel them."""
    pending = set(tasks)
    while pending:
        _, pending = await asyncio.wait(pending, timeout=0.5)
        if stopping.is_set() and pending:
            _, pending = await asyncio.wait(pending, timeout=drain_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            return


# -- the storing thread's side --------------------------------------------------------------------


def _settle(results: list[tuple[asyncio.Future[T], T | BaseException]]) -> None:
    for done, result in results:
        if done.done():  # its poll was cancelled (stopping): the write stands all the same
            continue
        if isinstance(result, BaseException):
            done.set_exception(result)
        else:
            done.set_result(result)


@dataclass
class Writer:
    """The storing side of a tick, on the tick's own thread: units of work as jobs arrive."""

    store: Store
    loop: asyncio.AbstractEventLoop
    changed: bool = False  # something stored changes what outputs show

    def run(self, inbox: queue.SimpleQueue[list[Message]], *, between: Callable[[], None]) -> None:
        """Store what arrives until ``PollsDone``; ``between`` runs after every batch."""
        finished = False
        while not finished:
            messages = inbox.get()
            while len(messages) < STORE_BATCH:
                try:
                    messages += inbox.get_nowait()
                except queue.Empty:
                    break
            jobs = [m for m in messages if isinstance(m, StoreJob)]
            for m in messages:
                if isinstance(m, Bookkeeping):
                    self._bookkeeping(m.records)
            self._lookup([m for m in messages if isinstance(m, Lookup)])
            for start in range(0, len(jobs), STORE_BATCH):
                self._store(jobs[start : start + STORE_BATCH])
            finished = any(isinstance(m, PollsDone) for m in messages)
            between()

    def _store(self, jobs: list[StoreJob]) -> None:
        """The jobs in one unit of work. If it fails for one job's sake (a bug, data the database
        refuses), each job alone, so that only the bad write fails; if the database itself is
        the trouble (locked, gone), every job fails now: their sources stay due."""
        try:
            with self.store.transaction() as tx:
                outcomes: list[PollOutcome | BaseException] = [job.write(tx) for job in jobs]
        except Exception as exc:
            transient = isinstance(exc, StoreError) and exc.transient
            if len(jobs) > 1 and not transient:
                for job in jobs:
                    self._store([job])
                return
            outcomes = [exc] * len(jobs)
        self.changed = self.changed or any(
            isinstance(o, PollOutcome) and o.result.changes_outputs for o in outcomes
        )
        self.loop.call_soon_threadsafe(
            _settle, [(j.done, o) for j, o in zip(jobs, outcomes, strict=True)]
        )

    def _lookup(self, lookups: list[Lookup]) -> None:
        """Read what the store holds for each lookup (one read, no writes)."""
        if not lookups:
            return
        try:
            with self.store.transaction() as tx:
                found: list[Known | BaseException] = [
                    tx.known(job.source_id, job.entries) for job in lookups
                ]
        except StoreError as exc:  # each poll fails alone, as with its write
            found = [exc] * len(lookups)
        self.loop.call_soon_threadsafe(
            _settle, [(job.done, result) for job, result in zip(lookups, found, strict=True)]
        )

    def _bookkeeping(self, records: Sequence[PollRecord]) -> None:
        try:
            with self.store.transaction() as tx:
                tx.record_polls(records)
        except StoreError as exc:  # these sources stay due: polled again next tick
            log.error("could not record %d polls: %s", len(records), exc)
