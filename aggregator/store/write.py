"""Batched writes of one poll's verdicts (entries, items, decisions), on a Core connection.

Each statement is built once and run over all its rows at once (inserts through
``bulk.BulkInsert``: multi-row VALUES with RETURNING, the driver's own executemany on SQLite):
cost grows with the entries that changed, not with the stored history.
Conflicting inserts are skipped by the database (ON CONFLICT DO NOTHING), so concurrent
writers never create duplicates; what did not insert is reported as a duplicate.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, bindparam, select, update

from ..types import Action, Decision, StoreResult
from .bulk import BulkInsert
from .convert import entry_values
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
        "field_hashes": d.field_hashes,
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
            field_hashes=bindparam("b_fields"),
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
                "b_fields": d.field_hashes,
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
    .values(
        content_hash=bindparam("b_hash"),
        hash_version=bindparam("b_hash_version"),
        field_hashes=bindparam("b_fields"),
    )
)


def _rehash_items(conn: Connection, source_id: str, rehashes: Sequence[Decision]) -> None:
    """Items hashed by an older recipe take the new hash silently (issue #10)."""
    rows = [
        {"b_source": source_id, "b_key": d.entry.key, "b_hash": d.entry.content_hash,
         "b_hash_version": d.hash_version, "b_fields": d.field_hashes}
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
                    # For ``explain`` (issue #14): the rule, the fields changed, and what the
                    # entry was called (a dropped entry is stored nowhere else).
                    "rule": d.rule,
                    "fields": ",".join(d.fields) or None,
                    "title": d.entry.title,
                    "link": d.entry.link,
                }
            )
    result = StoreResult(
        new=counts[Action.NEW],
        updated=counts[Action.UPDATE],
        duplicate=counts[Action.MERGE] + counts[Action.DUPLICATE],
        unchanged=counts[Action.UNCHANGED] + counts[Action.REHASH],  # not an update to report
        merged=counts[Action.MERGE],
        filtered=counts[Action.FILTERED],
        dropped=counts[Action.DROPPED],
    )
    return log, result
