"""Each poll's history (``polls``), on a Core connection, and the pruning of what ``explain``
keeps (issue #14).

A poll's row is written in the unit of work that writes its bookkeeping: a warm tick writes
one per source, through ``bulk.BulkInsert`` (the driver's executemany on SQLite). Polls whose
record carries no ``history`` (``[explain] keep_days = 0``) write none. Unchanged entries get
no row of their own: they are most of every parsed document, and the poll's row counts them.
A repeat (a 304 that sent and got back the validators of the poll before, at the same URL:
most polls of a warm tick) keeps neither URL nor validators, which are the poll before's:
its row is half the size, and the reads fill them in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, select

from ..story import PollLog
from ..types import PollRecord, StoreResult
from .bulk import BulkInsert
from .convert import fill_repeats, to_poll_log
from .models import PollRow
from .write import DECISIONS

POLLS = cast(Table, PollRow.__table__)
_INSERT = BulkInsert(POLLS)
_COUNTED = ("new", "updated", "unchanged", "merged", "duplicate", "filtered", "dropped")
_REPEAT_COLUMNS = 7  # what ``_row`` gives a repeat


def _counts(result: StoreResult) -> str:
    """``new=1 updated=0 ...``: what a parsed poll stored (duplicate counts merges apart)."""
    values = {name: getattr(result, name, 0) for name in _COUNTED}
    values["duplicate"] -= values["merged"]
    return " ".join(f"{name}={values[name]}" for name in _COUNTED)


def _row(record: PollRecord, counts: str | None) -> dict[str, Any]:
    """The poll's row; a repeat's lists only the columns it fills (an INSERT of its own: each
    column bound costs about as much as SQLite's work to store it)."""
    h = record.history
    assert h is not None
    nxt = record.next_check_at
    row = {
        "at": record.at,
        "source_id": record.source_id,
        "status": record.status,
        "http_status": record.http_status,
        "duration_ms": h.duration_ms,
        "next_check_s": None if nxt is None else round((nxt - record.at).total_seconds()),
        "next_check_why": record.next_check_why,
    }
    if (record.http_status == 304 and not h.redirects and h.etag == h.sent_etag
            and h.last_modified == h.sent_last_modified):  # fmt: skip
        return row  # a repeat: URL and validators are the poll before's (``fill_repeats``)
    return row | {
        "url": h.url,
        "redirects": "\n".join(h.redirects) or None,
        "sent_etag": h.sent_etag,
        "sent_last_modified": h.sent_last_modified,
        "etag": h.etag,
        "last_modified": h.last_modified,
        "error": record.error,
        "counts": counts,
    }


def log_polls(
    conn: Connection, records: Sequence[PollRecord], result: StoreResult | None = None
) -> None:
    """Keep the history of ``records`` (``result``: what the one parsed poll among them
    stored)."""
    counts = _counts(result) if result is not None else None
    repeats: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    for record in records:
        if record.history is not None:
            row = _row(record, counts)
            (repeats if len(row) == _REPEAT_COLUMNS else others).append(row)
    for rows in (repeats, others):
        if rows:
            _INSERT.run(conn, rows)


def prune_history(conn: Connection, before: datetime) -> tuple[int, int]:
    """Forget polls and verdicts older than ``before``; return how many of each went."""
    polls = conn.execute(delete(POLLS).where(POLLS.c.at < before)).rowcount or 0
    verdicts = conn.execute(delete(DECISIONS).where(DECISIONS.c.at < before)).rowcount or 0
    return int(polls), int(verdicts)


def recent_polls(conn: Connection, source_id: str, *, limit: int) -> tuple[PollLog, ...]:
    """The source's last ``limit`` polls, newest first (repeats filled in from the polls
    before them)."""
    mine = POLLS.c.source_id == source_id
    rows = conn.execute(select(POLLS).where(mine).order_by(POLLS.c.id.desc()).limit(limit)).all()
    if not rows:
        return ()
    before = select(POLLS).where(mine, POLLS.c.id < rows[-1].id, POLLS.c.url.is_not(None))
    older = conn.execute(before.order_by(POLLS.c.id.desc()).limit(1)).first()
    return fill_repeats([to_poll_log(row) for row in rows],
                        to_poll_log(older) if older else None)  # fmt: skip
