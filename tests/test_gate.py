"""``gate.Gate``: the tick's caps (issue #16): never more inside than its places, waiters in
turn, and no place lost to a cancellation, whenever it lands."""

from __future__ import annotations

import asyncio

import pytest

from aggregator.gate import Gate


def test_a_gate_needs_a_place() -> None:
    with pytest.raises(ValueError):
        Gate(0)


def test_places_are_taken_at_once_then_in_turn() -> None:
    async def go() -> list[str]:
        gate, order = Gate(2), []
        assert gate.take_now() and gate.take_now() and not gate.take_now()

        async def wait(name: str) -> None:
            await gate.take()
            order.append(name)

        waiting = [asyncio.create_task(wait(n)) for n in ("a", "b", "c")]
        await asyncio.sleep(0)
        assert gate.waiting == 3 and not order
        gate.give()
        await asyncio.sleep(0)
        assert order == ["a"]
        assert not gate.take_now()  # a waiter goes first, even with a place free
        gate.give()
        gate.give()
        await asyncio.gather(*waiting)
        assert gate.free == 0 and gate.waiting == 0
        return order

    assert asyncio.run(go()) == ["a", "b", "c"]


def test_a_waiter_cancelled_while_waiting_leaves_its_turn() -> None:
    async def go() -> None:
        gate = Gate(1)
        await gate.take()
        first = asyncio.create_task(gate.take())
        second = asyncio.create_task(gate.take())
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        gate.give()
        await second  # the place went to the next waiter, not to the cancelled one
        assert gate.free == 0 and gate.waiting == 0

    asyncio.run(go())


def test_a_waiter_cancelled_after_it_was_handed_a_place_passes_it_on() -> None:
    async def go() -> None:
        gate = Gate(1)
        await gate.take()
        handed = asyncio.create_task(gate.take())
        after = asyncio.create_task(gate.take())
        await asyncio.sleep(0)
        gate.give()  # the place is handed to ``handed`` ...
        handed.cancel()  # ... which is cancelled before it runs again
        await asyncio.gather(handed, return_exceptions=True)
        assert handed.cancelled()
        await after  # the place reached the next waiter
        gate.give()
        assert gate.free == 1 and gate.waiting == 0

    asyncio.run(go())


def test_many_tasks_never_exceed_the_places() -> None:
    async def go() -> int:
        gate, inside, most = Gate(3), 0, 0

        async def one(i: int) -> None:
            nonlocal inside, most
            if not gate.take_now():
                await gate.take()
            inside += 1
            most = max(most, inside)
            for _ in range(i % 4):
                await asyncio.sleep(0)
            inside -= 1
            gate.give()

        tasks = [asyncio.create_task(one(i)) for i in range(200)]
        for task in tasks[::7]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert gate.free == 3 and gate.waiting == 0
        return most

    assert asyncio.run(go()) == 3
