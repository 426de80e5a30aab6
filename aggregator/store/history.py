"""Each poll's history (``polls``), on a Core connection, and the pruning of what ``explain``
keeps (issue #14).

A poll's row is written in the unit of work that writes its bookkeeping: a warm tick writes
one per source, through ``bulk.BulkInsert`` (the driver's executemany on SQLite). Polls whose
record carries no ``history`` (``[explain] keep_days = 0``) write none. Unchanged entries get
no row of their own: they are most of every parsed document, and the poll's row counts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, select

from ..story import PollLog
from ..types import PollRecord, StoreResult
from .bulk import BulkInsert
from .convert import to_poll_log
from .models import PollRow
from .write import DECISIONS

POLLS = cast(Table, PollRow.__table__)
_INSERT = BulkInsert(POLLS)
_COUNTED = ("new", "updated", "unchanged", "merged", "duplicate", "filtered", "dropped")


def _counts(result: StoreResult) -> str:
    """``new=1 updated=0 ...``: what a parsed poll stored (duplicate counts merges apart)."""
    values = {name: getattr(result, name, 0) for name in _COUNTED}
    values["duplicate"] -= values["merged"]
    return " ".join(f"{name}={values[name]}" for name in _COUNTED)


def _row(record: PollRecord, counts: str | None) -> dict[str, Any]:
    h = record.history
    assert h is not None
    return {
        "at": record.at,
        "source_id": record.source_id,
        "status": record.status,
        "http_status": record.http_status,
        "duration_ms": h.duration_ms,
        "url": h.url,
        "redirects": "\n".join(h.redirects) or None,
        "sent_etag": h.sent_etag,
        "sent_last_modified": h.sent_last_modified,
        "etag": h.etag,
        "last_modified": h.last_modified,
        "error": record.error,
        "next_check_at": record.next_check_at,
        "next_check_why": record.next_check_why,
        "counts": counts,
    }


def log_polls(
    conn: Connection, records: Sequence[PollRecord], result: StoreResult | None = None
) -> None:
    """Keep the history of ``records`` (``result``: what the one parsed poll among them
    stored)."""
    counts = _counts(result) if result is not None else None
    rows = [_row(r, counts) for r in records if r.history is not None]
    if rows:
        _INSERT.run(conn, rows)


def prune_history(conn: Connection, before: datetime) -> tuple[int, int]:
    """Forget polls and verdicts older than ``before``; return how many of each went."""
    polls = conn.execute(delete(POLLS).where(POLLS.c.at < before)).rowcount or 0
    verdicts = conn.execute(delete(DECISIONS).where(DECISIONS.c.at < before)).rowcount or 0
    return int(polls), int(verdicts)


def recent_polls(conn: Connection, source_id: str, *, limit: int) -> tuple[PollLog, ...]:
    """The source's last ``limit`` polls, newest first."""
    stmt = (
        select(POLLS).where(POLLS.c.source_id == source_id).order_by(POLLS.c.id.desc()).limit(limit)
    )
    return tuple(to_poll_log(row) for row in conn.execute(stmt))
