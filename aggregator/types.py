"""Value types passed between stages: frozen, slotted, no I/O, no ORM rows.

Named for where they come from: ``Fetched`` (fetch -> parse), ``ParsedFeed``/``ParsedEntry``
(as the source published them), ``Entry`` (normalised by process), ``Decision`` (process's
verdict on one entry, kept as data for ``explain``), ``StoredEntry``/``SourceState`` (from the
store), ``PollOutcome`` (one per source per poll).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from .quickinit import quick_init


def as_utc(value: datetime | None) -> datetime | None:
    """Return ``value`` as an aware UTC datetime; naive values are taken to be UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class LowerHeaders(dict[str, str]):
    """Response headers whose names are lower-cased already (``transport.decode_headers``):
    ``Fetched`` keeps them as they are instead of copying them once more per poll."""

    __slots__ = ()


def _lower_headers(headers: Mapping[str, str]) -> Mapping[str, str]:
    if type(headers) is LowerHeaders:
        return headers
    # A plain dict, not a MappingProxyType: Fetched crosses process boundaries (pickle).
    return LowerHeaders((k.lower(), v) for k, v in headers.items())


@quick_init
@dataclass(frozen=True, slots=True)
class Fetched:
    """What fetch (or a fixture read) produced for one source.

    ``status`` is the HTTP status (200, 304); fixtures use 200, or 304 when the fixture's bytes
    hash to the stored ``body_hash``. ``body`` is ``None`` on 304.
    """

    source_id: str
    url: str
    status: int
    body: bytes | None
    headers: Mapping[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    permanent_url: str | None = None  # set when a 301/308 moved the feed
    redirects: tuple[str, ...] = ()  # each hop followed: "301 https://..." (issue #14)
    parts: tuple[tuple[str, bytes], ...] = ()  # a directory fixture: (name, bytes) per post

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", _lower_headers(self.headers))

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@quick_init
@dataclass(frozen=True, slots=True)
class Enclosure:
    url: str
    type: str | None = None
    length: int | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class ParsedEntry:
    """One entry as the source published it; HTML is raw (not yet cleaned)."""

    guid: str | None = None
    link: str | None = None
    title: str | None = None
    author: str | None = None
    published_at: datetime | None = None
    updated_at: datetime | None = None
    content_html: str | None = None
    summary_html: str | None = None
    categories: tuple[str, ...] = ()
    enclosures: tuple[Enclosure, ...] = ()
    image: str | None = None  # the feed's own thumbnail for the entry (media:thumbnail, ...)
    base: str | None = None  # xml:base in effect for the entry's content, if any
    comments: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "published_at", as_utc(self.published_at))
        object.__setattr__(self, "updated_at", as_utc(self.updated_at))


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A whole document as published: feed metadata plus entries, in document order."""

    format: str  # e.g. "rss20", "atom10", "json11", "markdown"
    title: str | None = None
    link: str | None = None
    base: str | None = None
    image: str | None = None
    ttl_s: int | None = None
    skip_hours: tuple[int, ...] = ()  # RSS <skipHours>: hours (0-23, GMT) not to poll in
    skip_days: tuple[int, ...] = ()  # RSS <skipDays>: weekdays (Monday=0) not to poll on
    entries: tuple[ParsedEntry, ...] = ()
    warnings: tuple[str, ...] = ()


@quick_init
@dataclass(frozen=True, slots=True)
class Entry:
    """A normalised entry from one source: cleaned HTML, absolute links, a dedup key."""

    source_id: str
    key: str  # dedup identity within the source: "guid:..", "link:..", "hash:.."
    guid: str | None
    link: str | None
    norm_link: str | None
    title: str
    norm_title: str
    author: str | None
    published_at: datetime | None  # None: the store uses the first-seen time
    updated_at: datetime | None
    content_html: str
    summary: str
    thumbnail: str | None
    categories: tuple[str, ...]
    enclosures: tuple[Enclosure, ...]
    content_hash: str
    # ``dedup.field_hashes`` of the fields ``content_hash`` covers, computed with it where the
    # entry is made (a parse worker, off the store's thread); None: the store computes them.
    field_hashes: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "published_at", as_utc(self.published_at))
        object.__setattr__(self, "updated_at", as_utc(self.updated_at))


class Action(StrEnum):
    """What the pipeline decided for one entry of one poll."""

    NEW = "new"  # a story never seen before: a new merged entry
    UPDATE = "update"  # the source's item changed (content hash differs)
    UNCHANGED = "unchanged"  # seen before, same content
    MERGE = "merge"  # a new item of this source, but the same story as an existing entry
    DUPLICATE = "duplicate"  # repeated within the same document (same key twice)
    REHASH = "rehash"  # seen before, hashed by an older recipe: new hash stored, not an update
    FILTERED = "filtered"  # dropped by one of the source's rules (the rule is the reason, #15)
    PRUNED = "pruned"  # deleted by retention (logged by ``prune``, never by a poll; #15)
    DROPPED = "dropped"  # over the per-feed cap ([poll] max_entries_per_feed): not stored (#14)


@quick_init
@dataclass(frozen=True, slots=True)
class KnownItem:
    """A source item already stored under (source_id, key)."""

    key: str
    entry_id: int
    content_hash: str
    primary: bool  # this item is the one the merged entry's content comes from
    hash_version: int = 1  # recipe of ``content_hash``; rows from before versions are 1
    field_hashes: str | None = None  # ``dedup.field_hashes``: which fields an update changed


@quick_init
@dataclass(frozen=True, slots=True)
class Candidate:
    """An existing merged entry another item could be the same story as."""

    entry_id: int
    source_ids: tuple[str, ...]
    norm_link: str | None
    norm_title: str
    sort_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "sort_at", as_utc(self.sort_at))


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A key of this source that is not stored (issue #15): its entry was pruned by retention
    (``pruned``: it is never stored again), or a rule dropped it (``reason``: the rule)."""

    key: str
    pruned: bool
    reason: str
    at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", as_utc(self.at))


@dataclass(frozen=True, slots=True)
class Known:
    """What the store already holds that bears on one poll's entries."""

    items: Mapping[str, KnownItem]  # by key, this source only
    candidates: tuple[Candidate, ...] = ()  # by norm_link / norm_title, all sources
    tombstones: Mapping[str, Tombstone] = field(default_factory=dict)  # by key, this source only


@quick_init
@dataclass(frozen=True, slots=True)
class Decision:
    """One dedup/update verdict, stored as data so ``explain`` can trace an entry's fate."""

    action: Action
    entry: Entry
    reason: str
    entry_id: int | None = None  # the merged entry it joins or updates (None for NEW)
    primary: bool = True  # for UPDATE: whether the item owns the merged entry's content
    # The recipes (``process.dedup``) of the entry's key and content hash, stored with them.
    key_version: int = 1
    hash_version: int = 1
    # For ``explain`` (issue #14): the rule behind a merge, duplicate or drop ("link", "title",
    # "key", "cap" ...), the fields an update changed, and the entry's per-field digests.
    rule: str | None = None
    fields: tuple[str, ...] = ()
    field_hashes: str | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class Provenance:
    """One source that carried a merged entry."""

    source_id: str
    source_title: str
    source_url: str
    feed_link: str | None
    link: str | None
    guid: str | None


@quick_init
@dataclass(frozen=True, slots=True)
class StoredEntry:
    """A merged entry as the renderers see it."""

    uid: str  # stable id used in every output (urn:uuid:...)
    title: str
    link: str | None
    author: str | None
    published_at: datetime  # the feed's date, else the first-seen time
    updated_at: datetime
    content_html: str
    summary: str
    thumbnail: str | None
    categories: tuple[str, ...]
    enclosures: tuple[Enclosure, ...]
    group: str | None  # group of the primary source
    sources: tuple[Provenance, ...]  # primary source first

    def __post_init__(self) -> None:
        object.__setattr__(self, "published_at", as_utc(self.published_at))
        object.__setattr__(self, "updated_at", as_utc(self.updated_at))


@dataclass(frozen=True, slots=True)
class Channel:
    """Feed-level metadata of one output."""

    name: str
    title: str
    base_url: str  # ends with "/"
    subtitle: str | None = None


@dataclass(frozen=True, slots=True)
class SourceState:
    """A source's polling state as stored."""

    source_id: str
    url: str
    title: str | None
    feed_title: str | None
    feed_link: str | None
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    last_poll_at: datetime | None
    last_ok_at: datetime | None
    status: str  # "new", "ok", "not_modified", "failed", "gone"
    http_status: int | None
    failures: int
    last_error: str | None
    next_check_at: datetime | None
    entry_count: int
    enabled: bool
    next_check_why: str | None = None
    ttl_s: int | None = None
    skip_hours: tuple[int, ...] = ()
    skip_days: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("last_poll_at", "last_ok_at", "next_check_at"):
            object.__setattr__(self, name, as_utc(getattr(self, name)))


@quick_init
@dataclass(frozen=True, slots=True)
class FeedHints:
    """What a feed says about how often to poll it (RSS ttl, skipHours, skipDays)."""

    ttl_s: int | None = None
    skip_hours: tuple[int, ...] = ()
    skip_days: tuple[int, ...] = ()


@quick_init
@dataclass(frozen=True, slots=True)
class PollState:
    """What a tick needs of a stored source: where to poll, validators, failures, feed hints."""

    source_id: str
    url: str
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    failures: int = 0
    hints: FeedHints = FeedHints()


@quick_init
@dataclass(frozen=True, slots=True)
class PollHistory:
    """One poll as ``sources show`` lists it (issue #14): what was asked, what came back."""

    url: str  # the URL asked first (``Fetched.redirects``: where it led)
    sent_etag: str | None = None
    sent_last_modified: str | None = None
    etag: str | None = None  # as received
    last_modified: str | None = None
    redirects: tuple[str, ...] = ()
    duration_ms: int = 0


@quick_init
@dataclass(frozen=True, slots=True)
class PollRecord:
    """The bookkeeping of one poll of one source, as the store writes it."""

    source_id: str
    status: str  # "ok", "not_modified", "failed", "gone"
    at: datetime
    next_check_at: datetime | None
    http_status: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    permanent_url: str | None = None
    error: str | None = None
    feed_title: str | None = None
    feed_link: str | None = None
    hints: FeedHints = FeedHints()
    next_check_why: str | None = None  # what decided ``next_check_at`` (``schedule.NextCheck``)
    history: PollHistory | None = None  # what ``sources show`` lists of it; None: not kept

    @classmethod
    def from_fetched(
        cls,
        fetched: Fetched,
        *,
        status: str,
        at: datetime,
        next_check_at: datetime | None,
        why: str | None = None,
        history: PollHistory | None = None,
    ) -> PollRecord:
        return cls(
            fetched.source_id,
            status,
            at,
            next_check_at,
            http_status=fetched.status,
            etag=fetched.etag,
            last_modified=fetched.last_modified,
            body_hash=fetched.body_hash,
            permanent_url=fetched.permanent_url,
            next_check_why=why,
            history=history,
        )


@quick_init
@dataclass(frozen=True, slots=True)
class StoreResult:
    new: int = 0
    updated: int = 0
    duplicate: int = 0  # merged into another source's entry, or a repeat of a known one
    unchanged: int = 0
    merged: int = 0  # of ``duplicate``: merges, which add a source to what outputs show
    filtered: int = 0  # dropped by the source's rules
    dropped: int = 0  # over the per-feed cap (issue #14)

    @property
    def changed(self) -> bool:
        return bool(self.new or self.updated)

    @property
    def changes_outputs(self) -> bool:
        """New or updated entries, or merges (provenance), change what outputs show."""
        return bool(self.new or self.updated or self.merged)


OK_STATUSES = ("ok", "not_modified")  # a poll that worked (PollOutcome.ok)
FAILED_STATUSES = ("failed", "gone")  # one that did not (PollOutcome.failed)


@quick_init
@dataclass(frozen=True, slots=True)
class PollOutcome:
    """The result of polling one source once."""

    source_id: str
    status: str  # "ok", "not_modified", "failed", "gone"; "deferred": not polled this tick
    http_status: int | None = None
    result: StoreResult = StoreResult()
    error: str | None = None
    warnings: tuple[str, ...] = ()
    duration_s: float = 0.0
    max_age_s: float | None = None  # freshness the server granted (Cache-Control / Expires)
    retry_after_s: float | None = None  # Retry-After on 429/503
    timed_out: bool = False  # the request ran out of time (the tick gives up on its host)

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES


def utc_now() -> datetime:
    """The wall clock, for the outer shells only (cli, scheduler); stages take ``now``."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class PrunePolicy:
    """What retention keeps as of ``now`` (issue #15): entries dated after ``keep_after``
    (None: whatever their age) among the newest ``max_entries`` of each source (None: all);
    tombstones made after ``tombstones_after``."""

    now: datetime
    keep_after: datetime | None
    max_entries: int | None
    tombstones_after: datetime


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What a prune deleted (or, with ``dry_run``, would delete)."""

    items: int = 0  # sources' copies of entries, each kept as a tombstone
    entries: int = 0  # merged entries no source carries any more
    tombstones_expired: int = 0
    by_source: tuple[tuple[str, int], ...] = ()  # copies pruned per source, most first
    dry_run: bool = False
