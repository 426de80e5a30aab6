"""Dedup keys, content hashes and the per-entry verdicts. Pure: no I/O, no clock.

The store's unique constraints are the real guarantee; these verdicts decide what to write and
are kept as data (``Decision``) so that ``explain`` can trace every entry's fate. Keys and
hashes are stored with the version of their recipe (issue #10).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ..types import Action, Candidate, Decision, Enclosure, Entry, Known, KnownItem
from .links import normalise_link

# The versions of the two recipes, stored with every item (``items.key_version`` and
# ``items.hash_version``; rows from before versions existed are 1).
# CONTENT_HASH_VERSION: bump it with any change to what ``content_hash`` gets (its fields, the
# HTML cleaning, an nh3 upgrade that cleans differently): stored items are then re-hashed
# silently at their next poll (``Action.REHASH``) instead of all reported as updated.
# KEY_VERSION: bump it with any change to ``entry_key`` (or to ``normalise_link``) and add a
# migration that re-keys the stored items (``aggregator.store.rekey``), or every stored entry
# comes back as new.
# 2: text hygiene (issue #11) cleans titles, authors, categories, summaries and HTML.
CONTENT_HASH_VERSION = 2
KEY_VERSION = 1

_PUNCT_OR_SPACE = re.compile(r"[\W_]+", re.UNICODE)
# Keys and comparison forms are indexed; PostgreSQL's btree rejects values over ~2.7 kB.
MAX_INDEXED = 500
_PROBE_AT = datetime(2000, 1, 1, tzinfo=UTC)


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


def hashed(
    *,
    title: str,
    link: str | None,
    author: str | None,
    content_html: str,
    summary: str,
    thumbnail: str | None,
    categories: Sequence[str],
    enclosures: Sequence[Enclosure],
) -> tuple[object, ...]:
    """What a reader sees, as ``content_hash`` and ``hash_fields`` take it (``HASHED_FIELDS``
    order); dates are left out because feeds bump them spuriously."""
    encl = [(e.url, e.type, e.length) for e in enclosures]
    return (title, link, author, content_html, summary, thumbnail, list(categories), encl)


def content_hash(values: tuple[object, ...]) -> str:
    """The hash of ``hashed`` values."""
    return _digest(*values)


# Per-field digests of what ``content_hash`` covers, stored with each item so that an update
# can say which fields changed (issue #14). Same fields as ``content_hash``, so they follow
# CONTENT_HASH_VERSION: a re-hash rewrites them. 8 hex digits per field, in this order.
HASHED_FIELDS = (
    "title", "link", "author", "content", "summary", "thumbnail", "categories", "enclosures",
)  # fmt: skip
_FIELD_DIGITS = 8


def field_hashes(entry: Entry) -> str:
    """The entry's per-field digests (``HASHED_FIELDS``), as one string: the ones it was made
    with if any (``process`` computes them in the parse worker), else computed here."""
    if entry.field_hashes is not None:
        return entry.field_hashes
    return hash_fields(hashed(
        title=entry.title, link=entry.link, author=entry.author, content_html=entry.content_html,
        summary=entry.summary, thumbnail=entry.thumbnail, categories=entry.categories,
        enclosures=entry.enclosures,
    ))  # fmt: skip


def hash_fields(values: tuple[object, ...]) -> str:
    """The per-field digests of ``hashed`` values (``HASHED_FIELDS`` order), as one string."""
    return "".join(
        hashlib.blake2b(_ENCODE(v).encode("utf-8"), digest_size=_FIELD_DIGITS // 2).hexdigest()
        for v in values
    )


_STRING = json.encoder.encode_basestring  # what ``_ENCODE`` writes for a str (ensure_ascii off)


def _encoded(value: object) -> str:
    """``_ENCODE(value)`` without the encoder's per-call set-up, for the shapes ``hashed``
    gives: str, None, a list of str (categories), a list of (str | None, str | None,
    int | None) (enclosures). Anything else goes through ``_ENCODE`` itself."""
    if value.__class__ is str:
        return _STRING(value)
    if value is None:
        return "null"
    if value.__class__ is not list:
        return _ENCODE(value)
    items: list[str] = []
    for item in value:
        if item.__class__ is str:
            items.append(_STRING(item))
        elif item.__class__ is tuple and all(_SCALARS.get(v.__class__) for v in item):
            items.append("[" + ",".join(_SCALARS[v.__class__](v) for v in item) + "]")
        else:
            return _ENCODE(value)
    return "[" + ",".join(items) + "]"


# How ``_ENCODE`` writes the scalars of an enclosure (exact types: a bool is no int here).
_SCALARS: dict[type, Callable[[Any], str]] = {
    str: _STRING,
    int: int.__repr__,
    type(None): lambda _: "null",
}


def content_hashes(values: tuple[object, ...]) -> tuple[str, str]:
    """``(content_hash(values), hash_fields(values))`` from one encoding of each value: the
    same strings (a hypothesis property holds them equal, ``tests/test_seams.py``) at a third
    of the cost, ~10 µs an entry in a cold tick's parse workers (issue #16)."""
    parts = [_encoded(v) for v in values]
    whole = hashlib.sha256(("[" + ",".join(parts) + "]").encode("utf-8")).hexdigest()
    fields = "".join(
        hashlib.blake2b(part.encode("utf-8"), digest_size=_FIELD_DIGITS // 2).hexdigest()
        for part in parts
    )
    return whole, fields


def changed_fields(stored: str | None, current: str) -> tuple[str, ...]:
    """The names of the fields whose digests differ; () when ``stored`` is missing (an item
    stored before digests existed) or of another shape."""
    if not stored or len(stored) != len(current):
        return ()
    n = _FIELD_DIGITS
    return tuple(
        name
        for i, name in enumerate(HASHED_FIELDS)
        if stored[i * n : (i + 1) * n] != current[i * n : (i + 1) * n]
    )


def stored_key(
    *,
    guid: str | None,
    link: str | None,
    title: str | None = None,
    norm_title: str | None = None,
    published_at: datetime | None = None,
    body: str | None = None,
) -> str | None:
    """The key ``entry_key`` gives a stored item, from what the store keeps (for re-keying).

    Items keep their guid and link; ``title``, ``norm_title``, ``published_at`` and ``body``
    are the merged entry's, the item's own only if it is the primary one (else pass ``None``).
    ``None`` when that is not enough: a key hashed from a title or content not stored.
    """
    norm_link = normalise_link(link)
    if title is None or norm_title is None or body is None:
        # Probe with two different fillers: a key that does not change does not depend on them.
        first = entry_key(guid=guid, norm_link=norm_link, title="", published_at=None, body="")
        other = entry_key(
            guid=guid, norm_link=norm_link, title="?", published_at=_PROBE_AT, body="?"
        )
        return first if first == other else None
    # The stored title is the display title: the feed's own when it had one (it normalises to
    # the stored ``norm_title`` then), else one made from the text, which the key never saw.
    raw_title = title if normalise_title(title) == norm_title else ""
    return entry_key(
        guid=guid, norm_link=norm_link, title=raw_title, published_at=published_at, body=body
    )


def _match(
    entry: Entry,
    candidates: Sequence[Candidate],
    *,
    at: datetime,
    window: timedelta,
    min_title_length: int,
) -> tuple[Candidate, str, str] | None:
    """An entry another source already carried that is the same story, with the rule that
    matched ("link" or "title") and the reason why.

    Only across sources: within one source the key is the identity (as in Miniflux and
    reader), since one blog may well post twice about the same link.
    """
    others = [c for c in candidates if entry.source_id not in c.source_ids]
    if entry.norm_link:
        for cand in others:
            if cand.norm_link == entry.norm_link:
                return cand, "link", f"same link {entry.norm_link} as entry {cand.entry_id}"
    if len(entry.norm_title) < min_title_length:
        return None
    for cand in others:
        if cand.norm_title == entry.norm_title and abs(cand.sort_at - at) <= window:
            return cand, "title", f"same title as entry {cand.entry_id} within {window}"
    return None


def _republished(entry: Entry, candidates: Sequence[Candidate]) -> Candidate | None:
    """This source's own entry under another key: same link and same title. Feeds that make up
    a new guid on every request would otherwise flood every output with copies (issue #11);
    a blog posting twice about one link gives the posts different titles."""
    if not entry.norm_link:
        return None
    for cand in candidates:
        if (
            entry.source_id in cand.source_ids
            and cand.norm_link == entry.norm_link
            and cand.norm_title == entry.norm_title
        ):
            return cand
    return None


def _verdict(
    action: Action,
    entry: Entry,
    reason: str,
    entry_id: int | None = None,
    primary: bool = True,
    *,
    rule: str | None = None,
    fields: tuple[str, ...] = (),
    hashes: str | None = None,
) -> Decision:
    """A verdict stamped with the versions of the recipes the entry's key and hash come from;
    what is stored (new, merged, updated, re-hashed) carries its per-field digests."""
    if hashes is None and action in _STORED:
        hashes = field_hashes(entry)
    return Decision(
        action, entry, reason, entry_id, primary,
        key_version=KEY_VERSION, hash_version=CONTENT_HASH_VERSION,
        rule=rule, fields=fields, field_hashes=hashes,
    )  # fmt: skip


_STORED = frozenset((Action.NEW, Action.MERGE, Action.UPDATE, Action.REHASH))


def _known(entry: Entry, item: KnownItem) -> Decision:
    """The verdict on an entry this source carried before: unchanged, update or re-hash."""
    if item.hash_version != CONTENT_HASH_VERSION:
        # Hashes of two recipes cannot be compared, so a content change made at the same time
        # goes unreported: the price of an upgrade, far better than every stored entry
        # reported as updated once, in every reader (issue #10).
        reason = f"content hash v{item.hash_version} replaced by v{CONTENT_HASH_VERSION}"
        return _verdict(Action.REHASH, entry, reason, item.entry_id, item.primary)
    if item.content_hash == entry.content_hash:
        return _verdict(Action.UNCHANGED, entry, "same content", item.entry_id, item.primary)
    hashes = field_hashes(entry)
    fields = changed_fields(item.field_hashes, hashes)
    # Items stored before field digests existed (issue #14) cannot say which fields changed.
    reason = f"content changed: {', '.join(fields)}" if fields else "content changed"
    if not item.primary:  # what people look for when "my edit did not show"
        reason += " (a merged copy: the entry shows its primary source's content)"
    return _verdict(Action.UPDATE, entry, reason, item.entry_id, item.primary, fields=fields,
                    hashes=hashes)  # fmt: skip


def decide(
    entries: Sequence[Entry],
    known: Known,
    *,
    now: datetime,
    title_window: timedelta,
    min_title_length: int = 6,
) -> tuple[Decision, ...]:
    """Classify each entry of one poll as new, update, unchanged, re-hash, merge or duplicate."""
    decisions: list[Decision] = []
    batch_keys: set[str] = set()
    for entry in entries:
        if entry.key in batch_keys:
            reason = "key repeated in the document"
            decisions.append(_verdict(Action.DUPLICATE, entry, reason, rule="key"))
            continue
        batch_keys.add(entry.key)
        item = known.items.get(entry.key)
        if item is not None:
            decisions.append(_known(entry, item))
            continue
        tombstone = known.tombstones.get(entry.key)
        if tombstone is not None and tombstone.pruned:  # issue #15: never back as new
            reason = f"pruned on {tombstone.at:%Y-%m-%d} ({tombstone.reason}): not stored again"
            decisions.append(_verdict(Action.UNCHANGED, entry, reason))
            continue
        again = _republished(entry, known.candidates)
        if again is not None:
            reason = f"same link and title as this source's entry {again.entry_id}: new key"
            decisions.append(
                _verdict(Action.DUPLICATE, entry, reason, again.entry_id, rule="republished")
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
            cand, rule, reason = found
            decisions.append(
                _verdict(Action.MERGE, entry, reason, cand.entry_id, primary=False, rule=rule)
            )
        else:
            decisions.append(_verdict(Action.NEW, entry, "not seen before"))
    return tuple(decisions)
