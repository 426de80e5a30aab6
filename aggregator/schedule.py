"""When to poll a source next: pure functions of the poll's outcome and the config. No clock."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .config import PollConfig, SourceConfig
from .quickinit import quick_init
from .types import FeedHints

MAX_BACKOFF_SHIFT = 6  # 2**6: at most 64 times the interval (then the ceiling applies)
MAX_RETRY_AFTER_S = 7 * 86400.0
NO_HINTS = FeedHints()


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


@quick_init
@dataclass(frozen=True, slots=True)
class NextCheck:
    """When to poll a source next, and what decided it (shown by ``sources``, the status page).

    ``why`` is one of: "interval", "cache" (the server's Cache-Control / Expires), "ttl" (the
    feed's RSS ttl), "backoff" (consecutive failures), "min_interval", "max_interval",
    "retry-after" (429/503: never cut short, not even by ``once --force``; added after the
    reason that decided when the wait is longer anyway), each followed by " +skip" when RSS
    skipHours/skipDays moved it.
    """

    at: datetime
    why: str


def plan_next(
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
) -> NextCheck:
    """When to poll a source next, and why. Pure: the same inputs give the same answer.

    The wait is the largest of the interval, the server's freshness and the feed's TTL, doubled
    per consecutive failure, kept within [floor, ceiling], spread by up to ``jitter`` of itself
    (stable per ``key``) so sources sharing a host drift apart; a Retry-After is always honoured
    (up to a week), and RSS skipHours/skipDays push it out of the skipped hours.
    """
    wait, why = interval_s, "interval"
    if max_age_s and max_age_s > wait:
        wait, why = max_age_s, "cache"
    if ttl_s and ttl_s > wait:
        wait, why = ttl_s, "ttl"
    if failures:
        wait, why = wait * (1 << min(failures, MAX_BACKOFF_SHIFT)), "backoff"
    if wait < floor_s:
        wait, why = floor_s, "min_interval"
    elif wait > ceiling_s:
        wait, why = ceiling_s, "max_interval"
    if jitter:
        wait += wait * jitter * _unit(key)
    if retry_after_s:  # the server asked us to wait: said even when the back-off is longer
        asked = min(retry_after_s, MAX_RETRY_AFTER_S)
        wait, why = (asked, "retry-after") if asked >= wait else (wait, f"{why}, retry-after")
    at = now + timedelta(seconds=wait)
    moved = _skip(at, skip_hours, skip_days)
    return NextCheck(moved, why if moved == at else f"{why} +skip")


def next_check(now: datetime, interval_s: float, **kw: Any) -> datetime:
    """``plan_next(...).at``."""
    return plan_next(now, interval_s, **kw).at


@dataclass(frozen=True, slots=True)
class Planner:
    """``plan_next`` with the ``[poll]`` settings of one tick at ``now``."""

    poll: PollConfig
    now: datetime
    _at: str = field(init=False, repr=False, compare=False)  # ``now`` in jitter keys

    def __post_init__(self) -> None:
        object.__setattr__(self, "_at", self.now.isoformat())  # once a tick, not once a poll

    def next_for(
        self,
        source: SourceConfig,
        *,
        failures: int = 0,
        max_age_s: float | None = None,
        retry_after_s: float | None = None,
        hints: FeedHints = NO_HINTS,
    ) -> NextCheck:
        return plan_next(
            self.now,
            source.interval_s or self.poll.interval_s,
            key=f"{source.id}@{self._at}",
            floor_s=self.poll.min_interval_s,
            ceiling_s=self.poll.max_interval_s,
            jitter=self.poll.jitter,
            failures=failures,
            max_age_s=max_age_s,
            ttl_s=hints.ttl_s,
            retry_after_s=retry_after_s,
            skip_hours=hints.skip_hours,
            skip_days=hints.skip_days,
        )
