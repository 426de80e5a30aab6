"""Read the sources' state from an SQLite database without SQLAlchemy: `aggregator sources`.

A speed seam (issue #12): listing sources must answer at once, and importing SQLAlchemy costs
more than the rest of the command. Only for an SQLite file at ``HEAD_REVISION``, read-only;
anything else (PostgreSQL, a database to migrate, any sqlite3 error) answers None and the
caller takes the plain path, ``open_store(url).source_states()``. A test proves both agree.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

from ..types import SourceState
from .convert import to_state
from .revision import HEAD_REVISION

_DATETIMES = ("last_poll_at", "last_ok_at", "next_check_at")


def sqlite_path(url: str) -> Path | None:
    """The file of an ``sqlite:///path`` URL; None for other databases and in-memory ones."""
    if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        return None
    path = url.removeprefix("sqlite:///")
    return Path(path) if path and "?" not in path else None


def peek_source_states(url: str) -> tuple[SourceState, ...] | None:
    """Every stored source's state, as ``SqlStore.source_states()`` returns it; None when this
    path does not apply (see the module docstring). A missing database file holds no source."""
    path = sqlite_path(url)
    if path is None:
        return None
    if not path.exists():
        return ()
    try:
        connection = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        connection.row_factory = sqlite3.Row
        versions = [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")]
        if versions != [HEAD_REVISION]:
            return None
        counts = dict(
            connection.execute("SELECT source_id, count(*) FROM items GROUP BY source_id")
        )
        rows = connection.execute("SELECT * FROM sources ORDER BY id").fetchall()
        return tuple(to_state(_row(row), counts.get(row["id"], 0)) for row in rows)
    except sqlite3.Error:
        return None
    finally:
        connection.close()


def _row(row: sqlite3.Row) -> Any:
    """A ``sources`` row with SQLAlchemy's conversions: DATETIME text to UTC, 0/1 to bool."""
    values = {key: row[key] for key in row.keys()}  # noqa: SIM118 - sqlite3.Row is no mapping
    for key in _DATETIMES:
        if values.get(key) is not None:
            values[key] = datetime.fromisoformat(values[key])  # naive UTC: to_state makes it aware
    values["enabled"] = bool(values["enabled"])
    return SimpleNamespace(**values)
