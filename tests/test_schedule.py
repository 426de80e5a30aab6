"""When to poll next: ``next_check`` is pure (no clock), and so is ``Planner``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aggregator.schedule import next_check, plan_next

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
H = 3600.0


def nc(interval_s: float = 1800.0, key: str = "s@t0", **kw: Any) -> datetime:
    return next_check(T0, interval_s, key=key, floor_s=300.0, ceiling_s=86400.0, **kw)


def test_interval_max_age_and_ttl() -> None:
    assert nc() == T0 + timedelta(minutes=30)
    assert nc(max_age_s=2 * H) == T0 + timedelta(hours=2)  # the server says: no news before
    assert nc(max_age_s=60) == T0 + timedelta(minutes=30)  # never more often than the interval
    assert nc(ttl_s=3 * H) == T0 + timedelta(hours=3)


def test_backoff_doubles_per_failure_up_to_the_ceiling_and_resets() -> None:
    waits = [nc(failures=f) - T0 for f in range(8)]
    assert waits[:4] == [timedelta(minutes=30 * 2**f) for f in range(4)]
    assert waits[7] == timedelta(hours=24)  # capped
    assert nc(failures=0) == T0 + timedelta(minutes=30)


def test_floor_and_ceiling() -> None:
    assert nc(interval_s=10) == T0 + timedelta(minutes=5)
    assert nc(max_age_s=30 * 86400) == T0 + timedelta(days=1)


def test_retry_after_is_honoured_beyond_the_ceiling_up_to_a_week() -> None:
    assert nc(retry_after_s=2 * 86400) == T0 + timedelta(days=2)
    assert nc(retry_after_s=30 * 86400) == T0 + timedelta(days=7)
    assert nc(retry_after_s=10) == T0 + timedelta(minutes=30)


def test_jitter_is_bounded_stable_and_spreads_sources() -> None:
    times = {nc(jitter=0.1, key=f"s{i}@t0") for i in range(20)}
    assert all(T0 + timedelta(minutes=30) <= t <= T0 + timedelta(minutes=33) for t in times)
    assert len(times) == 20
    assert nc(jitter=0.1, key="a@t0") == nc(jitter=0.1, key="a@t0")


def test_skip_hours_and_days_move_the_check_out() -> None:
    assert nc(skip_hours=(12, 13)) == datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
    thursday = T0.weekday()
    assert nc(skip_days=(thursday,)) == datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
    assert nc(skip_hours=tuple(range(24))) == T0 + timedelta(minutes=30)  # nonsense: ignored


def why(**kw: Any) -> str:
    return plan_next(T0, 1800.0, key="s@t0", floor_s=300.0, ceiling_s=86400.0, **kw).why


def test_the_next_check_says_what_decided_it() -> None:
    assert why() == "interval"
    assert why(max_age_s=2 * H) == "cache" and why(ttl_s=3 * H) == "ttl"
    assert why(max_age_s=60) == "interval"  # the larger one decides
    assert why(failures=2) == "backoff" and why(failures=10) == "max_interval"
    assert plan_next(T0, 10.0, key="k", floor_s=300.0, ceiling_s=86400.0).why == "min_interval"
    assert why(retry_after_s=2 * 86400) == "retry-after"
    assert why(retry_after_s=10) == "interval, retry-after"  # shorter than the wait: still said
    assert why(skip_hours=(12, 13)) == "interval +skip"
    # the time is next_check's, whatever the reason
    for kw in ({}, {"failures": 3}, {"retry_after_s": 86400.0}, {"skip_days": (3,)}):
        assert plan_next(T0, 1800.0, key="s", floor_s=300.0, ceiling_s=86400.0, **kw).at == (
            next_check(T0, 1800.0, key="s", floor_s=300.0, ceiling_s=86400.0, **kw)
        )
