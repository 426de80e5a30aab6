"""What `aggregator explain` reads (issue #14): the entries a query names, and the story of
each: the sources that carried it under which keys, every verdict kept about it, and its rank
among the entries of an output. Read-only, on a Core connection.

A query is an entry's number (the "entry N" of merge reasons), its uid (``urn:uuid:...``, or
the bare UUID), a key (``guid:...``, ``link:...``, ``hash:...``), a link (any spelling that
normalises to the entry's), or a fragment of a title: compared case-folded and without
punctuation against the stored comparison form of titles (so CJK text, which has no spaces,
matches inside a run of characters), and as typed against the display title and the titles
each source gave its copy (kept with the verdicts).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select

from ..process.dedup import normalise_title
from ..process.links import normalise_link
from ..story import Carrier, OutputPlace, Story, Verdict
from ..types import StoredEntry
from .convert import to_stored
from .write import DECISIONS, ENTRIES, ITEMS

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_KEYS = ("guid:", "link:", "hash:")


def _entry_match(query: str) -> ColumnElement[bool]:
    """Which entries ``query`` names (see the module docstring)."""
    if query.isdigit():
        return ENTRIES.c.id == int(query)
    bare = query.removeprefix("urn:uuid:")
    if _UUID.fullmatch(bare):
        return ENTRIES.c.uid == "urn:uuid:" + bare.lower()
    if query.startswith(_KEYS):
        return ENTRIES.c.id.in_(select(ITEMS.c.entry_id).where(ITEMS.c.key == query))
    if query.lower().startswith(("http://", "https://")):
        carried = select(ITEMS.c.entry_id).where(ITEMS.c.link == query)
        norm = normalise_link(query)
        return or_(ENTRIES.c.link == query, ENTRIES.c.norm_link == norm, ENTRIES.c.id.in_(carried))
    # The title a source gave its copy (a merged entry shows its primary source's): as kept
    # with each verdict.
    called = select(DECISIONS.c.entry_id).where(DECISIONS.c.title.icontains(query, autoescape=True))
    matches = [ENTRIES.c.title.icontains(query, autoescape=True), ENTRIES.c.id.in_(called)]
    if norm_title := normalise_title(query):
        matches.append(ENTRIES.c.norm_title.contains(norm_title, autoescape=True))
    return or_(*matches)


def _verdict_match(query: str) -> ColumnElement[bool]:
    """Which verdicts ``query`` names (by the title, link or key they were given)."""
    if query.startswith(_KEYS):
        return DECISIONS.c.key == query
    if query.lower().startswith(("http://", "https://")):
        return DECISIONS.c.link == query
    return DECISIONS.c.title.icontains(query, autoescape=True)


def find_entries(conn: Connection, query: str, *, limit: int) -> list[int]:
    """The ids of the entries ``query`` names, newest first (at most ``limit``)."""
    stmt = (
        select(ENTRIES.c.id)
        .where(_entry_match(query.strip()))
        .order_by(ENTRIES.c.sort_at.desc(), ENTRIES.c.id.desc())
        .limit(limit)
    )
    return [row_id for (row_id,) in conn.execute(stmt)]


def find_unstored(conn: Connection, query: str, *, limit: int) -> list[tuple[str, str]]:
    """(source, key) of the entries ``query`` names that their source does not store (now):
    dropped over the cap, filtered by a rule, pruned by retention; latest verdict first."""
    stored = select(ITEMS.c.id).where(
        ITEMS.c.source_id == DECISIONS.c.source_id, ITEMS.c.key == DECISIONS.c.key
    )
    stmt = (
        select(DECISIONS.c.source_id, DECISIONS.c.key, func.max(DECISIONS.c.id).label("last"))
        .where(_verdict_match(query.strip()), ~stored.exists())
        .group_by(DECISIONS.c.source_id, DECISIONS.c.key)
        .order_by(func.max(DECISIONS.c.id).desc())
        .limit(limit)
    )
    return [(source_id, key) for source_id, key, _ in conn.execute(stmt)]


def _verdict(row: Any) -> Verdict:
    return Verdict(
        at=row.at, source_id=row.source_id, key=row.key, entry_id=row.entry_id,
        action=row.action, reason=row.reason, rule=row.rule,
        fields=tuple(row.fields.split(",")) if row.fields else (), title=row.title, link=row.link,
    )  # fmt: skip


def _verdicts(conn: Connection, about: ColumnElement[bool]) -> tuple[Verdict, ...]:
    stmt = select(DECISIONS).where(about).order_by(DECISIONS.c.at, DECISIONS.c.id)
    return tuple(_verdict(row) for row in conn.execute(stmt))


def _carriers(conn: Connection, entry_id: int) -> tuple[Carrier, ...]:
    stmt = (
        select(ITEMS)
        .where(ITEMS.c.entry_id == entry_id)
        .order_by(ITEMS.c.is_primary.desc(), ITEMS.c.id)
    )
    rows = conn.execute(stmt).all()
    return tuple(
        Carrier(r.source_id, r.key, r.guid, r.link, r.is_primary, r.first_seen_at, r.updated_at)
        for r in rows
    )


def entry_story(conn: Connection, entry_id: int) -> Story | None:
    """The story of one stored entry: its row, its carriers, every verdict kept about it
    (those naming it, and those about its carriers' keys: e.g. a filter before it passed)."""
    row = conn.execute(select(ENTRIES).where(ENTRIES.c.id == entry_id)).first()
    if row is None:
        return None
    carriers = _carriers(conn, entry_id)
    about = or_(
        DECISIONS.c.entry_id == entry_id,
        *(and_(DECISIONS.c.source_id == c.source_id, DECISIONS.c.key == c.key) for c in carriers),
    )
    return Story(
        entry_id=row.id, uid=row.uid, title=row.title, link=row.link,
        published_at=row.published_at, first_seen_at=row.first_seen_at,
        updated_at=row.updated_at, sort_at=row.sort_at, carriers=carriers,
        verdicts=_verdicts(conn, about),
    )  # fmt: skip


def unstored_story(conn: Connection, source_id: str, key: str) -> Story:
    """The story of an entry a source carried that it does not store (now)."""
    verdicts = _verdicts(conn, and_(DECISIONS.c.source_id == source_id, DECISIONS.c.key == key))
    named = [v for v in verdicts if v.title]
    title = named[-1].title if named and named[-1].title else key
    link = named[-1].link if named else None
    return Story(entry_id=None, uid=None, title=title, link=link, verdicts=verdicts)


def place_in(
    conn: Connection,
    story: Story,
    *,
    output: str,
    source_ids: Sequence[str],
    limit: int,
    hides: Callable[[StoredEntry], str | None] | None = None,
) -> OutputPlace:
    """Whether ``output`` (the entries its ``source_ids`` carry, newest ``limit``, less what
    ``hides``) shows the entry now: its rank by date among them, or why it is not there."""
    if story.entry_id is None:
        return OutputPlace(output, False, "not stored")
    carriers = {c.source_id for c in story.carriers}
    if not carriers.intersection(source_ids):
        return OutputPlace(output, False, "none of its sources is in this output")
    if hides is not None:
        row = conn.execute(select(ENTRIES).where(ENTRIES.c.id == story.entry_id)).one()
        if why := hides(to_stored(row, (), None)):
            return OutputPlace(output, False, f"hidden by its rules: {why}")
    carried = select(ITEMS.c.entry_id).where(ITEMS.c.source_id.in_(list(source_ids)))
    newer = or_(
        ENTRIES.c.sort_at > story.sort_at,
        and_(ENTRIES.c.sort_at == story.sort_at, ENTRIES.c.id > story.entry_id),
    )
    stmt = select(func.count()).select_from(ENTRIES).where(ENTRIES.c.id.in_(carried), newer)
    rank = int(conn.execute(stmt).scalar() or 0) + 1
    if rank <= limit:
        return OutputPlace(output, True, f"number {rank} of its newest {limit}")
    return OutputPlace(output, False, f"number {rank} by date: older than its newest {limit}")
