"""The content generation: a counter that moves with every unit of work that changes what the
outputs show (new, updated or merged entries, removed or edited sources, a prune).

Kept in ``cluster_state`` under the name ``content`` (one row, on SQLite as on PostgreSQL).
``publish`` writes the generation it rendered into the output directory; a later process
(``once`` from cron, a restarted daemon) whose database still has that generation, and whose
config and renderer are the same, has nothing to render (issue #16).
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Connection, Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .models import ClusterStateRow

STATE = cast(Table, ClusterStateRow.__table__)
NAME = "content"


def bump(conn: Connection) -> None:
    """One more generation, in ``conn``'s transaction (an upsert: two writers never clash)."""
    insert: Any = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(STATE).values(name=NAME, counter=1)
    conn.execute(
        stmt.on_conflict_do_update(index_elements=["name"], set_={"counter": STATE.c.counter + 1})
    )


def read(conn: Connection) -> int:
    """The current generation (0 before the first change)."""
    found = conn.execute(select(STATE.c.counter).where(STATE.c.name == NAME)).scalar()
    return int(found or 0)
