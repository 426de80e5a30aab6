"""`aggregator explain`, `sources show`'s history, and how long they look back (issue #14).

An outer shell over the store's read side: ``explain`` finds the entries a query names and
tells each one's story, with its place in every configured output; ``HistoryPruner`` forgets
the polls and verdicts older than ``[explain] keep_days`` at a quiet moment of the daemon.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .config import Config
from .errors import StoreError
from .story import PollLog, Story
from .types import StoredEntry

if TYPE_CHECKING:
    from .store import SqlStore, Store

log = logging.getLogger(__name__)

MAX_STORIES = 20  # entries a query may name; the newest are told
# An output as explain sees it: name, its sources, its limit, why its rules hide an entry.
Feed = tuple[str, list[str], int, Callable[[StoredEntry], str | None] | None]
FORGET_EVERY = timedelta(hours=1)  # the history is pruned at most this often


def explain(
    config: Config, store: SqlStore, query: str, *, limit: int = MAX_STORIES
) -> tuple[Story, ...]:
    """The stories of the entries ``query`` names (stored ones newest first, then those never
    stored), each with its place in every configured output."""
    from .store.stories import entry_story, find_entries, find_unstored, place_in, unstored_story

    stories: list[Story] = []
    with store._read() as conn:
        for entry_id in find_entries(conn, query, limit=limit):
            story = entry_story(conn, entry_id)
            if story is None:  # deleted between the two reads
                continue
            places = tuple(
                place_in(conn, story, output=name, source_ids=ids, limit=size, hides=hides)
                for name, ids, size, hides in _feeds(config)
            )
            stories.append(replace(story, outputs=places))
        for source_id, key in find_unstored(conn, query, limit=max(0, limit - len(stories))):
            stories.append(unstored_story(conn, source_id, key))
    return tuple(stories)


def _feeds(config: Config) -> list[Feed]:
    """What ``publish`` writes, as (name, its sources, its limit, what its rules hide): each
    configured output, each group's feeds, the river page."""
    feeds: list[Feed] = [
        (spec.name, [s.id for s in config.sources if spec.selects(s)], spec.limit,
         spec.filters.drops if spec.filters else None)
        for spec in config.outputs
    ]  # fmt: skip
    for group in sorted({s.group for s in config.sources if s.group}):
        ids = [s.id for s in config.sources if s.group == group]
        feeds.append((f"group {group}", ids, config.output.limit, None))
    feeds.append(("river (index.html)", [s.id for s in config.sources], config.output.limit, None))
    return feeds


def recent_polls(store: SqlStore, source_id: str, *, limit: int = 10) -> tuple[PollLog, ...]:
    """The source's last ``limit`` polls, newest first (``sources show``)."""
    from .store.history import recent_polls as read

    with store._read() as conn:
        return read(conn, source_id, limit=limit)


@dataclass
class HistoryPruner:
    """Forgets the history older than ``[explain] keep_days``: after a tick that stored nothing
    new (a quiet moment) once ``FORGET_EVERY`` has passed, or after any tick once twice that
    has passed. The first quiet tick after a start prunes too, unless the store says another
    process pruned less than ``FORGET_EVERY`` ago: a ``once`` from cron every few minutes, or
    each node of a cluster, does not scan the history tables at every start (issue #16)."""

    last_at: datetime | None = None

    def due(self, now: datetime, *, quiet: bool) -> bool:
        if self.last_at is None:
            return quiet
        waited = now - self.last_at
        return waited >= 2 * FORGET_EVERY or (quiet and waited >= FORGET_EVERY)

    def maybe_forget(self, store: Store, config: Config, now: datetime, *, quiet: bool) -> None:
        if not self.due(now, quiet=quiet):
            return
        before = now - timedelta(days=config.explain.keep_days)
        try:
            pruned_at = store.history_pruned_at()  # by another process, maybe
            # (one from a clock ahead of this one's is not waited for)
            self.last_at = pruned_at if pruned_at is not None and pruned_at <= now else None
            if not self.due(now, quiet=quiet):
                return
            self.last_at = now
            with store.transaction() as tx:
                polls, verdicts = tx.forget_history(before, at=now)
        except StoreError as exc:  # tried again at the next quiet moment
            log.error("could not prune the history kept for explain: %s", exc)
            return
        if polls or verdicts:
            log.info("history pruned polls=%d decisions=%d before=%s", polls, verdicts,
                     before.strftime("%Y-%m-%dT%H:%M:%SZ"))  # fmt: skip
