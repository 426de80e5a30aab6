"""One unit of work on the store: ``SqlTransaction``, the writes of a poll (or of many) and the
reads that decide them, on one Core connection begun at its first statement.
``SqlStore.transaction`` commits it, or rolls it back; driver errors become ``StoreError``
there (``wrapped``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from ..errors import StoreError
from ..types import (
    Candidate,
    Decision,
    Entry,
    Known,
    KnownItem,
    PollRecord,
    PrunePolicy,
    PruneReport,
    StoreResult,
)
from . import generation
from .bookkeeping import record_feed, record_polls
from .history import close_runs, log_polls, prune_history
from .retention import forget_sources, prune, remember_dropped, tombstones
from .write import ENTRIES, ITEMS, SOURCES, apply_decisions

if TYPE_CHECKING:
    from . import SourceLike

CHUNK = 500  # bound on bound parameters per IN (...) (SQLite's limit is 32766 nowadays, 999 once)


# The lookups of ``known`` run for every parsed document: built once, with expanding IN
# parameters, so each run binds lists instead of building (and cache-keying) a new statement.
_KNOWN_ITEMS = select(
    ITEMS.c.key,
    ITEMS.c.entry_id,
    ITEMS.c.content_hash,
    ITEMS.c.is_primary,
    ITEMS.c.hash_version,
    ITEMS.c.field_hashes,
).where(
    ITEMS.c.source_id == bindparam("source"), ITEMS.c.key.in_(bindparam("keys", expanding=True))
)
# One query for links and titles (SQLite and PostgreSQL use both indexes for the OR).
_CANDIDATES = select(
    ENTRIES.c.id, ENTRIES.c.norm_link, ENTRIES.c.norm_title, ENTRIES.c.sort_at
).where(
    or_(
        ENTRIES.c.norm_link.in_(bindparam("links", expanding=True)),
        ENTRIES.c.norm_title.in_(bindparam("titles", expanding=True)),
    )
)
_CARRIERS = (
    select(ITEMS.c.entry_id, ITEMS.c.source_id)
    .where(ITEMS.c.entry_id.in_(bindparam("ids", expanding=True)))
    .order_by(ITEMS.c.id)
)


def _carriers(conn: Connection, entry_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    """The sources that carry each entry, oldest item first."""
    out: dict[int, list[str]] = {}
    for chunk in chunks(entry_ids):
        for entry_id, source_id in conn.execute(_CARRIERS, {"ids": list(chunk)}):
            out.setdefault(entry_id, []).append(source_id)
    return {k: tuple(v) for k, v in out.items()}


def chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def wrapped(exc: SQLAlchemyError) -> StoreError:
    """The driver's own message (no SQL, no bound values: they may carry whole entries)."""
    detail = getattr(exc, "orig", None) or exc
    transient = isinstance(exc, OperationalError | InterfaceError)
    return StoreError(f"database error: {type(detail).__name__}: {detail}", transient=transient)


class SqlTransaction:
    """One unit of work: the writes of a poll (or of many), and the reads that decide them.

    Begins at its first statement on a connection of its own; ``SqlStore.transaction`` commits
    it, or rolls it back when the block raises.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None
        self.changes_outputs = False  # commits a new content generation (``store.generation``)

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            conn = self._engine.connect()
            conn.begin()
            self._conn = conn
        return self._conn

    def end(self, *, commit: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is None:  # nothing was read or written: nothing to end
            return
        try:
            if commit:
                if self.changes_outputs:
                    generation.bump(conn)
                conn.commit()
            else:
                conn.rollback()
        finally:
            conn.close()

    # -- sources ----------------------------------------------------------------------------------

    def sync_sources(self, sources: Iterable[SourceLike], *, now: datetime) -> None:
        """Create rows for configured sources and follow edits of url, title, group, enabled."""
        columns = (SOURCES.c.id, SOURCES.c.config_url, SOURCES.c.title, SOURCES.c.group_name,
                   SOURCES.c.enabled)  # fmt: skip
        rows = {row.id: row for row in self.conn.execute(select(*columns))}
        new: list[dict[str, Any]] = []
        moved: list[dict[str, Any]] = []
        edited: list[dict[str, Any]] = []
        for src in sources:
            row = rows.get(src.id)
            about = {"title": src.title, "group_name": src.group, "enabled": src.enabled}
            if row is None:
                new.append({"id": src.id, "url": src.url, "config_url": src.url, "status": "new",
                            "failures": 0, "next_check_at": now, "next_check_why": "new",
                            **about})  # fmt: skip
                continue
            if row.config_url != src.url:  # the operator changed it: start afresh
                moved.append({"b_id": src.id, "b_url": src.url})
            if (row.title, row.group_name, row.enabled) != (src.title, src.group, src.enabled):
                edited.append({"b_id": src.id, **{f"b_{k}": v for k, v in about.items()}})
        self.changes_outputs |= bool(new or moved or edited)
        if new:
            self.conn.execute(insert(SOURCES), new)
        if moved:
            fresh = {"etag": None, "last_modified": None, "body_hash": None, "status": "new",
                     "failures": 0, "next_check_at": now,
                     "next_check_why": "url changed"}  # fmt: skip
            url: Any = bindparam("b_url")
            self.conn.execute(_by_id().values(url=url, config_url=url, **fresh), moved)
        if edited:
            about_params: dict[str, Any] = {
                k: bindparam(f"b_{k}") for k in ("title", "group_name", "enabled")
            }
            self.conn.execute(_by_id().values(**about_params), edited)

    def remove_sources(self, source_ids: Sequence[str]) -> int:
        """Forget sources and what only they carried; merged entries others carry stay (their
        oldest other carrier becomes their primary source). Returns the entries dropped."""
        ids = list(source_ids)
        if not ids:
            return 0
        self.changes_outputs = True
        self._reassign_primaries(ids)
        self.conn.execute(delete(ITEMS).where(ITEMS.c.source_id.in_(ids)))
        # What is still primary to a removed source had no other carrier.
        dropped = self.conn.execute(delete(ENTRIES).where(ENTRIES.c.primary_source_id.in_(ids)))
        self.conn.execute(delete(SOURCES).where(SOURCES.c.id.in_(ids)))
        forget_sources(self.conn, ids)
        return int(dropped.rowcount or 0)

    def _reassign_primaries(self, removed: list[str]) -> None:
        owned = select(ENTRIES.c.id).where(ENTRIES.c.primary_source_id.in_(removed))
        others = (
            select(ITEMS.c.entry_id, ITEMS.c.id, ITEMS.c.source_id)
            .where(ITEMS.c.entry_id.in_(owned), ITEMS.c.source_id.not_in(removed))
            .order_by(ITEMS.c.entry_id, ITEMS.c.id)
        )
        heirs: dict[int, tuple[int, str]] = {}
        for entry_id, item_id, source_id in self.conn.execute(others):
            heirs.setdefault(entry_id, (item_id, source_id))
        if not heirs:
            return
        self.conn.execute(
            update(ENTRIES).where(ENTRIES.c.id == bindparam("b_id"))
            .values(primary_source_id=bindparam("b_source")),
            [{"b_id": e, "b_source": s} for e, (_, s) in heirs.items()],
        )  # fmt: skip
        self.conn.execute(
            update(ITEMS).where(ITEMS.c.id == bindparam("b_id")).values(is_primary=True),
            [{"b_id": item_id} for item_id, _ in heirs.values()],
        )

    # -- a poll's writes --------------------------------------------------------------------------

    def known(self, source_id: str, entries: Sequence[Entry]) -> Known:
        """Stored items of this source with the same keys, and merged entries that may match."""
        keys = [e.key for e in entries]
        links = sorted({e.norm_link for e in entries if e.norm_link})
        titles = sorted({e.norm_title for e in entries if e.norm_title})
        items: dict[str, KnownItem] = {}
        found: dict[int, tuple[str | None, str, datetime]] = {}
        conn = self.conn
        for chunk in chunks(keys):
            params = {"source": source_id, "keys": list(chunk)}
            for key, entry_id, digest, primary, version, fields in conn.execute(
                _KNOWN_ITEMS, params
            ):
                items[key] = KnownItem(key, entry_id, digest, primary, version, fields)
        for start in range(0, max(len(links), len(titles)), CHUNK):
            params = {
                "links": links[start : start + CHUNK],
                "titles": titles[start : start + CHUNK],
            }
            for row_id, link, title, sort_at in conn.execute(_CANDIDATES, params):
                found[row_id] = (link, title, sort_at)
        carriers = _carriers(conn, sorted(found))
        candidates = tuple(Candidate(i, carriers.get(i, ()), *found[i]) for i in sorted(found))
        gone = tombstones(conn, source_id, [k for k in keys if k not in items])
        return Known(items=items, candidates=candidates, tombstones=gone)

    def apply(
        self, source_id: str, decisions: Sequence[Decision], record: PollRecord
    ) -> StoreResult:
        """Write one poll's verdicts and the source's new state."""
        result = apply_decisions(self.conn, source_id, decisions, record.at)
        self.changes_outputs |= result.changes_outputs
        remember_dropped(self.conn, source_id, decisions, record.at)
        close_runs(self.conn, [record])  # before the bookkeeping ends the source's run
        record_feed(self.conn, record)
        log_polls(self.conn, [record], result)  # the poll's history (issue #14)
        return result

    def prune(self, policy: PrunePolicy, *, dry_run: bool = False) -> PruneReport:
        """Retention (``store.retention``): prune behind tombstones, or count with ``dry_run``."""
        report = prune(self.conn, policy, dry_run=dry_run)
        self.changes_outputs |= not dry_run and bool(report.items or report.entries)
        return report

    def forget_history(self, before: datetime, *, at: datetime) -> tuple[int, int]:
        """Polls and verdicts older than ``before`` go; return how many of each (issue #14).
        The store remembers ``at`` as the time of this prune (``history_pruned_at``)."""
        generation.mark_history_pruned(self.conn, at)
        return prune_history(self.conn, before)

    def record_polls(self, records: Sequence[PollRecord]) -> None:
        """Bookkeeping of polls that stored no entries (304s, unchanged bodies, failures)."""
        if records:
            close_runs(self.conn, records)  # before the bookkeeping ends the runs they end
            record_polls(self.conn, records)
            log_polls(self.conn, records)


def _by_id() -> Any:
    return update(SOURCES).where(SOURCES.c.id == bindparam("b_id"))
