"""Work shared by several nodes on one PostgreSQL (issue #17): host leases, cluster state, and
a unit of work that decides entries one node at a time.

A node claims due *hosts* (``SELECT ... FOR UPDATE SKIP LOCKED`` on ``hosts``, the lease owner
and expiry written in the row), then the due sources of those hosts: one node at a time polls
a host, so ``[poll] per_host`` is a cluster-wide cap, and a source is never polled by two
nodes at once. A node gives its hosts back at the end of its tick; a dead node's leases expire.
Only the cluster path comes here: on SQLite (one node) nothing of this runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Engine, Table, bindparam, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import SQLAlchemyError

from ..types import Entry, Known, PollState
from . import generation
from .convert import POLL_COLUMNS, to_poll_state
from .models import ClusterStateRow, HostRow
from .sql import SqlStore
from .tx import SqlTransaction, wrapped
from .write import SOURCES

if TYPE_CHECKING:
    from . import SourceLike

__all__ = ["ClusterStore", "ClusterTransaction", "ClusterView", "SqlLeases"]

HOSTS = cast(Table, HostRow.__table__)
CLUSTER = cast(Table, ClusterStateRow.__table__)
# pg_advisory_xact_lock keys (bigint): the entry decisions ("aggrdedp" in ASCII) and the
# syncs of the sources with a node's config ("aggrsync").
DEDUP_LOCK = 0x61676772_64656470
SYNC_LOCK = 0x61676772_73796E63
_POLL = [SOURCES.c[name] for name in POLL_COLUMNS]


class ClusterTransaction(SqlTransaction):
    """A unit of work whose entry decisions wait for any other node's to commit.

    Two nodes storing the same story from two sources at once would each see no stored copy
    and each create an entry. Whoever reads what is stored first (``known``) takes a
    transaction-scoped advisory lock, held to its commit: the other node's ``known`` then sees
    the committed entry and records a merge. One lock for every decision (not one per link or
    title) so that batches of documents can never deadlock; 304s and failures never take it.
    """

    _locked = False

    def sync_sources(self, sources: Iterable[SourceLike], *, now: datetime) -> None:
        """One node at a time: nodes starting together would each insert the new sources."""
        self.conn.execute(select(func.pg_advisory_xact_lock(SYNC_LOCK)))
        super().sync_sources(sources, now=now)

    def known(self, source_id: str, entries: Sequence[Entry]) -> Known:
        if not self._locked:
            self.conn.execute(select(func.pg_advisory_xact_lock(DEDUP_LOCK)))
            self._locked = True
        return super().known(source_id, entries)

    def end(self, *, commit: bool) -> None:
        self._locked = False
        super().end(commit=commit)


class ClusterStore(SqlStore):
    """``SqlStore`` whose units of work are ``ClusterTransaction``s."""

    transaction_class = ClusterTransaction


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What a node reads of the cluster each tick: the config last synced (its digest, by
    which node, when) and the counter of stored changes."""

    config_digest: str | None = None
    config_node: str | None = None
    config_at: datetime | None = None
    outputs: int = 0


class SqlLeases:
    """One node's side of the leases and the shared state, over the cluster's engine."""

    def __init__(self, engine: Engine, node: str) -> None:
        self.engine, self.node = engine, node

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise wrapped(exc) from exc

    def claim(
        self, now: datetime, *, lease_s: float, limit: int, force: bool = False
    ) -> dict[str, PollState]:
        """Lease free hosts that have due sources (least recently leased first, skipping those
        another node is claiming right now) and return up to ``limit`` of their due sources,
        earliest first. Hosts that got none of them stay free."""
        due = _due(now, force)
        free = or_(
            HOSTS.c.lease_owner.is_(None),
            HOSTS.c.lease_until <= now,
            HOSTS.c.lease_owner == self.node,
        )
        has_due = exists().where(SOURCES.c.host == HOSTS.c.host, due)
        pick = (
            select(HOSTS.c.host)
            .where(free, has_due)
            .order_by(HOSTS.c.lease_until.asc().nulls_first(), HOSTS.c.host)
            .limit(limit)
            .with_for_update(skip_locked=True, of=HOSTS)
        )
        with self._tx() as conn:
            hosts = [host for (host,) in conn.execute(pick)]
            if not hosts:
                return {}
            rows = conn.execute(
                select(*_POLL, SOURCES.c.host)
                .where(SOURCES.c.host.in_(hosts), due)
                .order_by(SOURCES.c.next_check_at, SOURCES.c.id)
                .limit(limit)
            ).all()
            taken = sorted({row[-1] for row in rows})
            conn.execute(
                update(HOSTS)
                .where(HOSTS.c.host.in_(taken))
                .values(lease_owner=self.node, lease_until=now + timedelta(seconds=lease_s))
            )
        return {row[0]: to_poll_state(row[:-1]) for row in rows}

    def release(self, now: datetime) -> int:
        """Give back every host this node holds (kept as last leased ``now``, so the next claim
        takes those leased longest ago first)."""
        stmt = (
            update(HOSTS)
            .where(HOSTS.c.lease_owner == self.node)
            .values(lease_owner=None, lease_until=now)
        )
        with self._tx() as conn:
            return int(conn.execute(stmt).rowcount or 0)

    def sync_hosts(self, host_of: Callable[[str], str]) -> int:
        """Give every source the host of the URL it polls, and every host its row; returns the
        sources whose host changed (new ones, edited URLs, permanent redirects since)."""
        with self._tx() as conn:
            rows = conn.execute(select(SOURCES.c.id, SOURCES.c.url, SOURCES.c.host)).all()
            moved = [
                {"b_id": source_id, "b_host": host_of(url)}
                for source_id, url, host in rows
                if host != host_of(url)
            ]
            if moved:
                conn.execute(
                    update(SOURCES)
                    .where(SOURCES.c.id == bindparam("b_id"))
                    .values(host=bindparam("b_host")),
                    moved,
                )
            hosts = select(SOURCES.c.host).where(SOURCES.c.host.is_not(None)).distinct()
            conn.execute(pg_insert(HOSTS).from_select(["host"], hosts).on_conflict_do_nothing())
        return len(moved)

    def record_config(self, digest: str, now: datetime) -> None:
        """This node just synced the database with its config: that config is the cluster's."""
        self._upsert({"name": "config", "value": digest, "node": self.node, "at": now})

    def view(self) -> ClusterView:
        with self._tx() as conn:
            rows = {row.name: row for row in conn.execute(select(CLUSTER))}
        # The content generation (``store.generation``): every unit of work that changes what
        # outputs show moves it, whichever node commits it.
        config, outputs = rows.get("config"), rows.get(generation.NAME)
        return ClusterView(
            config_digest=config.value if config else None,
            config_node=config.node if config else None,
            config_at=config.at if config else None,
            outputs=int(outputs.counter) if outputs else 0,
        )

    def _upsert(self, values: dict[str, Any]) -> None:
        stmt = pg_insert(CLUSTER).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"], set_={k: stmt.excluded[k] for k in values if k != "name"}
        )
        with self._tx() as conn:
            conn.execute(stmt)


def _due(now: datetime, force: bool) -> Any:
    """As ``SqlStore.due_states``: enabled, not gone, and due (or with ``force`` anything not
    waiting out a Retry-After)."""
    due = or_(SOURCES.c.next_check_at.is_(None), SOURCES.c.next_check_at <= now)
    if force:
        due = or_(due, ~func.coalesce(SOURCES.c.next_check_why, "").contains("retry-after"))
    return SOURCES.c.enabled.is_(True) & (SOURCES.c.status != "gone") & due
