"""SQLAlchemy 2 typed ORM models; they never leave ``aggregator.store``.

Tables: ``sources`` (polling state, the schedule as data), ``entries`` (merged stories),
``items`` (one row per source that carried a story: the provenance and the dedup guarantee,
unique on (source_id, key)), ``decisions`` (every non-trivial dedup/update verdict, for
``explain``), ``polls`` (each poll's history, for ``sources show``; issue #14), ``hosts`` and
``cluster_state`` (several nodes on one PostgreSQL; issue #17).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: identical behaviour on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"aware datetime required, got {value!r}")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    # SQLite keeps DATETIME as text, "YYYY-MM-DD HH:MM:SS.ffffff" (SQLAlchemy's format). Going
    # straight from an aware datetime to that text (and back with fromisoformat) is one C call
    # each way instead of three Python layers: a cold tick binds several datetimes per entry.

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        return sqlite_datetime

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        return _sqlite_result


# Texts of recently bound datetimes: a row binds the same few values several times (published
# = sort time, the tick's ``now`` as first seen, updated and the decision's time). Equal aware
# datetimes are the same instant, hence the same text; a naive one never equals an aware one.
_TEXTS: dict[datetime, str] = {}
_TEXTS_MAX = 4096


def sqlite_datetime(value: Any) -> str | None:
    """An aware datetime as SQLite keeps it (UTC, SQLAlchemy's DATETIME text)."""
    if value is None:
        return None
    text = _TEXTS.get(value)
    if text is not None:
        return text
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"aware datetime required, got {value!r}")
    when: datetime = value if value.tzinfo is UTC else value.astimezone(UTC)
    text = when.replace(tzinfo=None).isoformat(" ", "microseconds")
    if len(_TEXTS) >= _TEXTS_MAX:
        _TEXTS.clear()
    _TEXTS[value] = text
    return text


def _sqlite_result(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class SourceRow(Base):
    __tablename__ = "sources"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(Text)  # what is polled (follows permanent redirects)
    config_url: Mapped[str] = mapped_column(Text)  # what the config said, to notice edits
    title: Mapped[str | None] = mapped_column(Text)
    group_name: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    feed_title: Mapped[str | None] = mapped_column(Text)
    feed_link: Mapped[str | None] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    body_hash: Mapped[str | None] = mapped_column(String(64))
    last_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_ok_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="new")
    http_status: Mapped[int | None] = mapped_column(Integer)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    next_check_why: Mapped[str | None] = mapped_column(Text)  # what decided next_check_at
    ttl_s: Mapped[int | None] = mapped_column(Integer)  # the feed's own hints, kept for 304s
    skip_hours: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    skip_days: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    # The host this source is leased under when several nodes share the database (issue #17,
    # ``store.leases``); NULL on SQLite.
    host: Mapped[str | None] = mapped_column(Text)
    # The run of repeated 304s since the source's last row in ``polls`` (issue #16): how many,
    # and the first one's time (the last one's is ``last_poll_at``); see ``store.history``.
    repeat_polls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    repeat_first_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Partial: a single node (host NULL) keeps it empty, and pays nothing for it when every
    # poll moves next_check_at (issue #16).
    __table_args__ = (
        Index("ix_sources_host_next", "host", "next_check_at",
              sqlite_where=text("host IS NOT NULL"),
              postgresql_where=text("host IS NOT NULL")),
    )  # fmt: skip


class HostRow(Base):
    """A host's lease (issue #17): which node polls its sources now, and until when."""

    __tablename__ = "hosts"

    host: Mapped[str] = mapped_column(Text, primary_key=True)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ClusterStateRow(Base):
    """Shared facts: ``content`` (its ``counter`` is the content generation, on every database:
    ``store.generation``, issue #16; the nodes of a cluster re-render when it moves) and, for a
    cluster (issue #17), ``config`` (the digest of the config last synced, by which node,
    when); ``history`` (``at``: when any process last pruned the explain history)."""

    __tablename__ = "cluster_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)
    counter: Mapped[int] = mapped_column(BigInteger, server_default="0")
    node: Mapped[str | None] = mapped_column(String(128))
    at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EntryRow(Base):
    __tablename__ = "entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(64), unique=True)
    primary_source_id: Mapped[str] = mapped_column(ForeignKey("sources.id"))
    title: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(Text)
    norm_link: Mapped[str | None] = mapped_column(Text, index=True)
    norm_title: Mapped[str] = mapped_column(Text, index=True)
    author: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sort_at: Mapped[datetime] = mapped_column(UTCDateTime)
    content_html: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)
    thumbnail: Mapped[str | None] = mapped_column(Text)
    categories: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    enclosures: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of [url, type, length]
    content_hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_entries_sort", "sort_at", "id"),)


class ItemRow(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id"))
    key: Mapped[str] = mapped_column(Text)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id"), index=True)
    is_primary: Mapped[bool] = mapped_column(Boolean)
    guid: Mapped[str | None] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Versions of the recipes of ``key`` and ``content_hash`` (``process.dedup``); rows from
    # before versions existed are 1 (migration 0003).
    key_version: Mapped[int] = mapped_column(Integer, server_default="1")
    hash_version: Mapped[int] = mapped_column(Integer, server_default="1")
    # Per-field digests (``process.dedup.field_hashes``): which fields an update changed (#14).
    field_hashes: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("source_id", "key", name="uq_items_source_key"),)


class DecisionRow(Base):
    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    source_id: Mapped[str] = mapped_column(String(64), index=True)
    key: Mapped[str] = mapped_column(Text)
    entry_id: Mapped[int | None] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    # For ``explain`` (issue #14, migration 0006): the rule behind a merge, duplicate or drop,
    # the fields an update changed ("title,content"), and the entry's title and link then.
    rule: Mapped[str | None] = mapped_column(String(64))
    fields: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(Text)


class TombstoneRow(Base):
    """A key a source carried that is not stored (issue #15): pruned by retention (never stored
    again while the feed still carries it), or dropped by one of the source's rules (the rule
    in ``reason``, so the decision log says it once). Expired after ``[retention]
    keep_tombstones``."""

    __tablename__ = "tombstones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_id: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(Text)
    pruned: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

    __table_args__ = (UniqueConstraint("source_id", "key", name="uq_tombstones_source_key"),)


class PollRow(Base):
    """One poll of one source, as ``sources show`` lists it (issue #14): what was asked, what
    came back, how long it took, what it stored. Kept ``[explain] keep_days``."""

    __tablename__ = "polls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    source_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    # A repeat (a 304 that sent and got back the validators of the poll before, at the same
    # URL: most polls) keeps none of the next five: they are the poll before's.
    url: Mapped[str | None] = mapped_column(Text)
    redirects: Mapped[str | None] = mapped_column(Text)  # "301 https://..." per line
    sent_etag: Mapped[str | None] = mapped_column(Text)
    sent_last_modified: Mapped[str | None] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    next_check_s: Mapped[int | None] = mapped_column(Integer)  # the next check, after ``at``
    next_check_why: Mapped[str | None] = mapped_column(Text)
    # What the poll stored (parsed polls only; NULL for 304s, unchanged bodies and failures).
    counts: Mapped[str | None] = mapped_column(Text)  # "new=1 updated=0 ..."
    # A run of repeats written as one row (issue #16): the polls it stands for beyond the
    # first (at ``at``), and the time of the last of them.
    repeats: Mapped[int] = mapped_column(Integer, server_default="0")
    last_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # No index but the primary key: rows are only ever appended (a warm tick adds one per
    # source), and an index on the source would take an insert in a random place of it for
    # each. `sources show` reads a source's newest rows from the end of the table.
