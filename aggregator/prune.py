"""Retention applied (issue #15): ``aggregator prune [--dry-run]`` and the daemon's prune at a
quiet moment. An outer shell over the store; what is kept is ``retention.RetentionConfig``.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from .config import Config
from .store import Store
from .types import PruneReport

log = logging.getLogger(__name__)


def run_prune(config: Config, store: Store, *, now: datetime, dry_run: bool = False) -> PruneReport:
    """Prune what ``[retention]`` does not keep as of ``now`` (one unit of work)."""
    started = time.monotonic()
    with store.transaction() as tx:
        report = tx.prune(config.retention.policy(now), dry_run=dry_run)
    log.info(
        "prune%s items=%d entries=%d tombstones_expired=%d duration_ms=%d",
        " (dry run)" if dry_run else "",
        report.items,
        report.entries,
        report.tombstones_expired,
        round((time.monotonic() - started) * 1000),
    )
    return report


def describe(report: PruneReport, config: Config, *, now: datetime) -> list[str]:
    """What ``aggregator prune`` prints: a summary line, then the copies pruned per source."""
    verb = "would prune" if report.dry_run else "pruned"
    kept = keeps(config, now=now)
    lines = [
        f"{verb} {report.items} copies of entries ({report.entries} entries deleted, the rest "
        f"still carried by another source); {report.tombstones_expired} tombstones expired; "
        f"keeping {kept}"
    ]
    lines += [f"  {source_id}  {count}" for source_id, count in report.by_source]
    return lines


def keeps(config: Config, *, now: datetime) -> str:
    """The policy in words: "entries dated after 2026-08-28, the newest 1000 per source"."""
    policy = config.retention.policy(now)
    parts = []
    if policy.keep_after is not None:
        parts.append(f"entries dated after {policy.keep_after:%Y-%m-%d}")
    if policy.max_entries is not None:
        parts.append(f"the newest {policy.max_entries} per source")
    return ", ".join(parts) or "everything (no max_age, no max_entries)"


class QuietPruner:
    """When the daemon prunes: once ``[retention] prune_every`` has passed since the last
    prune, after a tick that stored nothing new (a quiet moment); if no tick is quiet for
    twice that long, after the next tick all the same."""

    def __init__(self) -> None:
        self.last_at: datetime | None = None

    def due(self, config: Config, *, now: datetime, quiet: bool) -> bool:
        every = timedelta(seconds=config.retention.every_s)
        if self.last_at is None:  # first tick: prune soon after start, when it is quiet
            return quiet
        waited = now - self.last_at
        return waited >= 2 * every or (quiet and waited >= every)

    def done(self, now: datetime) -> None:
        self.last_at = now
