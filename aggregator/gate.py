"""A counting semaphore for the tick's caps that costs nothing to pass when a place is free.

``asyncio.Semaphore.acquire`` is a coroutine (created, awaited, and its ``locked()`` check
scanning the waiters) even when a permit is free, and ``release`` wakes waiters through a scan
too; a tick takes two per poll (the host's cap, the tick's). ``Gate.take_now`` is a plain call
for the usual case, ``Gate.take`` waits in FIFO order otherwise, and ``Gate.give`` hands the
place straight to the first waiter (issue #16). Waiters cancelled while waiting leave; a waiter
cancelled after it was handed a place passes it on, so no place is ever lost.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Gate:
    __slots__ = ("_waiters", "free")

    def __init__(self, places: int) -> None:
        if places < 1:
            raise ValueError("a gate needs at least one place")
        self.free = places
        self._waiters: deque[asyncio.Future[None]] = deque()

    def take_now(self) -> bool:
        """Take a free place if there is one nobody is waiting for."""
        if self.free and not self._waiters:
            self.free -= 1
            return True
        return False

    async def take(self) -> None:
        """Take a place, waiting for one in turn."""
        if self.take_now():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed a place, cancelled after
                self.give()
            else:
                self._waiters.remove(waiter)
            raise

    def give(self) -> None:
        """Give a place back: to the first waiter still waiting, else to the free ones."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())
