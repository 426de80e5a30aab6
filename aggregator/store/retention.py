"""Retention on a Core connection (issue #15): prune behind tombstones, expire old tombstones,
and the tombstones of a poll's keys.

A source's copy of an entry (its item) is pruned when the entry is older than the policy
keeps, or beyond the newest ``max_entries`` of that source. Its key stays behind as a
tombstone, so the feed that still carries it never brings it back as new. A merged entry is
deleted only with its last copy; one that loses its primary copy passes to the oldest other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, or_, select, update

from ..types import Action, Decision, PrunePolicy, PruneReport, Tombstone
from .models import TombstoneRow
from .write import DECISIONS, ENTRIES, ITEMS

TOMBSTONES = cast(Table, TombstoneRow.__table__)
CHUNK = 500  # ids per IN (...)

_TOMBSTONES = select(
    TOMBSTONES.c.key, TOMBSTONES.c.pruned, TOMBSTONES.c.reason, TOMBSTONES.c.at
).where(
    TOMBSTONES.c.source_id == bindparam("source"),
    TOMBSTONES.c.key.in_(bindparam("keys", expanding=True)),
)


def _chunks(values: Sequence[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(values), CHUNK):
        yield list(values[start : start + CHUNK])


def tombstones(conn: Connection, source_id: str, keys: Sequence[str]) -> dict[str, Tombstone]:
    """The tombstones of ``source_id`` among ``keys``."""
    found: dict[str, Tombstone] = {}
    for chunk in _chunks(keys):
        for key, pruned, reason, at in conn.execute(
            _TOMBSTONES, {"source": source_id, "keys": chunk}
        ):
            found[key] = Tombstone(key, bool(pruned), reason, at)
    return found


def _replace(conn: Connection, source_id: str, rows: list[dict[str, Any]]) -> None:
    """Tombstones for these keys of one source, replacing any they had."""
    for chunk in _chunks([row["key"] for row in rows]):
        conn.execute(
            delete(TOMBSTONES).where(
                TOMBSTONES.c.source_id == source_id, TOMBSTONES.c.key.in_(chunk)
            )
        )
    if rows:
        conn.execute(insert(TOMBSTONES), rows)


def remember_dropped(
    conn: Connection, source_id: str, decisions: Sequence[Decision], at: datetime
) -> None:
    """Keep the keys a source's rules dropped in this poll, with the rule: the next poll that
    sees them dropped by the same rule logs nothing (``filters.screen``)."""
    rows = [
        {"source_id": source_id, "key": d.entry.key, "pruned": False, "reason": d.reason, "at": at}
        for d in decisions
        if d.action is Action.FILTERED
    ]
    if rows:
        _replace(conn, source_id, rows)


def forget_sources(conn: Connection, source_ids: Sequence[str]) -> None:
    """The tombstones of sources removed from the store."""
    conn.execute(delete(TOMBSTONES).where(TOMBSTONES.c.source_id.in_(list(source_ids))))


# -- pruning --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Doomed:
    item_id: int
    source_id: str
    key: str
    entry_id: int
    why: str
    title: str
    link: str | None


def _doomed(conn: Connection, policy: PrunePolicy) -> list[_Doomed]:
    """The items the policy prunes, with why: too old, or beyond their source's newest."""
    columns: list[Any] = [
        ITEMS.c.id,
        ITEMS.c.source_id,
        ITEMS.c.key,
        ITEMS.c.entry_id,
        ENTRIES.c.sort_at,
        ENTRIES.c.title,  # title and link: the pruned decision keeps them for ``explain``
        ITEMS.c.link,
    ]
    if policy.max_entries is not None:
        order = (ENTRIES.c.sort_at.desc(), ENTRIES.c.id.desc())
        rank = func.row_number().over(partition_by=ITEMS.c.source_id, order_by=order)
        columns.append(rank.label("rank"))
    ranked = select(*columns).join(ENTRIES, ENTRIES.c.id == ITEMS.c.entry_id).subquery()
    conditions = []
    if policy.keep_after is not None:
        conditions.append(ranked.c.sort_at < policy.keep_after)
    if policy.max_entries is not None:
        conditions.append(ranked.c.rank > policy.max_entries)
    if not conditions:
        return []
    doomed = []
    for row in conn.execute(select(ranked).where(or_(*conditions)).order_by(ranked.c.id)):
        if policy.keep_after is not None and row[4] < policy.keep_after:
            why = f"dated before {policy.keep_after:%Y-%m-%d}"
        else:
            why = f"beyond the newest {policy.max_entries} of its source"
        doomed.append(_Doomed(row[0], row[1], row[2], row[3], why, row[5], row[6]))
    return doomed


def _survivors(
    conn: Connection, entry_ids: Sequence[int], doomed: set[int]
) -> dict[int, list[tuple[int, str, bool]]]:
    """The items each entry keeps once ``doomed`` are gone: (item id, source, primary)."""
    kept: dict[int, list[tuple[int, str, bool]]] = {}
    stmt = select(ITEMS.c.entry_id, ITEMS.c.id, ITEMS.c.source_id, ITEMS.c.is_primary)
    for chunk in _chunks(entry_ids):
        for entry_id, item_id, source_id, primary in conn.execute(
            stmt.where(ITEMS.c.entry_id.in_(chunk)).order_by(ITEMS.c.id)
        ):
            if item_id not in doomed:
                kept.setdefault(entry_id, []).append((item_id, source_id, bool(primary)))
    return kept


def _new_primaries(conn: Connection, kept: dict[int, list[tuple[int, str, bool]]]) -> None:
    """Entries whose primary copy is pruned pass to their oldest other copy."""
    heirs = [(entry_id, items[0]) for entry_id, items in kept.items()
             if not any(primary for _, _, primary in items)]  # fmt: skip
    if not heirs:
        return
    conn.execute(
        update(ENTRIES).where(ENTRIES.c.id == bindparam("b_id"))
        .values(primary_source_id=bindparam("b_source")),
        [{"b_id": entry_id, "b_source": source} for entry_id, (_, source, _) in heirs],
    )  # fmt: skip
    conn.execute(
        update(ITEMS).where(ITEMS.c.id == bindparam("b_id")).values(is_primary=True),
        [{"b_id": item_id} for _, (item_id, _, _) in heirs],
    )


def _bury(conn: Connection, doomed: Sequence[_Doomed], now: datetime) -> None:
    """Tombstones for the pruned keys, and a ``pruned`` decision each (for ``explain``)."""
    by_source: dict[str, list[dict[str, Any]]] = {}
    for d in doomed:
        by_source.setdefault(d.source_id, []).append(
            {"source_id": d.source_id, "key": d.key, "pruned": True, "reason": d.why, "at": now}
        )
    for source_id, rows in by_source.items():
        _replace(conn, source_id, rows)
    log = [{"at": now, "source_id": d.source_id, "key": d.key, "entry_id": d.entry_id,
            "action": Action.PRUNED.value, "reason": f"retention: {d.why}", "rule": "retention",
            "title": d.title, "link": d.link}
           for d in doomed]  # fmt: skip
    if log:
        conn.execute(insert(DECISIONS), log)


def _delete(conn: Connection, table: Table, ids: Sequence[int]) -> None:
    for chunk in _chunks(ids):
        conn.execute(delete(table).where(table.c.id.in_(chunk)))


def prune(conn: Connection, policy: PrunePolicy, *, dry_run: bool = False) -> PruneReport:
    """Apply ``policy``: prune what it does not keep (behind tombstones), delete entries left
    without a copy, expire old tombstones. ``dry_run``: only count what would go."""
    doomed = _doomed(conn, policy)
    entry_ids = sorted({d.entry_id for d in doomed})
    kept = _survivors(conn, entry_ids, {d.item_id for d in doomed})
    orphans = [entry_id for entry_id in entry_ids if entry_id not in kept]
    expired = TOMBSTONES.c.at < policy.tombstones_after
    if dry_run:
        count = select(func.count()).select_from(TOMBSTONES).where(expired)
        old_tombstones = int(conn.execute(count).scalar() or 0)
    else:
        old_tombstones = int(conn.execute(delete(TOMBSTONES).where(expired)).rowcount or 0)
        _bury(conn, doomed, policy.now)
        _new_primaries(conn, kept)
        _delete(conn, ITEMS, [d.item_id for d in doomed])
        _delete(conn, ENTRIES, orphans)
    per_source = Counter(d.source_id for d in doomed)
    return PruneReport(
        items=len(doomed),
        entries=len(orphans),
        tombstones_expired=old_tombstones,
        by_source=tuple(sorted(per_source.items(), key=lambda kv: (-kv[1], kv[0]))),
        dry_run=dry_run,
    )
