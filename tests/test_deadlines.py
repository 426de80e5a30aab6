"""Tests for aggregator.deadlines: asyncio.timeout's behaviour, one timer for many tasks."""

from __future__ import annotations

import asyncio

import pytest

from aggregator.deadlines import Deadlines


async def _never() -> None:
    await asyncio.Event().wait()


async def _value(v: int) -> int:
    await asyncio.sleep(0)
    return v


def test_results_pass_through_and_nothing_is_left_behind() -> None:
    async def go() -> None:
        d = Deadlines()
        assert await asyncio.gather(*(d.within(60, _value(i)) for i in range(50))) == list(
            range(50)
        )
        assert len(d) == 0
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]

    asyncio.run(go())


def test_only_the_late_one_times_out_among_many() -> None:
    """Fast operations under a long deadline are untouched while a short one expires; the
    late task gets TimeoutError (not CancelledError) and can go on with its next operation."""

    async def go() -> None:
        d = Deadlines()
        release = asyncio.Event()

        async def slow_then_ok() -> str:
            with pytest.raises(TimeoutError):
                await d.within(0.02, _never())
            task = asyncio.current_task()
            assert task is not None and task.cancelling() == 0  # the cancel was taken back
            return await d.within(60, _value(7)) and "went on"

        async def patient() -> int:
            await release.wait()
            return 1

        waiting = [asyncio.ensure_future(d.within(60, patient())) for _ in range(10)]
        assert await slow_then_ok() == "went on"
        release.set()
        assert await asyncio.gather(*waiting) == [1] * 10
        assert len(d) == 0

    asyncio.run(go())


def test_an_earlier_deadline_handed_out_later_rearms_the_timer() -> None:
    async def go() -> None:
        d = Deadlines()
        long = asyncio.ensure_future(d.within(30, _never()))
        await asyncio.sleep(0)  # the long one arms the timer for +30 s
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await d.within(0.02, _never())
        assert loop.time() - started < 5  # not the +30 s timer
        long.cancel()
        with pytest.raises(asyncio.CancelledError):
            await long

    asyncio.run(go())


def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    """Shutdown cancels a fetch worker: that must not be mistaken for a timeout."""

    async def go() -> None:
        d = Deadlines()
        task = asyncio.ensure_future(d.within(60, _never()))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(d) == 0

    asyncio.run(go())


def test_late_but_finished_keeps_its_result_and_the_task_is_not_left_cancelled() -> None:
    """The timer fires while the operation's last step is already scheduled: it swallows the
    cancellation and returns; the result stands and the task carries no pending cancel."""

    async def swallowing() -> str:
        try:
            await _never()
        except asyncio.CancelledError:
            return "finished anyway"
        return "unreachable"

    async def go() -> None:
        d = Deadlines()
        assert await d.within(0.01, swallowing()) == "finished anyway"
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0
        assert await _value(3) == 3  # no stray CancelledError at the next await

    asyncio.run(go())


def test_nested_use_on_one_task_falls_back_to_asyncio_timeout() -> None:
    async def go() -> None:
        d = Deadlines()

        async def inner() -> int:
            return await d.within(60, _value(5))

        assert await d.within(60, inner()) == 5
        with pytest.raises(TimeoutError):
            await d.within(60, d.within(0.01, _never()))
        assert len(d) == 0

    asyncio.run(go())
