"""Several nodes on one PostgreSQL (issue #17), in one process: host leases, takeover after
expiry, SKIP LOCKED, one entry for a story two nodes store at once, config drift, renders;
the [cluster] table; and SQLite untouched by any of it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from aggregator.cluster import ClusterWork
from aggregator.config import SourceConfig, parse_config
from aggregator.errors import ConfigError
from aggregator.fetchloop import host_of
from aggregator.process import decide
from aggregator.scheduler import build_scheduler, run_once
from aggregator.store import SqlStore, open_store
from aggregator.store.leases import ClusterStore, SqlLeases
from aggregator.store.write import ENTRIES, SOURCES
from aggregator.types import StoreResult

from .conftest import pg_or_skip
from .pgdb import fresh_database
from .test_store import T0, WINDOW, Src, make, record

WAIT_S = 30.0
HOSTS = ("h1.example", "h2.example", "h3.example")
SRCS = [Src(f"{h[:2]}-{i}", f"https://{h}/feed/{i}") for h in HOSTS for i in range(2)]


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    request.applymarker(pytest.mark.postgres)
    with fresh_database(pg_or_skip()) as url:
        yield url


@pytest.fixture
def store(pg_url: str) -> Iterator[SqlStore]:
    s = open_store(pg_url)
    with s.transaction() as tx:
        tx.sync_sources(SRCS, now=T0)
    SqlLeases(s.engine, "setup").sync_hosts(host_of)
    yield s
    s.close()


def hosts_of(states: dict[str, object]) -> set[str]:
    return {host_of(next(s.url for s in SRCS if s.id == i)) for i in states}


def test_a_claimed_host_is_no_other_nodes_until_given_back(store: SqlStore) -> None:
    a, b = SqlLeases(store.engine, "a"), SqlLeases(store.engine, "b")
    first = a.claim(T0, lease_s=60, limit=100)
    assert sorted(first) == sorted(s.id for s in SRCS)
    assert b.claim(T0, lease_s=60, limit=100) == {}  # every due host is a's
    assert a.release(T0) == 3
    assert sorted(b.claim(T0, lease_s=60, limit=100)) == sorted(first)  # nothing was stored


def test_a_dead_nodes_hosts_are_taken_over_once_its_lease_expires(store: SqlStore) -> None:
    dead, alive = SqlLeases(store.engine, "dead"), SqlLeases(store.engine, "alive")
    assert len(dead.claim(T0, lease_s=60, limit=100)) == len(SRCS)  # ... and never gives back
    assert alive.claim(T0 + timedelta(seconds=59), lease_s=60, limit=100) == {}
    taken = alive.claim(T0 + timedelta(seconds=60), lease_s=60, limit=100)
    assert len(taken) == len(SRCS)
    with store.engine.connect() as conn:
        owners = set(conn.execute(text("select lease_owner from hosts")).scalars())
    assert owners == {"alive"}


def test_claims_split_by_host_and_skip_hosts_being_claimed(store: SqlStore) -> None:
    a, b, c = (SqlLeases(store.engine, n) for n in "abc")
    got_a = a.claim(T0, lease_s=60, limit=2)
    got_b = b.claim(T0, lease_s=60, limit=2)
    assert len(got_a) == len(got_b) == 2
    assert not hosts_of(got_a) & hosts_of(got_b)  # one node per host: a cluster-wide cap
    # A node in the middle of its claim holds the row lock of h3: c skips it, never waits.
    with store.engine.connect() as other:
        other.execute(text("select host from hosts where host = 'h3.example' for update"))
        assert c.claim(T0, lease_s=60, limit=100) == {}
        other.rollback()
    assert hosts_of(c.claim(T0, lease_s=60, limit=100)) == {"h3.example"}


def test_a_stored_source_is_not_due_for_the_next_node(store: SqlStore) -> None:
    a, b = SqlLeases(store.engine, "a"), SqlLeases(store.engine, "b")
    claimed = a.claim(T0, lease_s=60, limit=100)
    later = T0 + timedelta(minutes=30)
    with store.transaction() as tx:  # a polled two of them: their next check moves on
        for source_id in sorted(claimed)[:2]:
            rec = replace(record(source_id), next_check_at=later)
            tx.apply(source_id, (), rec)
    a.release(T0)
    assert sorted(b.claim(T0, lease_s=60, limit=100)) == sorted(claimed)[2:]


def _store_story(store: SqlStore, source: str, decided: threading.Event,
                 go: threading.Event | None, out: dict[str, StoreResult]) -> None:  # fmt: skip
    entry = make(source, f"{source}-guid", title="Both sources carry this story",
                 link="https://news.example/story")  # fmt: skip
    with store.transaction() as tx:
        decisions = decide([entry], tx.known(source, [entry]), now=T0, title_window=WINDOW)
        decided.set()
        if go is not None:
            assert go.wait(WAIT_S)
        out[source] = tx.apply(source, decisions, record(source))


def _race(first: SqlStore, second: SqlStore, *, waits: bool) -> dict[str, StoreResult]:
    """``first`` decides, then ``second`` decides while ``first`` has not committed yet."""
    out: dict[str, StoreResult] = {}
    decided, go, second_decided = threading.Event(), threading.Event(), threading.Event()
    a = threading.Thread(target=_store_story, args=(first, SRCS[0].id, decided, go, out))
    a.start()
    assert decided.wait(WAIT_S)
    b = threading.Thread(target=_store_story, args=(second, SRCS[2].id, second_decided, None, out))
    b.start()
    if waits:  # b waits for a's lock: seen in pg_locks, then a commits
        deadline = time.monotonic() + WAIT_S
        with first.engine.connect() as conn:
            waiting = "select count(*) from pg_locks where locktype = 'advisory' and not granted"
            while conn.execute(text(waiting)).scalar() != 1:
                assert time.monotonic() < deadline, "the second store never waited"
                conn.rollback()
    else:
        assert second_decided.wait(WAIT_S)  # b decided without seeing a's entry
    go.set()
    a.join(WAIT_S)
    b.join(WAIT_S)
    return out


def test_two_nodes_storing_one_story_at_once_make_one_entry_and_a_merge(pg_url: str) -> None:
    store = open_store(pg_url)
    with store.transaction() as tx:
        tx.sync_sources(SRCS, now=T0)
    nodes = [ClusterStore(create_engine(pg_url)) for _ in range(2)]
    out = _race(nodes[0], nodes[1], waits=True)
    assert out[SRCS[0].id].new == 1
    assert out[SRCS[2].id].merged == 1  # the loser merged into the winner's entry
    with store.engine.connect() as conn:
        assert len(conn.execute(select(ENTRIES.c.id)).all()) == 1
        actions = sorted(conn.execute(text("select action from decisions")).scalars())
    assert actions == ["merge", "new"]
    for s in (*nodes, store):
        s.close()


def test_without_the_lock_the_same_race_makes_two_entries(pg_url: str) -> None:
    """Why ``ClusterTransaction`` exists: plain units of work both see nothing stored."""
    store = open_store(pg_url)
    with store.transaction() as tx:
        tx.sync_sources(SRCS, now=T0)
    plain = [SqlStore(create_engine(pg_url)) for _ in range(2)]
    _race(plain[0], plain[1], waits=False)
    with store.engine.connect() as conn:
        assert len(conn.execute(select(ENTRIES.c.id)).all()) == 2
    for s in (*plain, store):
        s.close()


def config_for(tmp_path: Path, url: str, **cluster: object) -> object:
    table = {"enabled": True, "lease": "1m", **cluster}
    return parse_config({"storage": {"url": url}, "output": {"dir": str(tmp_path / "public")},
                         "cluster": table,
                         "sources": [{"id": s.id, "url": s.url} for s in SRCS]},
                        path=tmp_path / "c.toml")  # fmt: skip


def test_config_drift_is_logged_and_reported_until_the_node_resyncs(
    store: SqlStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = config_for(tmp_path, "postgresql+psycopg://x/y")
    a = ClusterWork(SqlLeases(store.engine, "a"), lease_s=60, batch=100)
    b = ClusterWork(SqlLeases(store.engine, "b"), lease_s=60, batch=100)
    a.synced(replace(config, digest="aaaa"), now=T0)  # type: ignore[type-var]
    b.synced(replace(config, digest="bbbb"), now=T0)  # type: ignore[type-var]
    assert b.note() is None
    a.take(T0, among=[], force=False)
    note = a.note()
    assert note is not None and "config drift" in note and "bbbb" in note and "node b" in note
    assert any("config drift" in r.message and r.levelname == "WARNING" for r in caplog.records)
    a.synced(replace(config, digest="bbbb"), now=T0)  # type: ignore[type-var]
    assert a.note() is None


def test_a_node_renders_once_when_another_stored_changes(store: SqlStore) -> None:
    a = ClusterWork(SqlLeases(store.engine, "a"), lease_s=60, batch=100)
    b = ClusterWork(SqlLeases(store.engine, "b"), lease_s=60, batch=100)
    for work in (a, b):  # first ticks: both see the counter for the first time
        work.take(T0, among=[], force=False)
        work.settle(T0, changed=False)
    a.take(T0, among=[], force=False)
    with store.transaction() as tx:  # a stores a change (its unit of work moves the generation)
        tx.sync_sources([SourceConfig("new", "https://new.example/feed")], now=T0)
    assert a.settle(T0, changed=True) is False  # a renders for its own change anyway
    b.take(T0, among=[], force=False)
    assert b.settle(T0, changed=False) is True  # ... b at its next tick, once
    b.take(T0, among=[], force=False)
    assert b.settle(T0, changed=False) is False
    a.take(T0, among=[], force=False)
    assert a.settle(T0, changed=False) is False  # its own change is not news to a


def test_cluster_table_is_checked_key_by_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"storage": {"url": "sqlite:///x.db"}, "poll": {"timeout": "40s"},
                      "cluster": {"enabled": True, "lease": "1m", "batch": 0, "leese": 1},
                      "sources": [{"id": "a", "url": "https://a.example/"}]},
                     path=tmp_path / "c.toml")  # fmt: skip
    problems = "\n".join(caught.value.problems)
    assert "cluster.enabled: needs a PostgreSQL [storage] url" in problems
    assert "cluster.lease: must be at least twice [poll] timeout (80s)" in problems
    assert "cluster.batch" in problems and "cluster.leese: unknown key" in problems


def test_sqlite_stays_single_node_and_untouched(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    (tmp_path / "a.xml").write_text("<rss version='2.0'><channel><title>A</title><item>"
                                    "<guid>1</guid><title>One story here</title></item>"
                                    "</channel></rss>")  # fmt: skip
    config = parse_config({"storage": {"url": url}, "output": {"dir": str(tmp_path / "public")},
                           "sources": [{"id": "a", "url": "https://a.example/",
                                        "fixture": str(tmp_path / "a.xml")}]},
                          path=tmp_path / "c.toml")  # fmt: skip
    store = open_store(url)
    assert build_scheduler(config, store).work is None
    report = run_once(config, store, now=T0, offline=True)
    assert report.ok == 1
    with store.engine.connect() as conn:
        assert conn.execute(select(SOURCES.c.host)).scalars().all() == [None]
        assert conn.execute(text("select count(*) from hosts")).scalar() == 0
        # (the content generation lives there on every database: ``store.generation``)
        rows = "select count(*) from cluster_state where name != 'content'"
        assert conn.execute(text(rows)).scalar() == 0
    store.close()


def test_a_postgres_test_that_cannot_run_fails_when_postgres_is_required(tmp_path: Path) -> None:
    """``.ci/run`` on a machine with PostgreSQL: its tests fail rather than skip (issue #17)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "AGGREGATOR_REQUIRE_PG": "1", "AGGREGATOR_TEST_PG_URL": ""}
    test = "tests/test_cluster.py::test_a_claimed_host_is_no_other_nodes_until_given_back"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        capture_output=True, text=True, env=env, cwd=Path(__file__).parent.parent, timeout=120,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout
    assert "AGGREGATOR_REQUIRE_PG is set" in run.stdout
