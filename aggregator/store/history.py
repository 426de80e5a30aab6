"""Each poll's history (``polls``), on a Core connection, and the pruning of what ``explain``
keeps (issue #14).

A poll's row is written in the unit of work that writes its bookkeeping, through
``bulk.BulkInsert`` (the driver's executemany on SQLite). Polls whose record carries no
``history`` (``[explain] keep_days = 0``) write none. Unchanged entries get no row of their
own: they are most of every parsed document, and the poll's row counts them.

A repeat (``is_repeat``: a 304 that sent and got back the validators of the poll before, at
the same URL: most polls of a warm tick) writes no row either (issue #16): the bookkeeping
counts it into the source's run of repeats (``sources.repeat_polls``, ``repeat_first_at``; the
run's last poll is ``last_poll_at``), and the next poll that is not a repeat first writes the
run as one row (``close_runs``: ``repeats`` more polls after ``at``, the last at ``last_at``),
keeping neither URL nor validators, which are the poll before's: the reads fill them in, and
show a run still open from the source's row. A warm tick writes no history row at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, literal_column, select

from ..story import PollLog
from ..types import PollRecord, StoreResult
from .bulk import BulkInsert
from .convert import fill_repeats, open_run, to_poll_log
from .models import PollRow
from .write import DECISIONS, SOURCES

POLLS = cast(Table, PollRow.__table__)
_INSERT = BulkInsert(POLLS)
_COUNTED = ("new", "updated", "unchanged", "merged", "duplicate", "filtered", "dropped")


def _counts(result: StoreResult) -> str:
    """``new=1 updated=0 ...``: what a parsed poll stored (duplicate counts merges apart)."""
    values = {name: getattr(result, name, 0) for name in _COUNTED}
    values["duplicate"] -= values["merged"]
    return " ".join(f"{name}={values[name]}" for name in _COUNTED)


def is_repeat(record: PollRecord) -> bool:
    """A kept poll that repeats the one before: a 304, no redirect, validators sent and
    received the same (the module docstring: it writes no row)."""
    h = record.history
    return (h is not None and record.http_status == 304 and not h.redirects
            and h.etag == h.sent_etag and h.last_modified == h.sent_last_modified)  # fmt: skip


def ends_run(record: PollRecord) -> bool:
    """A kept poll that is not a repeat: it has a row, and ends the source's run of repeats."""
    return record.history is not None and not is_repeat(record)


def _row(record: PollRecord, counts: str | None) -> dict[str, Any]:
    """The poll's row (not a repeat's: those write none)."""
    h = record.history
    assert h is not None
    nxt = record.next_check_at
    return {
        "at": record.at,
        "source_id": record.source_id,
        "status": record.status,
        "http_status": record.http_status,
        "duration_ms": h.duration_ms,
        "next_check_s": None if nxt is None else round((nxt - record.at).total_seconds()),
        "next_check_why": record.next_check_why,
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
    stored): a row for each but the repeats. Call ``close_runs`` first, before the
    bookkeeping ends the runs."""
    counts = _counts(result) if result is not None else None
    rows = [_row(r, counts) for r in records if ends_run(r)]
    if rows:
        _INSERT.run(conn, rows)


# The run of repeats a source's row holds, as one row of ``polls`` (no URL: a repeat's).
_CLOSE_RUN = insert(POLLS).from_select(
    ["at", "source_id", "status", "http_status", "duration_ms", "next_check_s",
     "next_check_why", "repeats", "last_at"],
    select(
        SOURCES.c.repeat_first_at, SOURCES.c.id, literal_column("'not_modified'"),
        literal_column("304"), literal_column("0"), literal_column("NULL"),
        SOURCES.c.next_check_why, SOURCES.c.repeat_polls - 1, SOURCES.c.last_poll_at,
    ).where(SOURCES.c.id == bindparam("b_id"), SOURCES.c.repeat_polls > 0,
            SOURCES.c.repeat_first_at.is_not(None)),
)  # fmt: skip


def close_runs(conn: Connection, records: Sequence[PollRecord]) -> None:
    """Write the run of repeats of each source whose poll in ``records`` ends it (a kept poll
    that is not a repeat), as one row, before its own; the bookkeeping then ends the run."""
    ending = [{"b_id": r.source_id} for r in records if ends_run(r)]
    if ending:
        conn.execute(_CLOSE_RUN, ending)


def prune_history(conn: Connection, before: datetime) -> tuple[int, int]:
    """Forget polls and verdicts older than ``before``; return how many of each went. A run of
    repeats goes when its last poll is older (a feed unchanged for weeks keeps its run)."""
    ended = func.coalesce(POLLS.c.last_at, POLLS.c.at)
    polls = conn.execute(delete(POLLS).where(ended < before)).rowcount or 0
    verdicts = conn.execute(delete(DECISIONS).where(DECISIONS.c.at < before)).rowcount or 0
    return int(polls), int(verdicts)


def recent_polls(conn: Connection, source_id: str, *, limit: int) -> tuple[PollLog, ...]:
    """The source's last ``limit`` polls, newest first (repeats filled in from the polls
    before them)."""
    mine = POLLS.c.source_id == source_id
    run = conn.execute(select(*_OPEN_RUN).where(SOURCES.c.id == source_id)).first()
    polls = [open_run(run)] if run is not None and run.repeat_polls > 0 and limit > 0 else []
    stmt = select(POLLS).where(mine).order_by(POLLS.c.id.desc()).limit(limit - len(polls))
    rows = conn.execute(stmt).all() if limit > len(polls) else []
    polls += [to_poll_log(row) for row in rows]
    if not polls:
        return ()
    before = select(POLLS).where(mine, POLLS.c.url.is_not(None))
    if rows:
        before = before.where(POLLS.c.id < rows[-1].id)
    older = conn.execute(before.order_by(POLLS.c.id.desc()).limit(1)).first()
    return fill_repeats(polls, to_poll_log(older) if older else None)


# What a source's row holds of its run of repeats still open (``open_run``).
_OPEN_RUN = (SOURCES.c.repeat_polls, SOURCES.c.repeat_first_at, SOURCES.c.last_poll_at,
             SOURCES.c.next_check_why)  # fmt: skip
