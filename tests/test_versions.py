"""Versioned content hashes and dedup keys (issue #10): a recipe change is a silent re-hash or a
re-key, never a wave of false updates or of duplicates. Runs on SQLite and, when available, on
PostgreSQL (the ``store_url`` fixture)."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, inspect, text

from aggregator import process
from aggregator.config import Config, load_config, parse_config
from aggregator.process import dedup
from aggregator.report import TickReport
from aggregator.scheduler import POOL_MIN_SOURCES, run_once
from aggregator.store import SqlStore, open_store
from aggregator.store.engine import MIGRATIONS, make_engine
from aggregator.store.rekey import KeyRecipe, RekeyReport, rekey_items, resolve
from aggregator.types import Action, Entry, Known, KnownItem, ParsedEntry, ParsedFeed

from .conftest import ROOT, Clock

ITEMS = "select id, source_id, key, entry_id, content_hash, updated_at from items order by id"
ENTRIES = "select * from entries order by id"


@pytest.fixture
def project(tmp_path: Path) -> Config:
    """The default offline config, its state and outputs in tmp. Its sources are too few for
    the parse workers (``POOL_MIN_SOURCES``): prepared inline, where the monkeypatches apply."""
    shutil.copytree(ROOT / "seeds", tmp_path / "seeds")
    shutil.copytree(ROOT / "config", tmp_path / "config")
    config = load_config(tmp_path / "config" / "aggregator.toml")
    assert len(config.sources) < POOL_MIN_SOURCES
    return config


@pytest.fixture
def db(store_url: str) -> Iterator[SqlStore]:
    store = open_store(store_url)
    yield store
    store.close()


def rows(store: SqlStore, sql: str) -> list[tuple[Any, ...]]:
    with store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql))]


def outputs(config: Config) -> dict[str, tuple[bytes, int]]:
    """Every output file's bytes and mtime."""
    root = config.output.dir
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def poll_again(config: Config, store: SqlStore, clock: Clock) -> TickReport:
    """Poll two days later (every source is due again, past ``poll.max_interval_s``) as if
    every feed had changed its bytes: the same entries are parsed again (an unchanged body is
    not even parsed)."""
    with store.engine.begin() as conn:
        conn.execute(text("update sources set body_hash = null"))
    return run_once(config, store, now=clock.advance(days=2), offline=True)


def totals(report: TickReport) -> tuple[int, int, int, int]:
    results = [o.result for o in report.outcomes]
    return (
        sum(r.new for r in results),
        sum(r.updated for r in results),
        sum(r.duplicate for r in results),
        sum(r.unchanged for r in results),
    )


# -- decide ---------------------------------------------------------------------------------------


def entry(guid: str, content: str) -> Entry:
    parsed = ParsedEntry(guid=guid, title="A story title", content_html=content)
    feed = ParsedFeed(format="rss20")
    return process.normalise_entry(parsed, source_id="s", feed=feed, feed_url="https://x.example/")


def test_decide_rehashes_items_hashed_by_another_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dedup, "CONTENT_HASH_VERSION", 3)
    same, edited, old = entry("1", "<p>a</p>"), entry("2", "<p>b</p>"), entry("3", "<p>c</p>")
    known = Known(
        items={
            "guid:1": KnownItem("guid:1", 10, same.content_hash, True, hash_version=3),
            "guid:2": KnownItem("guid:2", 11, "other", True, hash_version=3),
            "guid:3": KnownItem("guid:3", 12, "other", False, hash_version=1),
        }
    )
    now = datetime(2026, 11, 26, tzinfo=UTC)
    got = process.decide([same, edited, old], known, now=now, title_window=now - now)
    assert [d.action for d in got] == [Action.UNCHANGED, Action.UPDATE, Action.REHASH]
    assert (got[2].entry_id, got[2].primary, got[2].reason) == (
        12,
        False,
        "content hash v1 replaced by v3",
    )
    assert {(d.key_version, d.hash_version) for d in got} == {(dedup.KEY_VERSION, 3)}


# -- a content hash version bump ------------------------------------------------------------------


def test_a_content_hash_version_bump_is_a_silent_rehash(
    project: Config, db: SqlStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_once(project, db, now=clock.now, offline=True)
    before, items, entries = outputs(project), rows(db, ITEMS), rows(db, ENTRIES)
    now = dedup.CONTENT_HASH_VERSION
    assert rows(db, "select distinct hash_version from items") == [(now,)]

    v1 = dedup.content_hashes

    def v2(values: tuple[object, ...]) -> tuple[str, str]:
        whole, fields = v1(values)
        return hashlib.sha256(("v2" + whole).encode()).hexdigest(), fields

    monkeypatch.setattr(process, "content_hashes", v2)  # what ``normalise_entry`` calls
    monkeypatch.setattr(dedup, "CONTENT_HASH_VERSION", now + 1)
    report = poll_again(project, db, clock)
    assert totals(report)[:3] == (0, 0, 0)
    assert totals(report)[3] == len(items)  # a re-hash counts as unchanged
    assert sum(len(r.written) for r in report.renders) == 0
    assert outputs(project) == before  # byte-identical, not even rewritten
    assert rows(db, ENTRIES) == entries  # content, dates and all
    rehashed = [
        (i, s, k, e, hashlib.sha256(("v2" + h).encode()).hexdigest(), u)
        for i, s, k, e, h, u in items
    ]
    assert rows(db, ITEMS) == rehashed  # the new hash, ``updated_at`` as it was
    assert rows(db, "select distinct hash_version from items") == [(now + 1,)]
    logged = rows(db, "select count(*) from decisions where action = 'rehash'")
    assert logged == [(len(items),)]  # once per item, for ``explain``

    third = poll_again(project, db, clock)
    assert totals(third) == (0, 0, 0, len(items))
    assert rows(db, "select count(*) from decisions where action = 'rehash'") == logged


# -- a key version bump ---------------------------------------------------------------------------


def versioned_keys(
    monkeypatch: pytest.MonkeyPatch, version: int, recipe: Callable[..., str]
) -> None:
    """Install ``recipe`` as key recipe ``version``, where ``normalise_entry`` and
    ``stored_key`` look it up."""
    monkeypatch.setattr(process, "entry_key", recipe)
    monkeypatch.setattr(dedup, "entry_key", recipe)
    monkeypatch.setattr(dedup, "KEY_VERSION", version)


def rekey(store: SqlStore, recipe: KeyRecipe | None = None) -> RekeyReport:
    """What the migration shipped with a key recipe change runs."""
    with store.engine.begin() as conn:
        return rekey_items(conn, recipe=recipe or dedup.stored_key, version=dedup.KEY_VERSION)


def test_a_key_version_bump_and_a_rekey_bring_no_new_entry(
    project: Config, db: SqlStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_once(project, db, now=clock.now, offline=True)
    before, entries = outputs(project), rows(db, ENTRIES)
    items = rows(db, "select id, source_id, key, entry_id from items order by id")
    v1 = dedup.entry_key

    def v2(**parts: Any) -> str:
        kind, _, rest = v1(**parts).partition(":")
        return f"{kind}2:{rest}"

    versioned_keys(monkeypatch, 2, v2)
    report = rekey(db)
    assert (report.rekeyed, report.confirmed, report.kept) == (len(items), 0, 0)
    rekeyed = [(i, s, k.replace(":", "2:", 1), e) for i, s, k, e in items]
    assert rows(db, "select id, source_id, key, entry_id from items order by id") == rekeyed
    assert rows(db, "select distinct key_version from items") == [(2,)]

    again = poll_again(project, db, clock)
    assert totals(again) == (0, 0, 0, len(items))
    assert rows(db, "select id, source_id, key, entry_id from items order by id") == rekeyed
    assert rows(db, ENTRIES) == entries  # the same uids, nothing added
    assert outputs(project) == before
    assert rekey(db) == RekeyReport()  # nothing left to re-key


def test_stored_key_gives_back_every_key_of_the_current_recipe(
    project: Config, db: SqlStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recipe applied to what is stored gives each item's key as it was computed at poll
    time (guid, link, and title/date/content hashes of primary items)."""
    run_once(project, db, now=clock.now, offline=True)
    keys = rows(db, "select id, key from items order by id")
    assert {k.partition(":")[0] for _, k in keys} == {"guid", "link", "hash"}
    monkeypatch.setattr(dedup, "KEY_VERSION", dedup.KEY_VERSION + 1)  # the same recipe
    report = rekey(db)
    assert (report.rekeyed, report.confirmed, report.kept) == (0, len(keys), 0)
    assert rows(db, "select id, key from items order by id") == keys


def test_rekey_swaps_keys_and_leaves_a_clash_where_it_was(
    tmp_path: Path, db: SqlStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = {
        "output": {"dir": str(tmp_path / "out")},
        "sources": [
            {
                "id": "r",
                "url": "https://feeds.example/rss",
                "fixture": str(ROOT / "seeds" / "feeds" / "rss2-reader-full.rss"),
            }
        ],
    }
    config = parse_config(data, path=tmp_path / "c.toml")
    run_once(config, db, now=clock.now, offline=True)
    items = rows(db, "select id, key from items order by id")
    (a, ka), (b, kb), (c, kc) = items[:3]
    new: dict[str, str] = {
        ka: kb,
        kb: ka,
        kc: ka,
    }  # a and b swap; c wants a's old key, which b takes

    def recipe(*, guid: str | None, **_: Any) -> str | None:
        key = f"guid:{guid}"
        return new.get(key, key)

    monkeypatch.setattr(dedup, "KEY_VERSION", 2)
    report = rekey(db, recipe)
    assert (report.rekeyed, report.confirmed, report.kept) == (2, len(items) - 3, 1)
    got = dict(rows(db, "select id, key from items"))
    assert (got[a], got[b], got[c]) == (kb, ka, kc)
    versions = dict(rows(db, "select id, key_version from items"))
    assert (versions[a], versions[b], versions[c]) == (2, 2, 1)


def test_stored_key_needs_title_and_content_only_for_hash_keys() -> None:
    assert dedup.stored_key(guid=" g ", link=None) == "guid:g"
    link = "https://www.Example.com/a/?utm_source=x"
    assert dedup.stored_key(guid=None, link=link) == "link:" + str(process.normalise_link(link))
    assert dedup.stored_key(guid=None, link=None) is None  # hashed from what is not stored
    at = datetime(2026, 11, 26, tzinfo=UTC)
    own = dedup.stored_key(
        guid=None, link=None, title="A title", norm_title="atitle", published_at=at, body="<p/>"
    )
    assert own == dedup.entry_key(
        guid=None, norm_link=None, title="A title", published_at=at, body="<p/>"
    )
    untitled = dedup.stored_key(  # a title made from the text: the key never saw it
        guid=None, link=None, title="Some text", norm_title="", published_at=None, body="<p/>"
    )
    assert untitled == dedup.entry_key(
        guid=None, norm_link=None, title="", published_at=None, body="<p/>"
    )


def test_resolve_keeps_every_key_unique_within_its_source() -> None:
    current = {1: ("s", "k1"), 2: ("s", "k2"), 3: ("s", "k3"), 4: ("t", "k1")}
    assert resolve(current, {1: "k2", 2: "k1"}) == {**current, 1: ("s", "k2"), 2: ("s", "k1")}
    assert resolve(current, {1: "k9", 2: "k9"}) == {**current, 1: ("s", "k9")}  # oldest wins
    assert resolve(current, {1: "k3"}) == current  # k3 stays with the item that has it
    # 2 cannot take k3, so it stays at k2, which 1 then cannot take either.
    assert resolve(current, {1: "k2", 2: "k3"}) == current
    assert resolve(current, {4: "k2"}) == {**current, 4: ("t", "k2")}  # other sources apart


def test_a_key_version_bump_ships_a_migration_that_rekeys() -> None:
    """Bumping ``KEY_VERSION`` without re-keying would bring every stored entry back as new."""
    scripts = (MIGRATIONS / "versions").glob("*.py")
    rekeying = [p for p in scripts if "rekey_items(" in p.read_text(encoding="utf-8")]
    assert len(rekeying) >= dedup.KEY_VERSION - 1


# -- the migration --------------------------------------------------------------------------------


def alembic(engine: Engine, run: Callable[[AlembicConfig, str], None], revision: str) -> None:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        run(cfg, revision)


# One item as stored before migration 0003 (schema 0002).
ROWS_0002 = (
    "insert into sources (id, url, config_url, enabled, status, failures)"
    " values ('s', 'u', 'u', true, 'ok', 0)",
    "insert into entries (uid, primary_source_id, title, norm_title, first_seen_at, updated_at,"
    " sort_at, content_html, summary, categories, enclosures, content_hash) values ('u1', 's',"
    " 't', 't', '2026-11-26 12:00:00', '2026-11-26 12:00:00', '2026-11-26 12:00:00', '', '',"
    " '[]', '[]', 'h')",
    "insert into items (source_id, key, entry_id, is_primary, content_hash, first_seen_at,"
    " updated_at) select 's', 'guid:1', id, true, 'h', first_seen_at, updated_at from entries",
)


def test_migration_0003_adds_versions_1_and_downgrades(store_url: str) -> None:
    """0002 -> 0003 -> 0002 -> head: existing items are version 1; the downgrade keeps them."""
    if store_url.startswith("sqlite:///"):
        Path(store_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(store_url)
    try:
        alembic(engine, command.upgrade, "0002")
        with engine.begin() as conn:
            for sql in ROWS_0002:
                conn.execute(text(sql))
        alembic(engine, command.upgrade, "0003")
        with engine.connect() as conn:
            got = conn.execute(text("select key, key_version, hash_version from items")).all()
            assert [tuple(r) for r in got] == [("guid:1", 1, 1)]
        alembic(engine, command.downgrade, "-1")
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("items")}
            assert not {"key_version", "hash_version"} & columns
            assert conn.execute(text("select key from items")).all() == [("guid:1",)]
            assert conn.execute(text("select version_num from alembic_version")).scalar() == "0002"
        alembic(engine, command.upgrade, "head")
        with engine.connect() as conn:
            got = conn.execute(text("select key_version, hash_version from items")).all()
            assert [tuple(r) for r in got] == [(1, 1)]
    finally:
        engine.dispose()
