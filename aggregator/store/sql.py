"""The SQLAlchemy implementation of ``Store``: SQLite (WAL) by default, PostgreSQL alike.

One way to write: ``with store.transaction() as tx`` is one unit of work on one Core connection
(begun at its first statement; every write through ``tx`` commits together, or none does).
Reads run on a connection of their own. Driver errors become ``StoreError`` here, once. Inserts
use the dialect's ON CONFLICT DO NOTHING; the unique constraints (``items(source_id, key)``,
``entries(uid)``) are what guarantees no duplicates even with concurrent writers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from ..types import (
    PollState,
    Provenance,
    SourceState,
    StoredEntry,
)
from . import generation
from .convert import POLL_COLUMNS, to_poll_state, to_state, to_stored
from .tx import SqlTransaction, chunks, wrapped
from .write import ENTRIES, ITEMS, SOURCES

__all__ = ["SqlStore", "SqlTransaction"]

_POLL = [SOURCES.c[name] for name in POLL_COLUMNS]  # what a tick reads of each source


class SqlStore:
    """``Store`` over one SQLAlchemy engine."""

    # The unit of work's class: several nodes on one database decide entries one at a time
    # (``store.leases.ClusterTransaction``, issue #17).
    transaction_class: type[SqlTransaction] = SqlTransaction

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def transaction(self) -> Iterator[SqlTransaction]:
        """``with store.transaction() as tx``: every write through ``tx`` commits, or none."""
        tx = self.transaction_class(self.engine)
        try:
            yield tx
        except BaseException as exc:
            with suppress(SQLAlchemyError):  # the connection is gone: the database rolls back
                tx.end(commit=False)
            if isinstance(exc, SQLAlchemyError):
                raise wrapped(exc) from exc
            raise
        try:
            tx.end(commit=True)
        except SQLAlchemyError as exc:
            raise wrapped(exc) from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise wrapped(exc) from exc

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        """Raise StoreError unless the database answers a trivial query."""
        with self._read() as conn:
            conn.execute(select(1))

    def content_generation(self) -> int:
        with self._read() as conn:
            return generation.read(conn)

    def history_pruned_at(self) -> datetime | None:
        with self._read() as conn:
            return generation.history_pruned_at(conn)

    # -- what a tick reads ------------------------------------------------------------------------

    def due_states(
        self, now: datetime, *, among: Sequence[str], force: bool = False
    ) -> dict[str, PollState]:
        """The sources (of ``among``) to poll now, earliest first, with what a tick needs of
        them: those whose next check is due, or with ``force`` every one not waiting out a
        Retry-After; gone or disabled ones never. One query, no list of ids sent: ``among``
        (the configured sources) is applied here.
        """
        wanted = set(among)
        if not wanted:
            return {}
        due = or_(SOURCES.c.next_check_at.is_(None), SOURCES.c.next_check_at <= now)
        if force:  # what is merely not yet due, never what a server asked to wait
            due = or_(due, ~func.coalesce(SOURCES.c.next_check_why, "").contains("retry-after"))
        stmt = (
            select(*_POLL)
            .where(SOURCES.c.enabled.is_(True), SOURCES.c.status != "gone", due)
            .order_by(SOURCES.c.next_check_at, SOURCES.c.id)
        )
        with self._read() as conn:
            return {row[0]: to_poll_state(row) for row in conn.execute(stmt) if row[0] in wanted}

    # -- what the CLI, the server and the renderers read ------------------------------------------

    def source_state(self, source_id: str) -> SourceState | None:
        with self._read() as conn:
            row = conn.execute(select(SOURCES).where(SOURCES.c.id == source_id)).first()
            if row is None:
                return None
            count = conn.execute(
                select(func.count()).select_from(ITEMS).where(ITEMS.c.source_id == source_id)
            ).scalar()
            return to_state(row, count or 0)

    def source_states(self) -> tuple[SourceState, ...]:
        with self._read() as conn:
            stmt = select(ITEMS.c.source_id, func.count()).group_by(ITEMS.c.source_id)
            counts = {source_id: count for source_id, count in conn.execute(stmt)}
            rows = conn.execute(select(SOURCES).order_by(SOURCES.c.id))
            return tuple(to_state(row, counts.get(row.id, 0)) for row in rows)

    def count_failing(self) -> int:
        """Sources whose last poll failed (or that are gone)."""
        stmt = (
            select(func.count())
            .select_from(SOURCES)
            .where(SOURCES.c.status.in_(("failed", "gone")))
        )
        with self._read() as conn:
            return int(conn.execute(stmt).scalar() or 0)

    def recent_entries(self, source_ids: Sequence[str], *, limit: int) -> tuple[StoredEntry, ...]:
        """The newest ``limit`` merged entries carried by any of ``source_ids``, newest first."""
        if not source_ids:
            return ()
        with self._read() as conn:
            stmt = (
                select(ENTRIES)
                .where(*_carried_by(conn, source_ids))
                .order_by(ENTRIES.c.sort_at.desc(), ENTRIES.c.id.desc())
                .limit(limit)
            )
            rows = conn.execute(stmt).all()
            provenance, groups = _provenance(conn, [row.id for row in rows])
        return tuple(
            to_stored(row, provenance.get(row.id, ()), groups.get(row.primary_source_id))
            for row in rows
        )

    # -- RFC 5005 archives: pages in the order entries arrived ----------------------------------

    def count_entries(self, source_ids: Sequence[str]) -> int:
        """How many merged entries any of ``source_ids`` carries."""
        if not source_ids:
            return 0
        with self._read() as conn:
            stmt = select(func.count()).select_from(ENTRIES).where(*_carried_by(conn, source_ids))
            return int(conn.execute(stmt).scalar() or 0)

    def entries_by_arrival(
        self, source_ids: Sequence[str], *, offset: int, limit: int
    ) -> tuple[StoredEntry, ...]:
        """Merged entries carried by any of ``source_ids`` in the order they were first stored
        (oldest first), from ``offset``: a new entry only ever comes last, so a full slice never
        changes, whatever dates the entries carry."""
        if not source_ids or limit <= 0:
            return ()
        with self._read() as conn:
            stmt = (
                select(ENTRIES)
                .where(*_carried_by(conn, source_ids))
                .order_by(ENTRIES.c.id)
                .offset(offset)
                .limit(limit)
            )
            rows = conn.execute(stmt).all()
            provenance, groups = _provenance(conn, [row.id for row in rows])
        return tuple(
            to_stored(row, provenance.get(row.id, ()), groups.get(row.primary_source_id))
            for row in rows
        )


# A selection this large is first compared with the sources stored (one read of their ids).
EVERYONE_CHECK_FROM = 64


def _carried_by(conn: Connection, source_ids: Sequence[str]) -> tuple[Any, ...]:
    """The WHERE clause of "entries carried by any of ``source_ids``": none at all when they
    are every source stored (the ``all`` output, as a rule), since every entry is carried by
    some stored source (``remove_sources`` and ``prune`` drop an entry with its last item).

    Otherwise every read would first collect the entry ids of every item of those sources (the
    whole store, for ``all``: a no-op render of 50,000 entries cost 0.34 s, and grows with the
    store; issue #16), where without it the newest entries come straight off ``ix_entries_sort``
    and a count off the table. Small selections (a group) keep the ``IN`` lookup; one that
    leaves out fewer stored sources than it names (``all`` while a source removed from the
    config is kept) names those instead, as "carried by a source other than these": an ``IN``
    of 100,000 ids would pass SQLite's usual limit of 32,766 bound values and PostgreSQL's
    65,535.
    """
    wanted = set(source_ids)
    if len(wanted) >= EVERYONE_CHECK_FROM:
        stored = {row[0] for row in conn.execute(select(SOURCES.c.id))}
        others = stored - wanted
        if not others:
            return ()
        if len(others) < len(wanted):
            mine = ITEMS.c.entry_id == ENTRIES.c.id
            carried = select(ITEMS.c.id).where(mine, ITEMS.c.source_id.not_in(sorted(others)))
            return (carried.exists(),)
    carried = select(ITEMS.c.entry_id).where(ITEMS.c.source_id.in_(sorted(wanted)))
    return (ENTRIES.c.id.in_(carried),)


_PROVENANCE = (
    select(
        ITEMS.c.entry_id, ITEMS.c.link, ITEMS.c.guid, SOURCES.c.id, SOURCES.c.title,
        SOURCES.c.feed_title, SOURCES.c.url, SOURCES.c.feed_link, SOURCES.c.group_name,
    )
    .join(SOURCES, SOURCES.c.id == ITEMS.c.source_id)
    .where(ITEMS.c.entry_id.in_(bindparam("ids", expanding=True)))
    .order_by(ITEMS.c.entry_id, ITEMS.c.is_primary.desc(), ITEMS.c.id)
)  # fmt: skip


def _provenance(
    conn: Connection, entry_ids: Sequence[int]
) -> tuple[dict[int, tuple[Provenance, ...]], dict[str, str | None]]:
    """The sources that carried each entry (primary first), and each source's group."""
    out: dict[int, list[Provenance]] = {}
    groups: dict[str, str | None] = {}
    for chunk in chunks(entry_ids):
        for row in conn.execute(_PROVENANCE, {"ids": list(chunk)}):
            entry_id, link, guid, source_id, title, feed_title, url, feed_link, group = row
            groups[source_id] = group
            out.setdefault(entry_id, []).append(
                Provenance(source_id=source_id, source_title=title or feed_title or source_id,
                           source_url=url, feed_link=feed_link, link=link, guid=guid)
            )  # fmt: skip
    return {k: tuple(v) for k, v in out.items()}, groups
