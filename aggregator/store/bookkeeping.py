"""The poll bookkeeping of sources, on a Core connection: status, times, validators, next check.

Polls that stored no entries (304s, unchanged bodies, failures) are written many at a time
(``record_polls``); a poll that parsed its feed writes its row with its entries
(``record_feed``). A warm tick's bookkeeping is most of its database time: each statement is
built once and, on SQLite, sent through ``bulk.BulkExecute``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, func, literal_column, null, update

from ..types import OK_STATUSES, PollRecord
from .bulk import BulkExecute
from .convert import dumps
from .history import is_repeat
from .write import SOURCES


def _ok_values(r: PollRecord) -> dict[str, Any]:
    values: dict[str, Any] = {
        "b_id": r.source_id,
        "b_status": r.status,
        "b_http_status": r.http_status,
        "b_at": r.at,
        "b_next": r.next_check_at,
        "b_why": r.next_check_why,
        "b_etag": r.etag,
        "b_last_modified": r.last_modified,
        "b_body_hash": r.body_hash,
        "b_url": r.permanent_url,
    }
    return values


_OK_COLUMNS = {
    "status": "b_status",
    "http_status": "b_http_status",
    "last_poll_at": "b_at",
    "last_ok_at": "b_at",
    "next_check_at": "b_next",
    "next_check_why": "b_why",
    "etag": "b_etag",
    "last_modified": "b_last_modified",
}


def _source_update(**values: Any) -> Any:
    """UPDATE sources SET ``values`` for the source whose id is bound as ``b_id``."""
    return update(SOURCES).where(SOURCES.c.id == bindparam("b_id")).values(**values)


def _is_plain_304(r: PollRecord) -> bool:
    return r.status == "not_modified" and r.http_status == 304 and not r.permanent_url


def record_polls(conn: Connection, records: Sequence[PollRecord]) -> None:
    """Write the bookkeeping of polls that stored no entries (304s, unchanged bodies, failures).

    A repeat (``history.is_repeat``) counts itself into the source's run of repeats; every
    other poll ends the run (``history.close_runs`` wrote it as a row first).
    """
    repeats: list[PollRecord] = []  # plain 304s that repeat the poll before
    plain_304: list[PollRecord] = []  # the other plain 304s
    ok: list[PollRecord] = []
    failed: list[PollRecord] = []
    for r in records:  # one pass: a warm tick sorts every source here
        if _is_plain_304(r):
            (repeats if is_repeat(r) else plain_304).append(r)
        elif r.status in OK_STATUSES:
            ok.append(r)
        else:
            failed.append(r)
    if repeats:
        _write_304(conn, repeats, _304_REPEAT)
    if plain_304:
        _write_304(conn, plain_304, _304)
    if ok:
        _write_ok(conn, ok)
    if failed:
        stmt = _source_update(
            status=bindparam("b_status"),
            http_status=bindparam("b_http_status"),
            last_poll_at=bindparam("b_at"),
            next_check_at=bindparam("b_next"),
            next_check_why=bindparam("b_why"),
            last_error=bindparam("b_error"),
            failures=SOURCES.c.failures + 1,
            **_RUN_ENDS,
        )
        conn.execute(
            stmt,
            [
                {
                    "b_id": r.source_id,
                    "b_status": r.status,
                    "b_http_status": r.http_status,
                    "b_at": r.at,
                    "b_next": r.next_check_at,
                    "b_why": r.next_check_why,
                    "b_error": r.error,
                }
                for r in failed
            ],
        )


def _write_304(conn: Connection, records: Sequence[PollRecord], statement: BulkExecute) -> None:
    """Plain 304s: the poll's status and times, the validators sent; the body hash stays.

    One UPDATE per source (``next_check_at`` is jittered per source), what every plain 304
    shares written into the statement itself: each source's row is rewritten once (issue #16;
    it was an UPDATE ... WHERE id IN (...) for the shared columns, then one per source).
    """
    statement.run(
        conn,
        [
            {"b_id": r.source_id, "b_at": r.at, "b_next": r.next_check_at,
             "b_why": r.next_check_why, "b_etag": r.etag, "b_last_modified": r.last_modified}
            for r in records
        ],
    )  # fmt: skip


# A warm tick runs it for every source: SQLAlchemy's per-row parameter handling would cost more
# than SQLite's own work does for it, hence ``BulkExecute``.
_304_COLUMNS: dict[str, Any] = {
    "status": literal_column("'not_modified'"),
    "http_status": literal_column("304"),
    "failures": literal_column("0"),
    "last_error": null(),
    "last_poll_at": bindparam("b_at", type_=SOURCES.c.last_poll_at.type),
    "last_ok_at": bindparam("b_at", type_=SOURCES.c.last_poll_at.type),
    "next_check_at": bindparam("b_next"),
    "next_check_why": bindparam("b_why"),
    "etag": bindparam("b_etag"),
    "last_modified": bindparam("b_last_modified"),
}
# Every poll but a repeat ends the source's run of repeats (``history.close_runs``).
_RUN_ENDS: dict[str, Any] = {"repeat_polls": literal_column("0"), "repeat_first_at": null()}
_304 = BulkExecute(_source_update(**_304_COLUMNS, **_RUN_ENDS))
# A repeat adds itself to the run (its first poll's time kept, its last one's is last_poll_at).
_304_REPEAT = BulkExecute(
    _source_update(
        **_304_COLUMNS,
        repeat_polls=SOURCES.c.repeat_polls + literal_column("1"),
        repeat_first_at=func.coalesce(
            SOURCES.c.repeat_first_at, bindparam("b_at", type_=SOURCES.c.last_poll_at.type)
        ),
    )
)


def _ok_update(*, moved: bool, **more: Any) -> Any:
    """The UPDATE of a successful poll (parameters from ``_ok_values``), plus ``more`` columns.

    A 304 carries no body: the hash of the last one is kept. ``moved``: a permanent redirect
    also changes the polled URL.
    """
    values: dict[str, Any] = {column: bindparam(param) for column, param in _OK_COLUMNS.items()}
    values.update(
        body_hash=func.coalesce(bindparam("b_body_hash"), SOURCES.c.body_hash),
        failures=literal_column("0"),  # in the SQL: every parameter comes from the rows
        last_error=null(),
        **_RUN_ENDS,
        **more,
    )
    if moved:
        values["url"] = bindparam("b_url")
    return _source_update(**values)


def _write_ok(conn: Connection, records: Sequence[PollRecord]) -> None:
    """Successful polls that stored nothing: unchanged bodies (a server without conditional
    GET answers each poll with the same 200), 304s after a redirect. Through ``BulkExecute``
    as the 304s are (SQLAlchemy's per-row parameter handling: 5-7 us an unchanged 200)."""
    for moved in (False, True):
        rows = [_ok_values(r) for r in records if bool(r.permanent_url) is moved]
        if rows:
            _ok_statement(moved).run(conn, rows)


@functools.cache
def _ok_statement(moved: bool) -> BulkExecute:
    return BulkExecute(_ok_update(moved=moved))


@functools.cache
def _feed_update(*, moved: bool) -> Any:
    """``_ok_update`` plus the feed's title, link and hints: built once (every parsed feed)."""
    feed: dict[str, Any] = {
        column: bindparam(f"b_{column}")
        for column in ("feed_title", "feed_link", "ttl_s", "skip_hours", "skip_days")
    }
    return _ok_update(moved=moved, **feed)


def record_feed(conn: Connection, record: PollRecord) -> None:
    """A poll that parsed the feed: bookkeeping plus the feed's title, link and hints."""
    params = _ok_values(record) | {
        "b_feed_title": record.feed_title,
        "b_feed_link": record.feed_link,
        "b_ttl_s": record.hints.ttl_s,
        "b_skip_hours": dumps(record.hints.skip_hours),
        "b_skip_days": dumps(record.hints.skip_days),
    }
    conn.execute(_feed_update(moved=bool(record.permanent_url)), params)
