"""Store contract suite: runs on SQLite and, when available, on PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from aggregator.process import decide, normalise_entry
from aggregator.store import SqlStore
from aggregator.store.models import Base
from aggregator.store.write import DECISIONS, ENTRIES
from aggregator.types import (
    OK_STATUSES,
    Action,
    Decision,
    Entry,
    Fetched,
    ParsedEntry,
    ParsedFeed,
    PollRecord,
    StoreResult,
)

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WINDOW = timedelta(hours=48)


@dataclass(frozen=True)
class Src:
    id: str
    url: str
    title: str | None = None
    group: str | None = None
    enabled: bool = True


SOURCES = [Src("s1", "https://one.example/feed", "One", "g"), Src("s2", "https://two.example/feed")]


def make(source: str, guid: str | None, *, title: str = "A story title", content: str = "<p>c</p>",
         link: str | None = None, published: datetime | None = T0) -> Entry:  # fmt: skip
    parsed = ParsedEntry(
        guid=guid, link=link, title=title, content_html=content, published_at=published
    )
    feed = ParsedFeed(format="rss20")
    return normalise_entry(parsed, source_id=source, feed=feed, feed_url="https://x.example/")


def fetched(source: str, body: bytes = b"x", etag: str | None = None) -> Fetched:
    return Fetched(
        source, f"https://{source}.example/feed", 200, body, etag=etag, body_hash=str(hash(body))
    )


def record(source: str, got: Fetched | None = None, *, now: datetime = T0) -> PollRecord:
    base = PollRecord.from_fetched(got or fetched(source), status="ok", at=now, next_check_at=None)
    return replace(base, feed_title="Feed " + source)


def poll(
    store: SqlStore, source: str, entries: list[Entry], now: datetime = T0
) -> tuple[tuple[Decision, ...], StoreResult]:
    with store.transaction() as tx:
        decisions = decide(entries, tx.known(source, entries), now=now, title_window=WINDOW)
        return decisions, tx.apply(source, decisions, record(source, now=now))


def sync(store: SqlStore, sources: Sequence[Src]) -> None:
    with store.transaction() as tx:
        tx.sync_sources(sources, now=T0)


def apply(store: SqlStore, source: str, decisions: Sequence[Decision], rec: PollRecord) -> None:
    with store.transaction() as tx:
        tx.apply(source, decisions, rec)


def record_polls(store: SqlStore, records: Sequence[PollRecord]) -> None:
    with store.transaction() as tx:
        tx.record_polls(records)


@pytest.fixture
def synced(store: SqlStore) -> SqlStore:
    sync(store, SOURCES)
    return store


def test_migrations_match_the_models(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_migrating_twice_is_a_no_op(store_url: str) -> None:
    from aggregator.store import open_store

    open_store(store_url).close()
    again = open_store(store_url)
    with again.engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalar() == "0008"
    again.close()


def test_sync_sources_follows_config_edits(synced: SqlStore) -> None:
    state = synced.source_state("s1")
    assert state is not None and (state.status, state.title, state.url) == (
        "new",
        "One",
        SOURCES[0].url,
    )
    sync(synced, [Src("s1", "https://moved.example/feed", "Renamed", None, False)])
    state = synced.source_state("s1")
    assert state is not None
    assert (state.url, state.title, state.enabled) == (
        "https://moved.example/feed",
        "Renamed",
        False,
    )


def test_new_then_unchanged_then_update(synced: SqlStore) -> None:
    entries = [make("s1", "a"), make("s1", "b", title="Another story")]
    _, first = poll(synced, "s1", entries)
    assert (first.new, first.updated, first.duplicate) == (2, 0, 0)
    _, second = poll(synced, "s1", entries, T0 + timedelta(hours=1))
    assert (second.new, second.updated, second.unchanged) == (0, 0, 2)
    changed = [make("s1", "a", content="<p>edited</p>"), entries[1]]
    _, third = poll(synced, "s1", changed, T0 + timedelta(hours=2))
    assert (third.new, third.updated) == (0, 1)
    stored = synced.recent_entries(["s1"], limit=10)
    assert len(stored) == 2
    edited = next(e for e in stored if e.content_html == "<p>edited</p>")
    assert edited.updated_at == T0 + timedelta(hours=2)  # bumped to when the change was seen


def test_cross_source_duplicate_is_merged_with_provenance(synced: SqlStore) -> None:
    poll(synced, "s1", [make("s1", "a", link="https://news.example/story")])
    decisions, result = poll(
        synced, "s2", [make("s2", "zzz", link="http://www.news.example/story/")]
    )
    assert decisions[0].action is Action.MERGE and result.duplicate == 1 and result.new == 0
    (merged,) = synced.recent_entries(["s1", "s2"], limit=10)
    assert [p.source_id for p in merged.sources] == ["s1", "s2"]
    assert merged.sources[0].source_title == "One"
    assert merged.sources[1].source_title == "Feed s2"  # no config title: the feed's own
    assert merged.group == "g"
    assert synced.recent_entries(["s2"], limit=10)[0].uid == merged.uid  # an output of s2 alone
    _, again = poll(synced, "s2", [make("s2", "zzz", link="http://www.news.example/story/")])
    assert (again.new, again.duplicate, again.unchanged) == (0, 0, 1)


def test_unique_constraint_is_the_guarantee(synced: SqlStore) -> None:
    e = make("s1", "a")
    stale = (Decision(Action.NEW, e, "raced"),)  # as if two writers decided concurrently
    for _ in range(2):
        apply(synced, "s1", stale, record("s1"))
    assert len(synced.recent_entries(["s1"], limit=10)) == 1
    state = synced.source_state("s1")
    assert state is not None and state.entry_count == 1


def test_undated_entry_keeps_its_first_seen_time(synced: SqlStore) -> None:
    undated = make("s1", None, title="No date here", published=None, link="https://e.example/1")
    poll(synced, "s1", [undated], T0)
    poll(synced, "s1", [undated], T0 + timedelta(days=3))
    (stored,) = synced.recent_entries(["s1"], limit=5)
    assert stored.published_at == T0


def test_newest_first_and_limit(synced: SqlStore) -> None:
    entries = [
        make("s1", str(i), title=f"Story number {i}", published=T0 - timedelta(hours=i))
        for i in range(5)
    ]
    poll(synced, "s1", list(reversed(entries)))
    stored = synced.recent_entries(["s1"], limit=3)
    assert [e.title for e in stored] == ["Story number 0", "Story number 1", "Story number 2"]


def test_failures_and_not_modified_are_recorded(synced: SqlStore) -> None:
    record_polls(
        synced,
        [
            PollRecord("s1", "failed", T0, T0 + WINDOW, http_status=500, error="s1: HTTP 500"),
            PollRecord("s1", "gone", T0, None, http_status=410, error="s1: HTTP 410 gone"),
        ],
    )
    state = synced.source_state("s1")
    assert state is not None and (state.failures, state.status, state.http_status) == (
        2,
        "gone",
        410,
    )
    apply(synced, "s1", (), record("s1", fetched("s1", body=b"body")))
    not_modified = replace(fetched("s1", etag='"v1"'), status=304, body=None, body_hash=None)
    record_polls(
        synced,
        [PollRecord.from_fetched(not_modified, status="not_modified", at=T0, next_check_at=T0)],
    )
    state = synced.source_state("s1")
    assert state is not None and (state.failures, state.status, state.etag) == (
        0,
        "not_modified",
        '"v1"',
    )
    assert state.body_hash == str(hash(b"body"))  # a 304 keeps the hash of the last body
    assert state.next_check_at == T0


def test_permanent_redirect_updates_the_polled_url(synced: SqlStore) -> None:
    moved = replace(fetched("s1"), permanent_url="https://new.example/feed")
    apply(synced, "s1", (), record("s1", moved))
    state = synced.source_state("s1")
    assert state is not None and state.url == "https://new.example/feed"
    sync(synced, SOURCES)  # the config did not change: keep the new URL
    state = synced.source_state("s1")
    assert state is not None and state.url == "https://new.example/feed"


def test_decisions_are_kept_as_data(synced: SqlStore) -> None:
    poll(synced, "s1", [make("s1", "a", link="https://news.example/x")])
    poll(synced, "s2", [make("s2", "b", link="https://news.example/x")])
    (entry,) = synced.recent_entries(["s1"], limit=1)
    entries, decisions = ENTRIES.c, DECISIONS.c
    trail_of = (
        select(decisions.source_id, decisions.action, decisions.reason)
        .join_from(DECISIONS, ENTRIES, ENTRIES.c.id == decisions.entry_id)
        .where(entries.uid == entry.uid)
        .order_by(decisions.id)
    )
    with synced.engine.connect() as conn:
        trail = conn.execute(trail_of).all()
    assert [(s, a) for s, a, _ in trail] == [("s1", "new"), ("s2", "merge")]
    assert "same link" in trail[1][2]


def test_sqlite_uses_wal(sqlite_store: SqlStore) -> None:
    with sqlite_store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


@pytest.mark.parametrize(
    "when",
    [
        datetime(2026, 11, 26, tzinfo=UTC),
        datetime(2026, 11, 26, 1, 2, 3, 456789, tzinfo=UTC),
        datetime(999, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 1, 5, tzinfo=timezone(timedelta(hours=8))),
    ],
)
def test_sqlite_datetime_text_is_sqlalchemys_own_format(when: datetime) -> None:
    """The fast SQLite path writes exactly what SQLAlchemy's DATETIME would (rows stay
    comparable as text with older rows) and reads it back as the same aware UTC instant."""
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.dialects.sqlite import DATETIME

    from aggregator.store.models import UTCDateTime

    dialect = sqlite.dialect()
    bind = UTCDateTime().bind_processor(dialect)
    result = UTCDateTime().result_processor(dialect, None)
    theirs = DATETIME().bind_processor(dialect)
    assert bind(when) == theirs(when.astimezone(UTC).replace(tzinfo=None))
    assert result(bind(when)) == when and result(bind(when)).tzinfo is UTC
    with pytest.raises(ValueError, match="aware"):
        bind(datetime(2026, 1, 1))


def test_due_states_earliest_first_never_gone_disabled_or_unconfigured(store: SqlStore) -> None:
    sources = [Src(f"s{i}", f"https://{i}.example/feed") for i in range(5)]
    sources.append(Src("off", "https://off.example/feed", enabled=False))
    sync(store, sources)
    record_polls(
        store,
        [
            PollRecord("s0", "not_modified", T0, T0 + timedelta(hours=3), http_status=304),
            PollRecord("s1", "ok", T0, T0 + timedelta(hours=1), http_status=200, etag='"e1"'),
            PollRecord("s2", "gone", T0, None, http_status=410, error="gone"),
            PollRecord("s3", "failed", T0, T0 + timedelta(minutes=30), error="HTTP 500"),
        ],
    )  # s4 and "off" stay due since T0
    among = ["s0", "s1", "s2", "s3", "off"]  # s4 is in the database, not in the config
    due = store.due_states(T0 + timedelta(hours=2), among=among)
    assert list(due) == ["s3", "s1"]  # earliest first; s0 not yet, s2 gone, off disabled
    assert due["s1"].etag == '"e1"' and due["s3"].failures == 1
    assert list(store.due_states(T0 + timedelta(hours=3), among=among)) == ["s3", "s1", "s0"]
    assert store.due_states(T0, among=[]) == {}


def test_sqlite_datetime_cache_answers_by_instant_and_never_for_naive() -> None:
    """The cache of recent texts: equal instants share a text whatever their zone; a naive
    datetime still fails, even right after an aware one of the same wall time."""
    from aggregator.store.models import sqlite_datetime

    a = datetime(2026, 11, 26, 1, 2, 3, tzinfo=UTC)
    b = datetime(2026, 11, 26, 3, 2, 3, tzinfo=timezone(timedelta(hours=2)))  # same instant
    assert sqlite_datetime(a) == sqlite_datetime(a) == "2026-11-26 01:02:03.000000"
    assert sqlite_datetime(None) is None
    assert sqlite_datetime(b) == "2026-11-26 01:02:03.000000"
    assert sqlite_datetime(T0) == "2026-11-26 12:00:00.000000"
    with pytest.raises(ValueError, match="aware"):
        sqlite_datetime(datetime(2026, 11, 26, 1, 2, 3))
    for i in range(5000):  # past the cache's bound: it starts over, texts stay right
        when = T0 + timedelta(seconds=i)
        assert sqlite_datetime(when) == when.replace(tzinfo=None).isoformat(" ", "microseconds")


def test_entry_uid_is_uuid5_of_source_and_key() -> None:
    """Public ids never change: the hand-rolled uid is exactly ``uuid.uuid5`` (RFC 4122)."""
    import uuid

    from aggregator.store.write import UID_NAMESPACE, entry_uid

    for source, key in [("s1", "g1"), ("huxiu", "https://虎嗅.example/a?b=1"), ("", ""),
                        ("s\x00", "k" * 500)]:  # fmt: skip
        expected = "urn:uuid:" + str(uuid.uuid5(UID_NAMESPACE, f"{source}\x00{key}"))
        assert entry_uid(source, key) == expected


def test_bulk_insert_returns_inserted_rows_skips_conflicts_and_binds_like_core(
    store: SqlStore,
) -> None:
    """``BulkInsert`` (driver-level on SQLite) against the Core statement it stands for: the
    same stored values (datetimes, booleans), RETURNING only what was inserted, several
    statements when the rows exceed one statement's parameters, and no partial rows."""
    from sqlalchemy import select

    from aggregator.store.bulk import MAX_PARAMS, BulkInsert
    from aggregator.store.write import ENTRIES, ITEMS, SOURCES

    sync(store, [Src("s1", "https://1.example/feed")])
    later = T0.astimezone(timezone(timedelta(hours=-5)))  # stored as UTC all the same
    n = MAX_PARAMS // 9 * 2 + 7  # items have 9 columns: three statements on SQLite
    rows = [
        {"source_id": "s1", "key": f"k{i}", "entry_id": 0, "is_primary": i % 2 == 0,
         "guid": None if i % 3 else f"g{i}", "link": f"https://1.example/{i}",
         "content_hash": f"h{i}", "first_seen_at": T0, "updated_at": later}
        for i in range(n)
    ]  # fmt: skip
    entry = dict(uid="u1", primary_source_id="s1", title="t", norm_title="t", first_seen_at=T0,
                 updated_at=T0, sort_at=later, content_html="", summary="", categories="[]",
                 enclosures="[]", content_hash="h")  # fmt: skip
    entries = BulkInsert(ENTRIES, conflict=["uid"], returning=[ENTRIES.c.id, ENTRIES.c.uid])
    insert = BulkInsert(ITEMS, conflict=["source_id", "key"], returning=[ITEMS.c.key])
    with store.engine.begin() as conn:
        [(entry_id, uid)] = entries.run(conn, [entry])
        assert uid == "u1" and entries.run(conn, [entry]) == []  # a conflict returns nothing
        for row in rows:
            row["entry_id"] = entry_id
        assert sorted(insert.run(conn, rows[:5])) == [(f"k{i}",) for i in range(5)]
        got = insert.run(conn, rows)  # the first five conflict now
        assert sorted(key for (key,) in got) == sorted(f"k{i}" for i in range(5, n))
        assert insert.run(conn, []) == []
        stored = {r.key: r for r in conn.execute(select(ITEMS))}
        with pytest.raises(ValueError, match="differ"):
            insert.run(conn, [rows[0], {k: v for k, v in rows[1].items() if k != "guid"}])
        assert BulkInsert(SOURCES).run(conn, []) == []
        conn.rollback()
    assert len(stored) == n
    for row in rows:
        got_row = stored[row["key"]]
        assert got_row.is_primary is row["is_primary"]
        assert (got_row.guid, got_row.link, got_row.content_hash) == (
            row["guid"], row["link"], row["content_hash"]
        )  # fmt: skip
        assert got_row.first_seen_at == T0 and got_row.updated_at == T0
        assert got_row.first_seen_at.tzinfo is UTC


def test_bulk_execute_binds_like_core_and_skips_nothing(store: SqlStore) -> None:
    """``BulkExecute`` (driver executemany on SQLite) writes what the Core statement would,
    datetimes converted to UTC through the column's own processor."""
    from sqlalchemy import bindparam, select, update

    from aggregator.store.bulk import BulkExecute
    from aggregator.store.write import SOURCES

    sync(store, [Src(f"s{i}", f"https://{i}.example/feed") for i in range(3)])
    change = BulkExecute(
        update(SOURCES)
        .where(SOURCES.c.id == bindparam("b_id"))
        .values(next_check_at=bindparam("b_next"), etag=bindparam("b_etag"))
    )
    east = timezone(timedelta(hours=9))
    rows = [{"b_id": f"s{i}", "b_next": (T0 + timedelta(hours=i)).astimezone(east),
             "b_etag": f'"e{i}"' if i else None} for i in range(3)]  # fmt: skip
    with store.engine.begin() as conn:
        change.run(conn, rows)
        change.run(conn, [])
        got = {r.id: (r.next_check_at, r.etag) for r in conn.execute(select(SOURCES))}
    assert got == {f"s{i}": (T0 + timedelta(hours=i), f'"e{i}"' if i else None) for i in range(3)}
    assert all(when.tzinfo is UTC for when, _ in got.values())


_TEXT = st.none() | st.text(max_size=8)
_WHEN = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=9)), timezone(timedelta(hours=-5))]),
)  # fmt: skip
_OK_RECORD = st.builds(
    PollRecord, source_id=st.sampled_from(["s0", "s1", "s2"]),
    status=st.sampled_from(sorted(OK_STATUSES)), at=_WHEN, next_check_at=st.none() | _WHEN,
    http_status=st.none() | st.sampled_from([200, 203, 304]), etag=_TEXT, last_modified=_TEXT,
    body_hash=_TEXT, permanent_url=st.none() | st.sampled_from(["", "https://moved.example/f"]),
    next_check_why=_TEXT,
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(_OK_RECORD, max_size=6, unique_by=lambda r: r.source_id))
def test_successful_polls_are_written_as_the_core_statement_writes_them(
    records: list[PollRecord],
) -> None:
    """``bookkeeping._write_ok`` (``BulkExecute``: the driver's executemany on SQLite) leaves
    every source row as SQLAlchemy's executemany of the same UPDATE does (issue #16's seam)."""
    from sqlalchemy import update

    from aggregator.store import bookkeeping, open_store
    from aggregator.store.write import SOURCES

    store = open_store("sqlite://")
    try:
        sync(store, [Src(f"s{i}", f"https://{i}.example/feed") for i in range(3)])
        with store.engine.begin() as conn:  # a state to update: failures, a run of repeats
            conn.execute(update(SOURCES).values(failures=3, last_error="x", repeat_polls=2,
                                                body_hash="old", repeat_first_at=T0))  # fmt: skip

        def written(write: Any) -> dict[str, Any]:
            with store.engine.connect() as conn:
                write(conn, records)
                rows = {r.id: r._asdict() for r in conn.execute(select(SOURCES))}
                conn.rollback()
            return rows

        def plain(conn: Any, records: Sequence[PollRecord]) -> None:
            for moved in (False, True):
                rows = [
                    bookkeeping._ok_values(r) for r in records if bool(r.permanent_url) is moved
                ]
                if rows:
                    conn.execute(bookkeeping._ok_update(moved=moved), rows)

        assert written(bookkeeping._write_ok) == written(plain)
    finally:
        store.close()


def test_every_migration_upgrades_from_the_first_and_downgrades_one_step(store_url: str) -> None:
    """From 0001 to head one step at a time, with rows in every table; then each step down and
    up again (rows kept). On SQLite (foreign keys on) and on PostgreSQL."""
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    from aggregator.store.engine import MIGRATIONS, make_engine

    if store_url.startswith("sqlite:///"):
        Path(store_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    revisions = [
        r.revision for r in reversed(list(ScriptDirectory.from_config(cfg).walk_revisions()))
    ]
    assert revisions[0] == "0001" and len(revisions) >= 4
    engine = make_engine(store_url)

    def run(step: Any, revision: str) -> None:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            step(cfg, revision)

    def count(table: str) -> int:
        with engine.connect() as conn:
            return int(conn.execute(text(f"select count(*) from {table}")).scalar() or 0)

    try:
        run(command.upgrade, "0001")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "insert into sources (id, url, config_url, enabled, status, failures)"
                    " values ('s', 'u', 'u', true, 'ok', 0)"
                )
            )
            conn.execute(
                text(
                    "insert into entries (uid, primary_source_id, title, norm_title, first_seen_at,"
                    " updated_at, sort_at, content_html, summary, categories, enclosures,"
                    " content_hash) values ('u1', 's', 't', 't', '2026-11-26 12:00:00',"
                    " '2026-11-26 12:00:00', '2026-11-26 12:00:00', '', '', '[]', '[]', 'h')"
                )
            )
            conn.execute(
                text(
                    "insert into items (source_id, key, entry_id, is_primary, content_hash,"
                    " first_seen_at, updated_at) select 's', 'k', id, true, 'h', first_seen_at,"
                    " updated_at from entries"
                )
            )
        for revision in revisions[1:]:
            run(command.upgrade, revision)
        for revision in reversed(revisions[1:]):
            run(command.downgrade, "-1")
            run(command.upgrade, revision)
            run(command.downgrade, "-1")
        with engine.connect() as conn:
            assert conn.execute(text("select version_num from alembic_version")).scalar() == "0001"
        assert (count("sources"), count("entries"), count("items")) == (1, 1, 1)
        run(command.upgrade, "head")
        assert (count("sources"), count("entries"), count("items")) == (1, 1, 1)
    finally:
        engine.dispose()
