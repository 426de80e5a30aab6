"""The runner's pieces on their own: host interleaving, the storing thread's units of work."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.config import SourceConfig, parse_config
from aggregator.errors import StoreError
from aggregator.fetchloop import interleave_by_host
from aggregator.runner import Bookkeeping, Message, PollsDone, StoreJob, Writer
from aggregator.store import SqlStore, Transaction
from aggregator.types import PollOutcome, StoreResult

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_interleave_by_host() -> None:
    cfg = parse_config(
        {"sources": [{"id": i, "url": f"https://{h}/{i}"} for i, h in
                     [("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b"), ("c1", "c")]]},
        path=Path("/tmp/x.toml"),
    )  # fmt: skip
    order = interleave_by_host([(s.url.split("/")[2], s) for s in cfg.sources])
    assert [s.id for s in order] == ["a1", "b1", "c1", "a2", "a3"]


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _job(loop: asyncio.AbstractEventLoop, source_id: str, *, fail: bool = False) -> StoreJob:
    def write(tx: Transaction) -> PollOutcome:
        tx.sync_sources([SourceConfig(id=source_id, url=f"https://{source_id}.test/")], now=T0)
        if fail:
            raise RuntimeError("a bug in this poll's write")
        return PollOutcome(source_id, "ok", 200, StoreResult(new=1))

    return StoreJob(write, loop.create_future())


def test_writer_stores_a_batch_in_one_unit_and_a_bad_write_fails_alone(
    memory_store: SqlStore, loop: asyncio.AbstractEventLoop
) -> None:
    jobs = [_job(loop, "a"), _job(loop, "b", fail=True), _job(loop, "c")]
    inbox: queue.SimpleQueue[list[Message]] = queue.SimpleQueue()
    inbox.put([*jobs, Bookkeeping(()), PollsDone()])
    batches: list[int] = []
    writer = Writer(memory_store, loop)
    writer.run(inbox, between=lambda: batches.append(1))
    loop.run_until_complete(asyncio.sleep(0))  # the results are handed back on the loop
    assert jobs[0].done.result().source_id == "a" and jobs[2].done.result().source_id == "c"
    with pytest.raises(RuntimeError, match="a bug"):
        jobs[1].done.result()
    # The batch was rolled back, then each job ran alone: "b" wrote nothing, the others did.
    assert [s.source_id for s in memory_store.source_states()] == ["a", "c"]
    assert writer.changed and batches == [1]


def test_writer_keeps_going_when_bookkeeping_cannot_be_written(
    memory_store: SqlStore, loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aggregator.store.sql import SqlTransaction
    from aggregator.types import PollRecord

    def broken(self: SqlTransaction, records: object) -> None:
        raise StoreError("database error: database is locked")

    monkeypatch.setattr(SqlTransaction, "record_polls", broken)
    inbox: queue.SimpleQueue[list[Message]] = queue.SimpleQueue()
    job = _job(loop, "a")
    inbox.put([Bookkeeping((PollRecord("x", "failed", T0, None),)), job, PollsDone()])
    Writer(memory_store, loop).run(inbox, between=lambda: None)
    loop.run_until_complete(asyncio.sleep(0))
    assert job.done.result().status == "ok"


def test_a_slot_is_taken_at_once_when_free_and_waited_for_when_not() -> None:
    from aggregator import runner
    from aggregator.config import DedupConfig, PollConfig
    from aggregator.pipeline import Fetcher
    from aggregator.schedule import Planner

    run = runner.TickRun(Fetcher(None), Planner(PollConfig(), T0), DedupConfig(),
                         queue.SimpleQueue(), max_concurrency=1, per_host=1,
                         hosts={"a": "h", "b": "h", "c": "gone"})  # fmt: skip
    a, b = (run.slot(SourceConfig(id=i, url=f"https://{i}.test/"), None) for i in "ab")
    order: list[str] = []

    async def go() -> None:
        first = a.enter()
        assert isinstance(first, asyncio.Future) and first.done()  # no coroutine: it is free
        await first
        second = b.enter()  # the place is held: this one waits
        assert not isinstance(second, asyncio.Future)
        waiting = asyncio.ensure_future(second)
        await asyncio.sleep(0)
        assert not waiting.done()
        order.append("a leaves")
        a.leave()
        await waiting
        order.append("b entered")
        b.leave()
        run.gave_up.add("gone")  # a host given up on: the poll is deferred, places given back
        with pytest.raises(runner.Deferred):
            await run.slot(SourceConfig(id="c", url="https://c.test/"), None).enter()
        await a.enter()  # both places are free again
        a.leave()

    asyncio.run(go())
    assert order == ["a leaves", "b entered"]
    assert run.total.free == 1 and all(cap.free == 1 for cap in run._host_caps.values())
