"""The SQLAlchemy implementation of ``Store``: SQLite (WAL) by default, PostgreSQL alike.

One short transaction per poll, or one per ``batch`` of polls. Inserts use the dialect's
ON CONFLICT DO NOTHING; the unique
constraints (``items(source_id, key)``, ``entries(uid)``) are what guarantees no duplicates even
with concurrent writers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..errors import StoreError
from ..types import (
    Candidate,
    Decision,
    Entry,
    Known,
    KnownItem,
    PollRecord,
    PollState,
    Provenance,
    SourceState,
    StoredEntry,
    StoreResult,
)
from .convert import POLL_COLUMNS, to_poll_state, to_state, to_stored
from .models import DecisionRow, EntryRow, ItemRow, SourceRow
from .write import ENTRIES, ITEMS, SOURCES, apply_decisions, record_feed, record_polls

if TYPE_CHECKING:
    from . import SourceLike

_POLL = [SOURCES.c[name] for name in POLL_COLUMNS]  # what a tick reads of each source
CHUNK = 500  # bound on bound parameters per IN (...) (SQLite's limit is 32766 nowadays, 999 once)


# The lookups of ``known`` run for every parsed document: built once, with expanding IN
# parameters, so each run binds lists instead of building (and cache-keying) a new statement.
_KNOWN_ITEMS = select(
    ITEMS.c.key, ITEMS.c.entry_id, ITEMS.c.content_hash, ITEMS.c.is_primary
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
    for chunk in _chunks(entry_ids):
        for entry_id, source_id in conn.execute(_CARRIERS, {"ids": list(chunk)}):
            out.setdefault(entry_id, []).append(source_id)
    return {k: tuple(v) for k, v in out.items()}


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


@dataclass
class _Batch:
    stack: ExitStack
    conn: Connection | None = None


class SqlStore:
    """``Store`` over one SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = threading.local()  # .batch: this thread's open batch, if any

    @contextmanager
    def _session(self) -> Iterator[Session]:
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                yield session
        except SQLAlchemyError as exc:
            raise StoreError(f"database error: {exc}") from exc

    @contextmanager
    def _conn(self) -> Iterator[Connection]:
        batch: _Batch | None = getattr(self._local, "batch", None)
        try:
            if batch is not None:  # inside ``batch``: its transaction, begun at first use
                if batch.conn is None:
                    batch.conn = batch.stack.enter_context(self.engine.begin())
                yield batch.conn
                return
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"database error: {exc}") from exc

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Run this thread's Core reads and writes (``known``, ``apply``, ``record_polls``,
        ``poll_states`` ...) in one transaction: all of them commit, or none.

        A tick stores the results that are ready together: one commit instead of two per
        source. The transaction begins at the first statement (a batch of 304s that writes
        nothing costs nothing). Nested batches join the outer one; other threads are not
        affected.
        """
        if getattr(self._local, "batch", None) is not None:
            yield
            return
        batch = self._local.batch = _Batch(ExitStack())
        try:
            with batch.stack:  # commits if the block ended normally, else rolls back
                yield
        except SQLAlchemyError as exc:
            raise StoreError(f"database error: {exc}") from exc
        finally:
            self._local.batch = None

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        """Raise StoreError unless the database answers a trivial query."""
        with self._session() as session:
            session.execute(select(1))

    # -- sources ----------------------------------------------------------------------------------

    def sync_sources(self, sources: Iterable[SourceLike], *, now: datetime) -> None:
        """Create rows for configured sources and follow edits of url, title, group, enabled."""
        with self._session() as session:
            rows = {row.id: row for row in session.scalars(select(SourceRow))}
            for src in sources:
                row = rows.get(src.id)
                if row is None:
                    row = SourceRow(id=src.id, url=src.url, config_url=src.url, status="new")
                    row.failures, row.next_check_at = 0, now
                    session.add(row)
                elif row.config_url != src.url:  # the operator changed it: start afresh
                    row.url, row.config_url = src.url, src.url
                    row.etag = row.last_modified = row.body_hash = None
                    row.status, row.failures, row.next_check_at = "new", 0, now
                row.title, row.group_name, row.enabled = src.title, src.group, src.enabled

    def source_state(self, source_id: str) -> SourceState | None:
        with self._session() as session:
            row = session.get(SourceRow, source_id)
            if row is None:
                return None
            count = session.scalar(
                select(func.count()).select_from(ItemRow).where(ItemRow.source_id == source_id)
            )
            return to_state(row, count or 0)

    def source_states(self) -> tuple[SourceState, ...]:
        with self._session() as session:
            stmt = select(ItemRow.source_id, func.count()).group_by(ItemRow.source_id)
            counts = {source_id: count for source_id, count in session.execute(stmt)}
            rows = session.scalars(select(SourceRow).order_by(SourceRow.id))
            return tuple(to_state(row, counts.get(row.id, 0)) for row in rows)

    def count_failing(self) -> int:
        """Sources whose last poll failed (or that are gone)."""
        with self._conn() as conn:
            stmt = (
                select(func.count())
                .select_from(SOURCES)
                .where(SOURCES.c.status.in_(("failed", "gone")))
            )
            return int(conn.execute(stmt).scalar() or 0)

    def poll_states(self, source_ids: Sequence[str]) -> dict[str, PollState]:
        """What a tick needs of many sources, in one narrow query per chunk of ids."""
        with self._conn() as conn:
            return {
                row[0]: to_poll_state(row)
                for chunk in _chunks(list(source_ids))
                for row in conn.execute(select(*_POLL).where(SOURCES.c.id.in_(chunk)))
            }

    def record_polls(self, records: Sequence[PollRecord]) -> None:
        """Bookkeeping of polls that stored no entries (304s, unchanged bodies, failures)."""
        if records:
            with self._conn() as conn:
                record_polls(conn, records)

    def due_states(self, now: datetime, *, among: Sequence[str]) -> dict[str, PollState]:
        """The sources (of ``among``) whose next check is due, earliest first, with what the
        tick needs of them; gone or disabled ones never. One query, no list of ids sent:
        ``among`` (the configured sources) is applied here.
        """
        wanted = set(among)
        if not wanted:
            return {}
        stmt = (
            select(*_POLL)
            .where(
                SOURCES.c.enabled.is_(True),
                SOURCES.c.status != "gone",
                or_(SOURCES.c.next_check_at.is_(None), SOURCES.c.next_check_at <= now),
            )
            .order_by(SOURCES.c.next_check_at, SOURCES.c.id)
        )
        with self._conn() as conn:
            return {row[0]: to_poll_state(row) for row in conn.execute(stmt) if row[0] in wanted}

    def schedule(self, source_id: str, next_check_at: datetime | None) -> None:
        with self._session() as session:
            session.execute(
                update(SourceRow)
                .where(SourceRow.id == source_id)
                .values(next_check_at=next_check_at)
            )

    def remove_sources(self, source_ids: Sequence[str]) -> int:
        """Forget sources and what only they carried; merged entries others carry stay."""
        with self._session() as session:
            ids = list(source_ids)
            carried = select(ItemRow.entry_id).where(ItemRow.source_id.in_(ids))
            entry_ids = list(session.scalars(carried.distinct()))
            session.execute(delete(ItemRow).where(ItemRow.source_id.in_(ids)))
            orphans = list(
                session.scalars(
                    select(EntryRow.id).where(
                        EntryRow.id.in_(entry_ids), ~EntryRow.id.in_(select(ItemRow.entry_id))
                    )
                )
            )
            session.execute(delete(EntryRow).where(EntryRow.id.in_(orphans)))
            self._reassign_primaries(session, ids)
            session.execute(delete(SourceRow).where(SourceRow.id.in_(ids)))
            return len(orphans)

    @staticmethod
    def _reassign_primaries(session: Session, removed: Sequence[str]) -> None:
        """Entries whose primary source was removed now belong to their oldest other carrier."""
        stmt = select(EntryRow).where(EntryRow.primary_source_id.in_(list(removed)))
        for entry in session.scalars(stmt):
            item = session.scalars(
                select(ItemRow).where(ItemRow.entry_id == entry.id).order_by(ItemRow.id).limit(1)
            ).first()
            if item is not None:
                entry.primary_source_id, item.is_primary = item.source_id, True

    # -- entries ----------------------------------------------------------------------------------

    def known(self, source_id: str, entries: Sequence[Entry]) -> Known:
        """Stored items of this source with the same keys, and merged entries that may match."""
        keys = [e.key for e in entries]
        links = sorted({e.norm_link for e in entries if e.norm_link})
        titles = sorted({e.norm_title for e in entries if e.norm_title})
        items: dict[str, KnownItem] = {}
        found: dict[int, tuple[str | None, str, datetime]] = {}
        with self._conn() as conn:
            for chunk in _chunks(keys):
                params = {"source": source_id, "keys": list(chunk)}
                for key, entry_id, content_hash, primary in conn.execute(_KNOWN_ITEMS, params):
                    items[key] = KnownItem(key, entry_id, content_hash, primary)
            for start in range(0, max(len(links), len(titles)), CHUNK):
                params = {
                    "links": links[start : start + CHUNK],
                    "titles": titles[start : start + CHUNK],
                }
                for row_id, link, title, sort_at in conn.execute(_CANDIDATES, params):
                    found[row_id] = (link, title, sort_at)
            carriers = _carriers(conn, sorted(found))
        candidates = tuple(Candidate(i, carriers.get(i, ()), *found[i]) for i in sorted(found))
        return Known(items=items, candidates=candidates)

    def apply(
        self, source_id: str, decisions: Sequence[Decision], record: PollRecord
    ) -> StoreResult:
        """Write one poll's verdicts and the source's new state in one transaction."""
        with self._conn() as conn:
            result = apply_decisions(conn, source_id, decisions, record.at)
            record_feed(conn, record)
        return result

    # -- reading for outputs ----------------------------------------------------------------------

    def recent_entries(self, source_ids: Sequence[str], *, limit: int) -> tuple[StoredEntry, ...]:
        """The newest ``limit`` merged entries carried by any of ``source_ids``, newest first."""
        if not source_ids:
            return ()
        with self._session() as session:
            carried = select(ItemRow.entry_id).where(ItemRow.source_id.in_(list(source_ids)))
            rows = list(
                session.scalars(
                    select(EntryRow)
                    .where(EntryRow.id.in_(carried))
                    .order_by(EntryRow.sort_at.desc(), EntryRow.id.desc())
                    .limit(limit)
                )
            )
            provenance, groups = self._provenance(session, [row.id for row in rows])
        return tuple(
            to_stored(row, provenance.get(row.id, ()), groups.get(row.primary_source_id))
            for row in rows
        )

    @staticmethod
    def _provenance(
        session: Session, entry_ids: Sequence[int]
    ) -> tuple[dict[int, tuple[Provenance, ...]], dict[str, str | None]]:
        out: dict[int, list[Provenance]] = {}
        groups: dict[str, str | None] = {}
        for chunk in _chunks(entry_ids):
            stmt = (
                select(ItemRow, SourceRow)
                .join(SourceRow, SourceRow.id == ItemRow.source_id)
                .where(ItemRow.entry_id.in_(chunk))
                .order_by(ItemRow.entry_id, ItemRow.is_primary.desc(), ItemRow.id)
            )
            for item, src in session.execute(stmt):
                groups[src.id] = src.group_name
                out.setdefault(item.entry_id, []).append(
                    Provenance(
                        source_id=src.id,
                        source_title=src.title or src.feed_title or src.id,
                        source_url=src.url,
                        feed_link=src.feed_link,
                        link=item.link,
                        guid=item.guid,
                    )
                )
        return {k: tuple(v) for k, v in out.items()}, groups

    def decisions_for(self, entry_id: int) -> tuple[tuple[str, str, str, str], ...]:
        """(at, source_id, action, reason) of every recorded verdict about one merged entry."""
        with self._session() as session:
            stmt = (
                select(DecisionRow).where(DecisionRow.entry_id == entry_id).order_by(DecisionRow.id)
            )
            return tuple(
                (d.at.isoformat(), d.source_id, d.action, d.reason) for d in session.scalars(stmt)
            )

    def entry_ids_by_uid(self, uids: Sequence[str]) -> dict[str, int]:
        with self._session() as session:
            stmt = select(EntryRow.uid, EntryRow.id).where(EntryRow.uid.in_(list(uids)))
            return {uid: entry_id for uid, entry_id in session.execute(stmt)}
