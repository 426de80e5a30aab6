"""Read the sources' state (and a source's recent polls) from an SQLite database without
SQLAlchemy: `aggregator sources`.

A speed seam (issue #12): listing sources must answer at once, and importing SQLAlchemy costs
more than the rest of the command. Only for an SQLite file at ``HEAD_REVISION``, read-only;
anything else (PostgreSQL, a database to migrate, any sqlite3 error) answers None and the
caller takes the plain path, ``open_store(url).source_states()``. A test proves both agree.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar
from urllib.parse import quote

from ..story import PollLog
from ..types import SourceState
from .convert import fill_repeats, open_run, to_poll_log, to_state
from .revision import HEAD_REVISION

_DATETIMES = ("last_poll_at", "last_ok_at", "next_check_at")
_POLL_DATETIMES = ("at", "last_at")
_RUN_DATETIMES = ("repeat_first_at", "last_poll_at")
T = TypeVar("T")


def sqlite_path(url: str) -> Path | None:
    """The file of an ``sqlite:///path`` URL; None for other databases and in-memory ones."""
    if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        return None
    path = url.removeprefix("sqlite:///")
    return Path(path) if path and "?" not in path else None


def _peek(url: str, read: Callable[[sqlite3.Connection], T], empty: T) -> T | None:
    """``read`` on the SQLite file of ``url``, read-only, if it is at ``HEAD_REVISION``;
    ``empty`` when there is no file; None when this path does not apply."""
    path = sqlite_path(url)
    if path is None:
        return None
    if not path.exists():
        return empty
    try:
        connection = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        connection.row_factory = sqlite3.Row
        versions = [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")]
        if versions != [HEAD_REVISION]:
            return None
        return read(connection)
    except sqlite3.Error:
        return None
    finally:
        connection.close()


def peek_source_states(url: str) -> tuple[SourceState, ...] | None:
    """Every stored source's state, as ``SqlStore.source_states()`` returns it; None when this
    path does not apply (see the module docstring). A missing database file holds no source."""

    def read(connection: sqlite3.Connection) -> tuple[SourceState, ...]:
        counts = dict(
            connection.execute("SELECT source_id, count(*) FROM items GROUP BY source_id")
        )
        rows = connection.execute("SELECT * FROM sources ORDER BY id").fetchall()
        return tuple(to_state(_row(row), counts.get(row["id"], 0)) for row in rows)

    none: tuple[SourceState, ...] = ()
    return _peek(url, read, none)


def peek_polls(url: str, source_id: str, *, limit: int) -> tuple[PollLog, ...] | None:
    """A source's last ``limit`` polls, newest first, as ``explain.recent_polls`` reads them
    (issue #14: `sources show`); None when this path does not apply."""

    def read(connection: sqlite3.Connection) -> tuple[PollLog, ...]:
        run_query = ("SELECT repeat_polls, repeat_first_at, last_poll_at, next_check_why "
                     "FROM sources WHERE id = ?")  # fmt: skip
        run = connection.execute(run_query, (source_id,)).fetchone()
        polls: list[PollLog] = []
        if run is not None and run["repeat_polls"] > 0 and limit > 0:
            r = _row(run, _RUN_DATETIMES)
            polls.append(open_run((r.repeat_polls, r.repeat_first_at, r.last_poll_at,
                                   r.next_check_why)))  # fmt: skip
        query = "SELECT * FROM polls WHERE source_id = ? ORDER BY id DESC LIMIT ?"
        rows = connection.execute(query, (source_id, limit - len(polls))).fetchall()
        polls += [to_poll_log(_row(row, _POLL_DATETIMES)) for row in rows]
        if not polls:
            return ()
        before = "SELECT * FROM polls WHERE source_id = ? AND url IS NOT NULL"
        params: tuple[Any, ...] = (source_id,)
        if rows:
            before, params = before + " AND id < ?", (source_id, rows[-1]["id"])
        older = connection.execute(before + " ORDER BY id DESC LIMIT 1", params).fetchone()
        return fill_repeats(polls, to_poll_log(_row(older, _POLL_DATETIMES)) if older else None)

    none: tuple[PollLog, ...] = ()
    return _peek(url, read, none)


def _row(row: sqlite3.Row, datetimes: tuple[str, ...] = _DATETIMES) -> Any:
    """A row with SQLAlchemy's conversions: DATETIME text to UTC, 0/1 to bool."""
    values = {key: row[key] for key in row.keys()}  # noqa: SIM118 - sqlite3.Row is no mapping
    for key in datetimes:
        if values.get(key) is not None:
            values[key] = datetime.fromisoformat(values[key])  # naive UTC: made aware later
    if "enabled" in values:
        values["enabled"] = bool(values["enabled"])
    return SimpleNamespace(**values)
