"""Dedup keys, content hashes and the per-entry verdicts. Pure: no I/O, no clock.

The store's unique constraints are the real guarantee; these verdicts decide what to write and
are kept as data (``Decision``) so that ``explain`` can trace every entry's fate.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime, timedelta

from ..types import Action, Candidate, Decision, Enclosure, Entry, Known

_PUNCT_OR_SPACE = re.compile(r"[\W_]+", re.UNICODE)
# Keys and comparison forms are indexed; PostgreSQL's btree rejects values over ~2.7 kB.
MAX_INDEXED = 500


def normalise_title(title: str | None) -> str:
    """Comparison form of a title: NFKC, case-folded, punctuation and spaces removed."""
    if not title:
        return ""
    return _PUNCT_OR_SPACE.sub("", unicodedata.normalize("NFKC", title).casefold())[:MAX_INDEXED]


def _bounded(prefix: str, value: str) -> str:
    if len(value) <= MAX_INDEXED:
        return prefix + value
    return prefix + "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()


# Built once: ``json.dumps`` with options builds an encoder per call (two calls per entry).
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def _digest(*parts: object) -> str:
    return hashlib.sha256(_ENCODE(parts).encode("utf-8")).hexdigest()


def entry_key(
    *, guid: str | None, norm_link: str | None, title: str, published_at: datetime | None, body: str
) -> str:
    """The entry's identity within its source: guid, else normalised link, else a hash."""
    if guid and guid.strip():
        return _bounded("guid:", guid.strip())
    if norm_link:
        return _bounded("link:", norm_link)
    stamp = published_at.isoformat() if published_at else ""
    if title or stamp:
        return "hash:" + _digest(title, stamp)[:32]
    return "hash:" + _digest(body)[:32]


def content_hash(
    *,
    title: str,
    link: str | None,
    author: str | None,
    content_html: str,
    summary: str,
    thumbnail: str | None,
    categories: Sequence[str],
    enclosures: Sequence[Enclosure],
) -> str:
    """Hash of what a reader sees; dates are left out because feeds bump them spuriously."""
    encl = [(e.url, e.type, e.length) for e in enclosures]
    return _digest(title, link, author, content_html, summary, thumbnail, list(categories), encl)


def _match(
    entry: Entry,
    candidates: Sequence[Candidate],
    *,
    at: datetime,
    window: timedelta,
    min_title_length: int,
) -> tuple[Candidate, str] | None:
    """An entry another source already carried that is the same story, with the reason why.

    Only across sources: within one source the key is the identity (as in Miniflux and
    reader), since one blog may well post twice about the same link.
    """
    others = [c for c in candidates if entry.source_id not in c.source_ids]
    if entry.norm_link:
        for cand in others:
            if cand.norm_link == entry.norm_link:
                return cand, f"same link {entry.norm_link} as entry {cand.entry_id}"
    if len(entry.norm_title) < min_title_length:
        return None
    for cand in others:
        if cand.norm_title == entry.norm_title and abs(cand.sort_at - at) <= window:
            return cand, f"same title as entry {cand.entry_id} within {window}"
    return None


def decide(
    entries: Sequence[Entry],
    known: Known,
    *,
    now: datetime,
    title_window: timedelta,
    min_title_length: int = 6,
) -> tuple[Decision, ...]:
    """Classify each entry of one poll as new, update, unchanged, merge or duplicate."""
    decisions: list[Decision] = []
    batch_keys: set[str] = set()
    for entry in entries:
        if entry.key in batch_keys:
            decisions.append(Decision(Action.DUPLICATE, entry, "key repeated in the document"))
            continue
        batch_keys.add(entry.key)
        item = known.items.get(entry.key)
        if item is not None:
            if item.content_hash == entry.content_hash:
                decisions.append(
                    Decision(Action.UNCHANGED, entry, "same content", item.entry_id, item.primary)
                )
            else:
                decisions.append(
                    Decision(Action.UPDATE, entry, "content changed", item.entry_id, item.primary)
                )
            continue
        found = _match(
            entry,
            known.candidates,
            at=entry.published_at or now,
            window=title_window,
            min_title_length=min_title_length,
        )
        if found is not None:
            cand, reason = found
            decisions.append(Decision(Action.MERGE, entry, reason, cand.entry_id, primary=False))
        else:
            decisions.append(Decision(Action.NEW, entry, "not seen before"))
    return tuple(decisions)
