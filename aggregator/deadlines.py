"""Total timeouts for many concurrent operations on one event loop, with one timer.

``asyncio.timeout`` arms (and cancels) a loop timer on every call: for a conditional GET that
ends in a 304 that is a noticeable share of its CPU time, and a tick makes thousands. Here each
operation only records when it must end; one timer, set for the earliest deadline, cancels
the operations that are late when it fires and re-arms itself for the next one. Deadlines
handed out later than the armed one (the usual case: the same timeout, later starts) cost no
timer at all; an earlier one re-arms it. The late operation's task sees what
``asyncio.timeout`` gives: the cancellation turned into ``TimeoutError``, and a cancellation
from elsewhere (shutdown) still propagating as ``CancelledError``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")
EARLY_S = 0.001  # a timer may fire this much before its time: treat such deadlines as met


class Deadlines:
    """``await deadlines.within(timeout_s, awaitable)``: ``awaitable``, or TimeoutError.

    One per event loop (``fetch.Http`` has one); one deadline per task at a time (a nested
    call on the same task falls back to ``asyncio.timeout``).
    """

    def __init__(self) -> None:
        self._due: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def __len__(self) -> int:
        """Operations running under a deadline."""
        return len(self._due)

    async def within(self, timeout_s: float, awaitable: Awaitable[T]) -> T:
        task = asyncio.current_task()
        if task is None or task in self._due:
            async with asyncio.timeout(timeout_s):
                return await awaitable
        loop = asyncio.get_running_loop()
        due = loop.time() + timeout_s
        self._due[task] = due
        if due < self._timer_at:
            self._arm(loop, due)
        cancelling = task.cancelling()
        try:
            result = await awaitable
        except BaseException as exc:
            ours = self._release(task) and task.uncancel() <= cancelling
            if ours and isinstance(exc, asyncio.CancelledError):
                raise TimeoutError from exc
            raise
        if self._release(task):  # late, but it finished before the cancellation landed
            task.uncancel()
        return result

    def _release(self, task: asyncio.Task[Any]) -> bool:
        """Forget ``task``'s deadline; True if it expired (the cancellation was ours)."""
        del self._due[task]
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = loop.call_at(when, self._fire, loop), when

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer, self._timer_at = None, math.inf
        now = loop.time() + EARLY_S
        waiting = []
        for task, due in self._due.items():
            if task in self._expired:
                continue
            if due <= now:
                self._expired.add(task)
                task.cancel()
            else:
                waiting.append(due)
        if waiting:
            self._arm(loop, min(waiting))
