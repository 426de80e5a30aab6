"""Batched writes of one poll's verdicts and of poll bookkeeping, on a Core connection.

Each statement is built once and run over all its rows at once (inserts through
``bulk.BulkInsert``: multi-row VALUES with RETURNING, the driver's own executemany on SQLite):
cost grows with the entries that changed, not with the stored history.
Conflicting inserts are skipped by the database (ON CONFLICT DO NOTHING), so concurrent
writers never create duplicates; what did not insert is reported as a duplicate.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, bindparam, func, select, update

from ..types import Action, Decision, PollRecord, StoreResult
from .bulk import BulkExecute, BulkInsert
from .convert import dumps, entry_values
from .models import DecisionRow, EntryRow, ItemRow, SourceRow

CHUNK = 500  # ids per IN (...)
UID_NAMESPACE = uuid.UUID("6f1d3c1e-6a52-4c1b-9a8e-5b0d2f7a9c11")
_UID_PREFIX = UID_NAMESPACE.bytes
ENTRIES = cast(Table, EntryRow.__table__)
ITEMS = cast(Table, ItemRow.__table__)
SOURCES = cast(Table, SourceRow.__table__)
DECISIONS = cast(Table, DecisionRow.__table__)


def entry_uid(source_id: str, key: str) -> str:
    """The stable public id of the entry first seen as ``key`` in ``source_id``.

    ``uuid.uuid5(UID_NAMESPACE, f"{source_id}\\x00{key}")``, spelled out: the same SHA-1 and
    version bits without building a ``UUID`` object (a cold tick makes one per entry).
    """
    digest = bytearray(hashlib.sha1(_UID_PREFIX + f"{source_id}\x00{key}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"urn:uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_NEW_ENTRIES = BulkInsert(ENTRIES, conflict=["uid"], returning=[ENTRIES.c.id, ENTRIES.c.uid])
_NEW_ITEMS = BulkInsert(ITEMS, conflict=["source_id", "key"], returning=[ITEMS.c.key])
_DECISIONS = BulkInsert(DECISIONS)


def _item_row(
    source_id: str, d: Decision, entry_id: int, primary: bool, now: datetime
) -> dict[str, Any]:
    entry = d.entry
    return {
        "source_id": source_id,
        "key": entry.key,
        "entry_id": entry_id,
        "is_primary": primary,
        "guid": entry.guid,
        "link": entry.link,
        "content_hash": entry.content_hash,
        "first_seen_at": now,
        "updated_at": now,
        "key_version": d.key_version,
        "hash_version": d.hash_version,
    }


def _insert_entries(
    conn: Connection, source_id: str, decisions: Sequence[Decision], now: datetime
) -> dict[str, int]:
    """Insert NEW entries; return key -> entry id for those that were inserted."""
    if not decisions:
        return {}
    uids = {entry_uid(source_id, d.entry.key): d for d in decisions}
    rows = [
        {
            **entry_values(d.entry),
            "uid": uid,
            "primary_source_id": source_id,
            "first_seen_at": now,
            "updated_at": d.entry.updated_at or d.entry.published_at or now,
            "sort_at": d.entry.published_at or now,
        }
        for uid, d in uids.items()
    ]
    return {uids[uid].entry.key: entry_id for entry_id, uid in _NEW_ENTRIES.run(conn, rows)}


def _insert_items(conn: Connection, rows: list[dict[str, Any]]) -> set[str]:
    """Insert provenance items; return the keys that were inserted (others already existed)."""
    return {key for (key,) in _NEW_ITEMS.run(conn, rows)}


def _update_items(
    conn: Connection, source_id: str, updates: Sequence[Decision], now: datetime
) -> None:
    if not updates:
        return
    stmt = (
        update(ITEMS)
        .where(and_(ITEMS.c.source_id == bindparam("b_source"), ITEMS.c.key == bindparam("b_key")))
        .values(
            content_hash=bindparam("b_hash"),
            hash_version=bindparam("b_hash_version"),
            link=bindparam("b_link"),
            updated_at=now,
        )
    )
    conn.execute(
        stmt,
        [
            {
                "b_source": source_id,
                "b_key": d.entry.key,
                "b_hash": d.entry.content_hash,
                "b_hash_version": d.hash_version,
                "b_link": d.entry.link,
            }
            for d in updates
        ],
    )


# Only the hash and its version: no ``updated_at``, and the merged entry is left alone (its
# ``content_hash`` is never compared).
_REHASH = (
    update(ITEMS)
    .where(and_(ITEMS.c.source_id == bindparam("b_source"), ITEMS.c.key == bindparam("b_key")))
    .values(content_hash=bindparam("b_hash"), hash_version=bindparam("b_hash_version"))
)


def _rehash_items(conn: Connection, source_id: str, rehashes: Sequence[Decision]) -> None:
    """Items hashed by an older recipe take the new hash silently (issue #10)."""
    rows = [
        {"b_source": source_id, "b_key": d.entry.key, "b_hash": d.entry.content_hash,
         "b_hash_version": d.hash_version}
        for d in rehashes
    ]  # fmt: skip
    if rows:
        conn.execute(_REHASH, rows)


def _update_entries(conn: Connection, updates: Sequence[Decision], now: datetime) -> None:
    """Primary items changed: their merged entries take the new content; ``updated`` bumps."""
    primary = [d for d in updates if d.primary and d.entry_id is not None]
    if not primary:
        return
    ids = [d.entry_id for d in primary]
    stmt = select(ENTRIES.c.id, ENTRIES.c.updated_at, ENTRIES.c.sort_at).where(
        ENTRIES.c.id.in_(ids)
    )
    current = {row_id: (updated, sort) for row_id, updated, sort in conn.execute(stmt)}
    rows = []
    for d in primary:
        assert d.entry_id is not None
        if d.entry_id not in current:
            continue
        stored_updated, stored_sort = current[d.entry_id]
        feed_updated = d.entry.updated_at
        newer = feed_updated if feed_updated and feed_updated > stored_updated else None
        rows.append(
            {
                **{f"b_{k}": v for k, v in entry_values(d.entry).items()},
                "b_id": d.entry_id,
                "b_updated_at": newer or now,
                "b_sort_at": d.entry.published_at or stored_sort,
            }
        )
    if rows:
        names = [k.removeprefix("b_") for k in rows[0] if k != "b_id"]
        change = (
            update(ENTRIES)
            .where(ENTRIES.c.id == bindparam("b_id"))
            .values({name: bindparam(f"b_{name}") for name in names})
        )
        conn.execute(change, rows)


def apply_decisions(
    conn: Connection, source_id: str, decisions: Sequence[Decision], now: datetime
) -> StoreResult:
    """Write one poll's verdicts: new entries, merges, updates, re-hashes, the decisions log."""
    by_action: dict[Action, list[Decision]] = {action: [] for action in Action}
    for decision in decisions:
        by_action[decision.action].append(decision)
    created = _insert_entries(conn, source_id, by_action[Action.NEW], now)
    items = [
        _item_row(source_id, d, created[d.entry.key], True, now)
        for d in by_action[Action.NEW]
        if d.entry.key in created
    ]
    items += [
        _item_row(source_id, d, d.entry_id, False, now)
        for d in by_action[Action.MERGE]
        if d.entry_id is not None
    ]
    inserted = _insert_items(conn, items)
    _update_items(conn, source_id, by_action[Action.UPDATE], now)
    _update_entries(conn, by_action[Action.UPDATE], now)
    _rehash_items(conn, source_id, by_action[Action.REHASH])
    log, counts = _outcomes(source_id, decisions, created, inserted, now)
    _DECISIONS.run(conn, log)
    return counts


def _outcomes(
    source_id: str,
    decisions: Sequence[Decision],
    created: dict[str, int],
    inserted: set[str],
    now: datetime,
) -> tuple[list[dict[str, Any]], StoreResult]:
    """What actually happened to each decision (a lost insert race is a duplicate)."""
    log: list[dict[str, Any]] = []
    counts = {action: 0 for action in Action}
    for d in decisions:
        action, entry_id = d.action, d.entry_id
        if action is Action.NEW:
            entry_id = created.get(d.entry.key)
            if entry_id is None or d.entry.key not in inserted:
                action = Action.DUPLICATE
        elif action is Action.MERGE and d.entry.key not in inserted:
            action = Action.DUPLICATE
        counts[action] += 1
        if action is not Action.UNCHANGED:
            log.append(
                {
                    "at": now,
                    "source_id": source_id,
                    "key": d.entry.key,
                    "entry_id": entry_id,
                    "action": action.value,
                    "reason": d.reason,
                }
            )
    result = StoreResult(
        new=counts[Action.NEW],
        updated=counts[Action.UPDATE],
        duplicate=counts[Action.MERGE] + counts[Action.DUPLICATE],
        unchanged=counts[Action.UNCHANGED] + counts[Action.REHASH],  # not an update to report
        merged=counts[Action.MERGE],
    )
    return log, result


# -- poll bookkeeping -----------------------------------------------------------------------------


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
    """Write the bookkeeping of polls that stored no entries (304s, unchanged bodies, failures)."""
    plain_304 = [r for r in records if _is_plain_304(r)]
    ok = [r for r in records if r.status in ("ok", "not_modified") and not _is_plain_304(r)]
    failed = [r for r in records if r.status not in ("ok", "not_modified")]
    if plain_304:
        _write_304(conn, plain_304)
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


def _write_304(conn: Connection, records: Sequence[PollRecord]) -> None:
    """Plain 304s: the poll's status and times, the validators sent; the body hash stays.

    What they share (status, time of the poll) is one UPDATE ... WHERE id IN (...) per chunk;
    the rest (``next_check_at`` is jittered per source) is written row by row. The warm tick's
    bookkeeping is most of its database time.
    """
    by_at: dict[datetime, list[PollRecord]] = {}
    for r in records:
        by_at.setdefault(r.at, []).append(r)
    for at, group in by_at.items():
        ids = [r.source_id for r in group]
        for start in range(0, len(ids), CHUNK):
            stmt = update(SOURCES).where(SOURCES.c.id.in_(ids[start : start + CHUNK]))
            conn.execute(
                stmt.values(
                    status="not_modified", http_status=304, last_poll_at=at, last_ok_at=at,
                    failures=0, last_error=None,
                )
            )  # fmt: skip
    _304_NEXT.run(
        conn,
        [
            {"b_id": r.source_id, "b_next": r.next_check_at, "b_why": r.next_check_why,
             "b_etag": r.etag, "b_last_modified": r.last_modified}
            for r in records
        ],
    )  # fmt: skip


# A warm tick runs it for every source: SQLAlchemy's per-row parameter handling would cost more
# than SQLite's own work does for it, hence ``BulkExecute``.
_304_NEXT = BulkExecute(
    _source_update(
        next_check_at=bindparam("b_next"),
        next_check_why=bindparam("b_why"),
        etag=bindparam("b_etag"),
        last_modified=bindparam("b_last_modified"),
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
        failures=0,
        last_error=None,
        **more,
    )
    if moved:
        values["url"] = bindparam("b_url")
    return _source_update(**values)


def _write_ok(conn: Connection, records: Sequence[PollRecord]) -> None:
    for moved in (False, True):
        rows = [_ok_values(r) for r in records if bool(r.permanent_url) is moved]
        if rows:
            conn.execute(_ok_update(moved=moved), rows)


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
