"""What explain keeps (each poll's history, every verdict with its rule and fields), for how
long, and how a query finds an entry (#14). Offline: a scripted web, an in-memory database."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from aggregator.config import Config, parse_config
from aggregator.errors import ConfigError
from aggregator.explain import FORGET_EVERY, HistoryPruner, explain, recent_polls
from aggregator.process.dedup import HASHED_FIELDS, changed_fields, field_hashes
from aggregator.scheduler import Scheduler, build_scheduler
from aggregator.store import SqlStore
from aggregator.store.history import POLLS
from aggregator.store.write import DECISIONS, ITEMS
from aggregator.story import format_polls

from .conftest import Clock
from .fakeweb import FakeWeb, Route
from .feedserver import rss
from .test_process import entry

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def make_config(tmp_path: Path, *, keep_days: int = 7, cap: int = 1000, limit: int = 100) -> Config:
    data: dict[str, Any] = {
        "output": {"dir": str(tmp_path / "public"), "limit": limit},
        "poll": {"interval": "30m", "jitter": 0, "max_entries_per_feed": cap},
        "explain": {"keep_days": keep_days},
        "sources": [
            {"id": "a", "url": "http://feeds.test/a"},
            {"id": "b", "url": "http://feeds.test/b"},
        ],
    }
    return parse_config(data, path=tmp_path / "c.toml")


@pytest.fixture
def web() -> Iterator[FakeWeb]:
    fake = FakeWeb()
    fake.routes["http://feeds.test/a"] = Route(body=rss("A", [("1", "Rates steady"), ("2", "x")]))
    fake.routes["http://feeds.test/b"] = Route(body=rss("B", [("9", "Rates steady")]))
    yield fake
    fake.close()


def scheduler(config: Config, store: SqlStore, web: FakeWeb, clock: Clock) -> Scheduler:
    sched = build_scheduler(config, store, clock=lambda: clock.now, transport=web.transport)
    sched.parse_workers = 1
    sched.ordered = True
    sched.start()
    return sched


def count(store: SqlStore, table: Any) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)


def test_changed_fields_names_what_differs() -> None:
    before = entry("k", title="Old", content="<p>same</p>")
    after = entry("k", title="New", content="<p>same</p>")
    assert changed_fields(field_hashes(before), field_hashes(after)) == ("title",)
    assert changed_fields(None, field_hashes(after)) == ()  # stored before digests existed
    assert len(field_hashes(after)) == 8 * len(HASHED_FIELDS)


def test_field_hashes_made_with_the_entry_equal_those_computed_from_it() -> None:
    # The seam: a parse worker computes the digests as it makes the entry (off the store's
    # thread); an entry made without them (None) gets the same digests from its fields.
    made = entry("k", title="Title", content="<p>body <a href='/x'>x</a></p>")
    assert made.field_hashes is not None
    assert field_hashes(replace(made, field_hashes=None)) == made.field_hashes


def test_every_poll_keeps_its_history(
    tmp_path: Path, web: FakeWeb, memory_store: SqlStore, clock: Clock
) -> None:
    sched = scheduler(make_config(tmp_path), memory_store, web, clock)
    try:
        sched.tick()
        clock.advance(hours=1)
        sched.tick()
    finally:
        sched.close()
    second, first = recent_polls(memory_store, "a")
    assert (first.status, first.http_status, first.sent_etag) == ("ok", 200, None)
    assert first.etag == web.routes["http://feeds.test/a"].etag
    assert first.counts["new"] == 2 and first.next_check_why == "interval"
    assert (second.status, second.http_status, second.sent_etag) == ("not_modified", 304,
                                                                      first.etag)  # fmt: skip
    assert second.counts == {} and second.at - first.at == timedelta(hours=1)


def test_keep_days_0_keeps_no_history(
    tmp_path: Path, web: FakeWeb, memory_store: SqlStore, clock: Clock
) -> None:
    web.routes["http://feeds.test/a"] = Route(body=rss("A", [(str(n), f"t{n}") for n in range(4)]))
    sched = scheduler(make_config(tmp_path, keep_days=0, cap=2), memory_store, web, clock)
    try:
        sched.tick()
    finally:
        sched.close()
    assert count(memory_store, POLLS) == 0
    with memory_store.engine.connect() as conn:
        actions = set(conn.execute(select(DECISIONS.c.action)).scalars())
    assert actions == {"new"}  # no "dropped" verdicts named without [explain]


def test_over_the_cap_is_named_and_found(
    tmp_path: Path, web: FakeWeb, memory_store: SqlStore, clock: Clock
) -> None:
    web.routes["http://feeds.test/a"] = Route(
        body=rss("A", [(str(n), f"Post {n}") for n in range(4)])
    )
    config = make_config(tmp_path, cap=3)
    sched = scheduler(config, memory_store, web, clock)
    try:
        sched.tick()
    finally:
        sched.close()
    (story,) = explain(config, memory_store, "https://example.org/0")  # the oldest: dropped
    assert story.entry_id is None and [(v.action, v.rule) for v in story.verdicts] == [
        ("dropped", "cap")
    ]
    assert recent_polls(memory_store, "a")[0].counts["dropped"] == 1


def test_queries_find_an_entry_by_id_uid_key_link_and_title(
    tmp_path: Path, web: FakeWeb, memory_store: SqlStore, clock: Clock
) -> None:
    web.routes["http://feeds.test/b"] = Route(
        body=rss("B", [("9", "上海发布暴雨预警 Rates")]).replace(
            b"https://example.org/9", b"https://example.org/1?utm_source=x"
        )
    )
    config = make_config(tmp_path)
    sched = scheduler(config, memory_store, web, clock)
    try:
        sched.tick()
    finally:
        sched.close()
    (story,) = explain(config, memory_store, "rates steady")  # case-folded, in the title
    assert [(v.source_id, v.action, v.rule) for v in story.verdicts] == [
        ("a", "new", None), ("b", "merge", "link")
    ]  # fmt: skip
    assert story.outputs[0].shown and story.outputs[0].why == "number 2 of its newest 100"
    assert story.uid is not None
    queries = [
        str(story.entry_id),
        story.uid,
        story.uid.removeprefix("urn:uuid:"),
        "guid:http://feeds.test/9",
        "https://example.org/1?utm_medium=y",
        "暴雨预警",
    ]  # fmt: skip (the last: the title b gave its copy)
    for query in queries:
        assert [s.entry_id for s in explain(config, memory_store, query)] == [story.entry_id]
    assert explain(config, memory_store, "nothing like this") == ()


def test_an_old_entry_is_not_in_an_output_with_a_small_limit(
    tmp_path: Path, web: FakeWeb, memory_store: SqlStore, clock: Clock
) -> None:
    config = make_config(tmp_path, limit=1)
    sched = scheduler(config, memory_store, web, clock)
    try:
        sched.tick()
    finally:
        sched.close()
    (older,) = explain(config, memory_store, "Rates steady")  # 00:00, "x" at 01:00
    assert not older.outputs[0].shown
    assert older.outputs[0].why == "number 2 by date: older than its newest 1"


def test_an_item_stored_before_digests_updates_without_naming_fields(
    tmp_path: Path, web: FakeWeb, memory_store: SqlStore, clock: Clock
) -> None:
    config = make_config(tmp_path)
    sched = scheduler(config, memory_store, web, clock)
    try:
        sched.tick()
        with memory_store.engine.begin() as conn:  # as if stored before migration 0006
            stale = update(ITEMS).where(ITEMS.c.key == "guid:http://feeds.test/2")
            conn.execute(stale.values(field_hashes=None))
        web.routes["http://feeds.test/a"] = Route(
            body=rss("A", [("1", "Rates steady, cut"), ("2", "y")])
        )
        clock.advance(hours=1)
        sched.tick()
    finally:
        sched.close()
    (edited,) = explain(config, memory_store, "cut")
    updates = [v.fields for v in edited.verdicts if v.action == "update"]
    assert updates == [("title", "content", "summary")]
    (older,) = explain(config, memory_store, "https://example.org/2")
    (change,) = [v for v in older.verdicts if v.action == "update"]
    assert change.fields == () and change.reason == "content changed"


def test_the_history_is_forgotten_after_keep_days_at_a_quiet_moment(
    tmp_path: Path, web: FakeWeb, memory_store: SqlStore, clock: Clock
) -> None:
    config = make_config(tmp_path, keep_days=1)
    sched = scheduler(config, memory_store, web, clock)
    try:
        sched.tick()  # not quiet (new entries): nothing forgotten yet
        polls, verdicts = count(memory_store, POLLS), count(memory_store, DECISIONS)
        assert (polls, verdicts) == (2, 3)
        clock.advance(days=2)
        sched.tick()  # quiet (304s): the first day's history goes
    finally:
        sched.close()
    # The 304s repeat the polls before them: each source's row counts them (a run still open).
    assert count(memory_store, POLLS) == 0 and count(memory_store, DECISIONS) == 0
    (run,) = recent_polls(memory_store, "a")
    assert (run.repeat, run.repeats, run.at, run.http_status) == (True, 0, clock.now, 304)


def test_the_pruner_waits_for_a_quiet_moment() -> None:
    pruner = HistoryPruner()
    assert not pruner.due(T0, quiet=False) and pruner.due(T0, quiet=True)
    pruner.last_at = T0
    assert not pruner.due(T0 + FORGET_EVERY / 2, quiet=True)
    assert pruner.due(T0 + FORGET_EVERY, quiet=True)
    assert not pruner.due(T0 + FORGET_EVERY, quiet=False)
    assert pruner.due(T0 + 2 * FORGET_EVERY, quiet=False)


def _old_poll(store: SqlStore, at: datetime) -> None:
    with store.engine.begin() as conn:
        row = {"source_id": "a", "status": "not_modified", "http_status": 304, "at": at}
        conn.execute(POLLS.insert(), [row | {"duration_ms": 0}])


def test_a_prune_by_another_process_is_not_repeated_at_start(
    tmp_path: Path, store: SqlStore
) -> None:
    """A process that starts later (a ``once`` from cron) reads when the history was last
    pruned: it scans the tables again only once ``FORGET_EVERY`` has passed since."""
    config = make_config(tmp_path, keep_days=7)
    assert store.history_pruned_at() is None
    with store.transaction() as tx:
        tx.forget_history(T0 - timedelta(days=7), at=T0)
    assert store.history_pruned_at() == T0
    _old_poll(store, T0 - timedelta(days=20))
    soon = T0 + FORGET_EVERY / 2
    HistoryPruner().maybe_forget(store, config, soon, quiet=True)  # a new process, soon after
    assert count(store, POLLS) == 1 and store.history_pruned_at() == T0
    later = T0 + FORGET_EVERY
    HistoryPruner().maybe_forget(store, config, later, quiet=True)
    assert count(store, POLLS) == 0 and store.history_pruned_at() == later


def test_a_prune_by_another_node_meanwhile_is_not_repeated(tmp_path: Path, store: SqlStore) -> None:
    config = make_config(tmp_path, keep_days=7)
    pruner = HistoryPruner()
    pruner.maybe_forget(store, config, T0, quiet=True)  # this node prunes at T0
    assert pruner.last_at == T0 == store.history_pruned_at()
    other = T0 + FORGET_EVERY / 2
    with store.transaction() as tx:  # another node prunes half an hour later
        tx.forget_history(other - timedelta(days=7), at=other)
    _old_poll(store, T0 - timedelta(days=20))
    pruner.maybe_forget(store, config, T0 + FORGET_EVERY, quiet=True)  # due by its own clock
    assert count(store, POLLS) == 1 and pruner.last_at == other
    pruner.maybe_forget(store, config, other + FORGET_EVERY, quiet=True)
    assert count(store, POLLS) == 0


def test_a_prune_time_from_a_clock_ahead_is_not_waited_for(tmp_path: Path, store: SqlStore) -> None:
    config = make_config(tmp_path, keep_days=7)
    ahead = T0 + timedelta(days=3)
    with store.transaction() as tx:
        tx.forget_history(ahead - timedelta(days=7), at=ahead)
    _old_poll(store, T0 - timedelta(days=20))
    pruner = HistoryPruner()
    pruner.maybe_forget(store, config, T0, quiet=False)  # not quiet: waits as ever
    assert count(store, POLLS) == 1
    pruner.maybe_forget(store, config, T0, quiet=True)
    assert count(store, POLLS) == 0 and store.history_pruned_at() == T0


def test_a_once_from_cron_prunes_the_history_once_an_hour(
    tmp_path: Path, web: FakeWeb, store: SqlStore, clock: Clock
) -> None:
    """Each ``once`` is a new process with a new scheduler; only the first of an hour's runs
    deletes what is older than ``keep_days``."""
    config = make_config(tmp_path, keep_days=7)

    def once() -> None:
        sched = scheduler(config, store, web, clock)
        try:
            sched.tick(force=True)
        finally:
            sched.close()

    once()  # stores the feeds (not quiet): nothing pruned yet, nothing marked
    assert store.history_pruned_at() is None
    clock.advance(minutes=5)
    once()  # quiet (304s... or the same bodies): prunes, marks
    assert store.history_pruned_at() == clock.now
    old = clock.now - timedelta(days=20)
    _old_poll(store, old)

    def old_polls() -> int:
        with store.engine.connect() as conn:
            return len(conn.execute(select(POLLS.c.id).where(POLLS.c.at <= old)).all())

    clock.advance(minutes=5)
    once()
    assert old_polls() == 1  # the old row stays: the history was pruned 5 minutes ago
    clock.advance(hours=1)
    once()
    assert old_polls() == 0


def test_keep_days_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        make_config(tmp_path, keep_days=-1)
    assert any(p.startswith("explain.keep_days") for p in raised.value.problems)


def test_a_pruned_entry_is_still_explained(
    tmp_path: Path, web: FakeWeb, memory_store: SqlStore, clock: Clock
) -> None:
    from aggregator.prune import run_prune

    config = parse_config(
        {"output": {"dir": str(tmp_path / "public")}, "retention": {"max_age": "1d"},
         "sources": [{"id": "a", "url": "http://feeds.test/a"}]},
        path=tmp_path / "c.toml",
    )  # fmt: skip
    sched = scheduler(config, memory_store, web, clock)
    try:
        sched.tick()
    finally:
        sched.close()
    assert run_prune(config, memory_store, now=clock.now).items == 2
    (story,) = explain(config, memory_store, "Rates steady")
    assert story.entry_id is None and story.title == "Rates steady"
    assert [v.action for v in story.verdicts] == ["new", "pruned"]


def test_an_output_rule_that_hides_the_entry_is_named(
    tmp_path: Path, web: FakeWeb, memory_store: SqlStore, clock: Clock
) -> None:
    config = parse_config(
        {"output": {"dir": str(tmp_path / "public")},
         "sources": [{"id": "a", "url": "http://feeds.test/a", "group": "g"}],
         "outputs": [{"name": "calm", "exclude": ["rates"]}, {"name": "all"}]},
        path=tmp_path / "c.toml",
    )  # fmt: skip
    sched = scheduler(config, memory_store, web, clock)
    try:
        sched.tick()
    finally:
        sched.close()
    (story,) = explain(config, memory_store, "Rates steady")
    assert [(o.name, o.shown) for o in story.outputs] == [
        ("calm", False), ("all", True), ("group g", True), ("river (index.html)", True)
    ]  # fmt: skip
    assert story.outputs[0].why.startswith('hidden by its rules: exclude rule "rates"')


def test_a_run_of_repeats_is_one_row_and_reads_back_filled_in_both_ways(
    tmp_path: Path, web: FakeWeb, store: SqlStore, clock: Clock
) -> None:
    from aggregator.store.peek import peek_polls

    url = store.engine.url.render_as_string(hide_password=False)
    sqlite = url.startswith("sqlite")  # the CLI's read without SQLAlchemy (SQLite only)

    def urls() -> list[str | None]:
        with store.engine.connect() as conn:
            mine = select(POLLS.c.url).where(POLLS.c.source_id == "a").order_by(POLLS.c.id)
            return list(conn.execute(mine).scalars())

    sched = scheduler(make_config(tmp_path), store, web, clock)
    try:
        for _ in range(4):  # a 200, then three 304s that repeat it
            sched.tick()
            clock.advance(hours=1)
        assert urls() == ["http://feeds.test/a"]  # the 304s wrote no row: the source counts them
        run, first = recent_polls(store, "a")
        assert (run.repeat, run.repeats, run.http_status) == (True, 2, 304)
        assert run.at == first.at + timedelta(hours=1)
        assert run.last_at == first.at + timedelta(hours=3)
        assert (run.url, run.sent_etag, run.etag) == (first.url, first.etag, first.etag)
        assert peek_polls(url, "a", limit=10) == ((run, first) if sqlite else None)
        assert recent_polls(store, "a", limit=1) == (run,)  # filled in from the 200
        web.routes["http://feeds.test/a"] = Route(body=rss("A", [("1", "x"), ("3", "new")]))
        sched.tick()  # a change ends the run: written as one row, before the poll's own
    finally:
        sched.close()
    assert urls() == ["http://feeds.test/a", None, "http://feeds.test/a"]
    changed, closed, first_again = recent_polls(store, "a")
    assert (closed, first_again) == (run, first)  # the row reads back as the open run did
    assert changed.http_status == 200 and changed.counts["new"] == 1 and not changed.repeat
    assert peek_polls(url, "a", limit=10) == ((changed, closed, first) if sqlite else None)
    assert "and 2 more the same" in format_polls((changed, closed, first))


def test_a_run_of_repeats_is_forgotten_by_its_last_poll(store: SqlStore) -> None:
    day = timedelta(days=1)
    rows = [  # a run that began 20 days ago and ended yesterday; one that ended 10 days ago
        {"at": T0 - 20 * day, "last_at": T0 - day, "repeats": 400},
        {"at": T0 - 20 * day, "last_at": T0 - 10 * day, "repeats": 200},
        {"at": T0 - 10 * day, "last_at": None, "repeats": 0},  # one poll, 10 days ago
    ]
    with store.engine.begin() as conn:
        conn.execute(POLLS.insert(), [{"source_id": "a", "status": "not_modified",
                                       "http_status": 304, "duration_ms": 0, **r}
                                      for r in rows])  # fmt: skip
    with store.transaction() as tx:
        assert tx.forget_history(T0 - 7 * day, at=T0) == (2, 0)
    with store.engine.connect() as conn:
        assert list(conn.execute(select(POLLS.c.repeats)).scalars()) == [400]
