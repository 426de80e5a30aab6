"""Re-key stored items after a change of the key recipe (issue #10); no recipe of its own.

A bump of ``process.dedup.KEY_VERSION`` ships with a migration whose ``upgrade()`` runs::

    rekey_items(op.get_bind(), recipe=dedup.stored_key, version=dedup.KEY_VERSION)

so that the next poll finds every stored item under its new key (not a flood of new entries).
The recipe is handed in: the store does not import ``process``. Keys are recomputed from what
is stored, never from the old key, so re-keying twice is harmless. An item whose key cannot be
recomputed (one hashed from the content of an item that is not its entry's primary), or whose
new key another item of its source already has, keeps its old key and version: at worst that
one item comes back as new once. Public ids (``entries.uid``) are stored and never change.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection, bindparam, select, update

from .write import ENTRIES, ITEMS

log = logging.getLogger(__name__)

Slot = tuple[str, str]  # (source_id, key): unique among items


class KeyRecipe(Protocol):
    """The key of a stored item, or ``None`` if what is stored is not enough to compute it."""

    def __call__(
        self,
        *,
        guid: str | None,
        link: str | None,
        title: str | None,
        norm_title: str | None,
        published_at: datetime | None,
        body: str | None,
    ) -> str | None: ...


@dataclass(frozen=True, slots=True)
class RekeyReport:
    rekeyed: int = 0  # items whose key changed
    confirmed: int = 0  # items whose key is the same under the new recipe
    kept: int = 0  # not recomputable, or taken by another item: old key and version kept


_SLOTS = select(ITEMS.c.id, ITEMS.c.source_id, ITEMS.c.key)
# What the key came from: the item's guid and link; the merged entry's title, date and content,
# which are the item's own only if it is the primary item.
_STALE = (
    select(
        ITEMS.c.id, ITEMS.c.guid, ITEMS.c.link, ITEMS.c.is_primary, ENTRIES.c.title,
        ENTRIES.c.norm_title, ENTRIES.c.published_at, ENTRIES.c.content_html,
    )
    .join_from(ITEMS, ENTRIES, ITEMS.c.entry_id == ENTRIES.c.id)
    .where(ITEMS.c.key_version < bindparam("version"))
    .order_by(ITEMS.c.id)
    .execution_options(yield_per=1000)  # the content is read once, never held
)  # fmt: skip
_SET_KEY = update(ITEMS).where(ITEMS.c.id == bindparam("b_id")).values(key=bindparam("b_key"))
_SET_VERSION = (
    update(ITEMS).where(ITEMS.c.id == bindparam("b_id")).values(key_version=bindparam("b_version"))
)


def rekey_items(conn: Connection, *, recipe: KeyRecipe, version: int) -> RekeyReport:
    """Recompute the key of every item stored under a key version older than ``version``."""
    stale, proposed = _propose(conn, recipe, version)
    current = {item_id: (source, key) for item_id, source, key in conn.execute(_SLOTS)}
    final = resolve(current, proposed)
    moved = [i for i in proposed if final[i] != current[i]]
    if moved:  # through placeholders: two items may swap keys, and each key is unique
        conn.execute(_SET_KEY, [{"b_id": i, "b_key": f"rekey:{i}"} for i in moved])
        conn.execute(_SET_KEY, [{"b_id": i, "b_key": final[i][1]} for i in moved])
    done = [i for i, key in proposed.items() if final[i][1] == key]
    if done:
        conn.execute(_SET_VERSION, [{"b_id": i, "b_version": version} for i in done])
    report = RekeyReport(len(moved), len(done) - len(moved), stale - len(done))
    log.info(
        "rekey version=%d rekeyed=%d confirmed=%d kept=%d",
        version, report.rekeyed, report.confirmed, report.kept,
    )  # fmt: skip
    return report


def _propose(conn: Connection, recipe: KeyRecipe, version: int) -> tuple[int, dict[int, str]]:
    """How many items are stale, and the new key of those whose key can be recomputed."""
    stale, proposed = 0, {}
    for item_id, guid, link, primary, title, norm_title, published_at, body in conn.execute(
        _STALE, {"version": version}
    ):
        stale += 1
        own = bool(primary)
        key = recipe(
            guid=guid,
            link=link,
            title=title if own else None,
            norm_title=norm_title if own else None,
            published_at=published_at if own else None,
            body=body if own else None,
        )
        if key is not None:
            proposed[item_id] = key
    return stale, proposed


def resolve(current: Mapping[int, Slot], proposed: Mapping[int, str]) -> dict[int, Slot]:
    """The slot of each item once re-keyed, unique: on a clash the item already there keeps
    it (else the oldest item takes it), the others keep their old keys. Pure."""
    final = {i: (source, proposed.get(i, key)) for i, (source, key) in current.items()}
    while True:
        by_slot: dict[Slot, list[int]] = defaultdict(list)
        for item_id, slot in final.items():
            by_slot[slot].append(item_id)
        clashes = [ids for ids in by_slot.values() if len(ids) > 1]
        if not clashes:
            return final
        for ids in clashes:  # old keys are unique: at most one of ``ids`` is at its own
            staying = [i for i in ids if final[i] == current[i]]
            winner = staying[0] if staying else min(ids)
            for item_id in ids:
                if item_id != winner:
                    final[item_id] = current[item_id]
