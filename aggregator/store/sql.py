"""The SQLAlchemy implementation of ``Store``: SQLite (WAL) by default, PostgreSQL alike.

One short transaction per poll. Inserts use the dialect's ON CONFLICT DO NOTHING; the unique
constraints (``items(source_id, key)``, ``entries(uid)``) are what guarantees no duplicates even
with concurrent writers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..errors import StoreError
from ..types import (
    Action,
    Candidate,
    Decision,
    Entry,
    FeedHints,
    Fetched,
    Known,
    KnownItem,
    Provenance,
    SourceState,
    StoredEntry,
    StoreResult,
)
from .convert import dumps, entry_values, to_state, to_stored
from .models import DecisionRow, EntryRow, ItemRow, SourceRow

if TYPE_CHECKING:
    from . import SourceLike

UID_NAMESPACE = uuid.UUID("6f1d3c1e-6a52-4c1b-9a8e-5b0d2f7a9c11")
NO_HINTS = FeedHints()
CHUNK = 500  # bound on bound parameters per IN (...) (SQLite's limit is 32766 nowadays, 999 once)


def entry_uid(source_id: str, key: str) -> str:
    """The stable public id of the entry first seen as ``key`` in ``source_id``."""
    return "urn:uuid:" + str(uuid.uuid5(UID_NAMESPACE, f"{source_id}\x00{key}"))


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


class SqlStore:
    """``Store`` over one SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def _session(self) -> Iterator[Session]:
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                yield session
        except SQLAlchemyError as exc:
            raise StoreError(f"database error: {exc}") from exc

    def _insert(self, model: type[Any]) -> Any:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(model)

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

    def _poll_ok(self, row: SourceRow, fetched: Fetched, now: datetime) -> None:
        row.last_poll_at = row.last_ok_at = now
        row.http_status = fetched.status
        row.failures, row.last_error = 0, None
        if fetched.permanent_url:
            row.url = fetched.permanent_url
        if fetched.etag is not None or fetched.last_modified is not None or fetched.status == 200:
            row.etag, row.last_modified = fetched.etag, fetched.last_modified
        if fetched.body_hash:
            row.body_hash = fetched.body_hash

    def record_unchanged(self, source_id: str, *, fetched: Fetched, now: datetime) -> None:
        """A 304, or a body whose hash is the stored one: nothing to parse or write."""
        with self._session() as session:
            row = session.get(SourceRow, source_id)
            if row is None:
                raise StoreError(f"{source_id}: unknown source")
            self._poll_ok(row, fetched, now)
            row.status = "not_modified"

    def record_failure(
        self, source_id: str, *, error: str, http_status: int | None, gone: bool, now: datetime
    ) -> None:
        with self._session() as session:
            row = session.get(SourceRow, source_id)
            if row is None:
                raise StoreError(f"{source_id}: unknown source")
            row.last_poll_at = now
            row.failures = (row.failures or 0) + 1
            row.status = "gone" if gone else "failed"
            row.http_status, row.last_error = http_status, error

    def due_sources(self, now: datetime, *, among: Sequence[str]) -> tuple[str, ...]:
        """Ids (of ``among``) whose next check is due, earliest first; gone/disabled never."""
        if not among:
            return ()
        with self._session() as session:
            stmt = (
                select(SourceRow.id)
                .where(
                    SourceRow.id.in_(list(among)),
                    SourceRow.enabled.is_(True),
                    SourceRow.status != "gone",
                    or_(SourceRow.next_check_at.is_(None), SourceRow.next_check_at <= now),
                )
                .order_by(SourceRow.next_check_at, SourceRow.id)
            )
            return tuple(session.scalars(stmt))

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
        found: dict[int, EntryRow] = {}
        with self._session() as session:
            for chunk in _chunks(keys):
                stmt = select(ItemRow).where(ItemRow.source_id == source_id, ItemRow.key.in_(chunk))
                for item in session.scalars(stmt):
                    items[item.key] = KnownItem(
                        item.key, item.entry_id, item.content_hash, item.is_primary
                    )
            for chunk_links in _chunks(links):
                stmt_l = select(EntryRow).where(EntryRow.norm_link.in_(chunk_links))
                found.update((row.id, row) for row in session.scalars(stmt_l))
            for chunk_titles in _chunks(titles):
                stmt_t = select(EntryRow).where(EntryRow.norm_title.in_(chunk_titles))
                found.update((row.id, row) for row in session.scalars(stmt_t))
            carriers = self._carriers(session, sorted(found))
        candidates = tuple(
            Candidate(row.id, carriers.get(row.id, ()), row.norm_link, row.norm_title, row.sort_at)
            for row in (found[i] for i in sorted(found))
        )
        return Known(items=items, candidates=candidates)

    @staticmethod
    def _carriers(session: Session, entry_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        out: dict[int, list[str]] = {}
        for chunk in _chunks(entry_ids):
            stmt = (
                select(ItemRow.entry_id, ItemRow.source_id)
                .where(ItemRow.entry_id.in_(chunk))
                .order_by(ItemRow.id)
            )
            for entry_id, source_id in session.execute(stmt):
                out.setdefault(entry_id, []).append(source_id)
        return {k: tuple(v) for k, v in out.items()}

    def apply(
        self,
        source_id: str,
        decisions: Sequence[Decision],
        *,
        fetched: Fetched,
        feed_title: str | None,
        feed_link: str | None,
        now: datetime,
        hints: FeedHints = NO_HINTS,
    ) -> StoreResult:
        """Write one poll's verdicts and the source's new state in one transaction."""
        counts = {action: 0 for action in Action}
        with self._session() as session:
            for decision in decisions:
                action, entry_id = self._apply_one(session, source_id, decision, now)
                counts[action] += 1
                if action is not Action.UNCHANGED:
                    session.add(
                        DecisionRow(
                            at=now,
                            source_id=source_id,
                            key=decision.entry.key,
                            entry_id=entry_id,
                            action=action.value,
                            reason=decision.reason,
                        )
                    )
            row = session.get(SourceRow, source_id)
            if row is None:
                raise StoreError(f"{source_id}: unknown source")
            self._poll_ok(row, fetched, now)
            row.status, row.feed_title, row.feed_link = "ok", feed_title, feed_link
            row.ttl_s = hints.ttl_s
            row.skip_hours, row.skip_days = dumps(hints.skip_hours), dumps(hints.skip_days)
        return StoreResult(
            new=counts[Action.NEW],
            updated=counts[Action.UPDATE],
            duplicate=counts[Action.MERGE] + counts[Action.DUPLICATE],
            unchanged=counts[Action.UNCHANGED],
        )

    def _apply_one(
        self, session: Session, source_id: str, decision: Decision, now: datetime
    ) -> tuple[Action, int | None]:
        entry = decision.entry
        if decision.action is Action.NEW:
            entry_id = self._insert_entry(session, source_id, entry, now)
            if entry_id is None:  # another writer created the same entry first
                return Action.DUPLICATE, None
            added = self._insert_item(session, source_id, entry, entry_id, primary=True, now=now)
            return (Action.NEW if added else Action.DUPLICATE), entry_id
        if decision.action is Action.MERGE and decision.entry_id is not None:
            self._insert_item(session, source_id, entry, decision.entry_id, primary=False, now=now)
            return Action.MERGE, decision.entry_id
        if decision.action is Action.UPDATE and decision.entry_id is not None:
            self._update(session, source_id, decision, now)
            return Action.UPDATE, decision.entry_id
        return decision.action, decision.entry_id

    def _insert_entry(
        self, session: Session, source_id: str, entry: Entry, now: datetime
    ) -> int | None:
        values = entry_values(entry)
        stmt = (
            self._insert(EntryRow)
            .values(
                uid=entry_uid(source_id, entry.key),
                primary_source_id=source_id,
                first_seen_at=now,
                updated_at=entry.updated_at or entry.published_at or now,
                sort_at=entry.published_at or now,
                **values,
            )
            .on_conflict_do_nothing(index_elements=["uid"])
            .returning(EntryRow.id)
        )
        return session.execute(stmt).scalar()

    def _insert_item(
        self,
        session: Session,
        source_id: str,
        entry: Entry,
        entry_id: int,
        *,
        primary: bool,
        now: datetime,
    ) -> bool:
        stmt = (
            self._insert(ItemRow)
            .values(
                source_id=source_id,
                key=entry.key,
                entry_id=entry_id,
                is_primary=primary,
                guid=entry.guid,
                link=entry.link,
                content_hash=entry.content_hash,
                first_seen_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["source_id", "key"])
            .returning(ItemRow.id)
        )
        return session.execute(stmt).scalar() is not None

    def _update(self, session: Session, source_id: str, decision: Decision, now: datetime) -> None:
        entry = decision.entry
        session.execute(
            update(ItemRow)
            .where(ItemRow.source_id == source_id, ItemRow.key == entry.key)
            .values(content_hash=entry.content_hash, updated_at=now, link=entry.link)
        )
        if not decision.primary:
            return
        row = session.get(EntryRow, decision.entry_id)
        if row is None:
            return
        for name, value in entry_values(entry).items():
            setattr(row, name, value)
        newer = entry.updated_at if entry.updated_at and entry.updated_at > row.updated_at else None
        row.updated_at = newer or now
        if entry.published_at is not None:
            row.sort_at = entry.published_at

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
