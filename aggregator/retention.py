"""``[retention]``: how long entries are kept, and the prune policy that gives at a moment.

Pure: no I/O, no clock (``now`` is an argument). Pruning itself is ``prune.run_prune``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .configcheck import Check, Problems, check_table, is_duration, parse_duration
from .types import PrunePolicy

DAY_S = 86400.0


def _is_age(v: Any) -> str | None:
    if v in (0, "0"):
        return None
    return (
        None
        if parse_duration(v) is not None
        else 'must be a duration like "90d", or "0" (keep for ever)'
    )


def _is_count(v: Any) -> str | None:
    ok = isinstance(v, int) and not isinstance(v, bool) and v >= 0
    return None if ok else "must be a whole number (0: no limit)"


_RETENTION: dict[str, Check] = {
    "max_age": _is_age,
    "max_entries": _is_count,
    "keep_tombstones": is_duration,
    "prune_every": is_duration,
}


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """Defaults, and why: 90 days is a season, longer than any reader stays away without
    catching up, and far past the newest ``limit`` entries an output shows; 1,000 entries a
    source is a month of a busy news feed (30 a day) and years of a blog, and bounds the
    database (1,000 sources x 1,000 entries x ~3 kB: 3 GB at worst). Tombstones are kept two
    years: feeds carry the newest 10 to 100 items, a quiet blog's feed for a year or more, and
    a tombstone is a key and a date (~100 bytes)."""

    max_age_s: float | None = 90 * DAY_S  # None: entries are kept whatever their age
    max_entries: int | None = 1000  # per source; None: no limit
    keep_tombstones_s: float = 730 * DAY_S
    every_s: float = DAY_S  # the daemon prunes at most this often, at a quiet moment

    def policy(self, now: datetime) -> PrunePolicy:
        keep_after = None if self.max_age_s is None else now - timedelta(seconds=self.max_age_s)
        return PrunePolicy(
            now=now,
            keep_after=keep_after,
            max_entries=self.max_entries,
            tombstones_after=now - timedelta(seconds=self.keep_tombstones_s),
        )


DEFAULT_RETENTION = RetentionConfig()


def build_retention(raw: Any, problems: Problems) -> RetentionConfig:
    """``[retention]`` checked (problems under ``retention.*``) into a ``RetentionConfig``."""
    good = check_table(raw, "retention", _RETENTION, problems)
    defaults = RetentionConfig()
    age = good.get("max_age")
    count = good.get("max_entries")
    return RetentionConfig(
        max_age_s=defaults.max_age_s if age is None else parse_duration(age),
        max_entries=defaults.max_entries if count is None else (count or None),
        keep_tombstones_s=parse_duration(good.get("keep_tombstones")) or defaults.keep_tombstones_s,
        every_s=parse_duration(good.get("prune_every")) or defaults.every_s,
    )
