"""The content generation: a counter that moves with every unit of work that changes what the
outputs show (new, updated or merged entries, removed or edited sources, a prune).

Kept in ``cluster_state`` under the name ``content`` (one row, on SQLite as on PostgreSQL).
``publish`` writes the generation it rendered into the output directory; a later process
(``once`` from cron, a restarted daemon) whose database still has that generation, and whose
config and renderer are the same, has nothing to render (issue #16).

The same table keeps when the explain history was last pruned (``history``, in ``at``): a
process that starts later (``once`` from cron, another node) prunes only once that is old
enough (``explain.HistoryPruner``), not at every start.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .models import ClusterStateRow

STATE = cast(Table, ClusterStateRow.__table__)
NAME = "content"
HISTORY = "history"


def _insert(conn: Connection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


def bump(conn: Connection) -> None:
    """One more generation, in ``conn``'s transaction (an upsert: two writers never clash)."""
    insert = _insert(conn)
    stmt = insert(STATE).values(name=NAME, counter=1)
    conn.execute(
        stmt.on_conflict_do_update(index_elements=["name"], set_={"counter": STATE.c.counter + 1})
    )


def read(conn: Connection) -> int:
    """The current generation (0 before the first change)."""
    found = conn.execute(select(STATE.c.counter).where(STATE.c.name == NAME)).scalar()
    return int(found or 0)


def mark_history_pruned(conn: Connection, at: datetime) -> None:
    """Remember that the explain history was pruned at ``at`` (an upsert)."""
    stmt = _insert(conn)(STATE).values(name=HISTORY, at=at)
    conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={"at": at}))


def history_pruned_at(conn: Connection) -> datetime | None:
    """When the explain history was last pruned, by any process (None: never)."""
    found: datetime | None = conn.execute(
        select(STATE.c.at).where(STATE.c.name == HISTORY)
    ).scalar()
    return found
