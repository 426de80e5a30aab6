"""Retention with tombstones (issue #15): what is pruned, that it never comes back as new while
the feed still carries it, merged entries that lose one copy, outputs, ``prune``, the daemon."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest
from sqlalchemy import select

from aggregator.cli import main
from aggregator.config import Config, parse_config
from aggregator.errors import ConfigError
from aggregator.prune import QuietPruner, run_prune
from aggregator.retention import RetentionConfig
from aggregator.scheduler import build_scheduler, run_once
from aggregator.store import SqlStore, open_store
from aggregator.store.retention import TOMBSTONES
from aggregator.store.write import DECISIONS

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def rss(items: list[tuple[str, datetime]], *, title: str = "Feed") -> bytes:
    """An RSS 2.0 document; ``items`` are (guid, published), titled and linked by guid."""
    body = "".join(
        f'<item><guid isPermaLink="false">urn:story:{g}</guid><title>Story {g}</title>'
        f"<link>https://example.org/{g}</link>"
        f"<description>&lt;p&gt;About {g}.&lt;/p&gt;</description>"
        f"<pubDate>{when:%a, %d %b %Y %H:%M:%S} GMT</pubDate></item>"
        for g, when in items
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}'
        f"</title><link>https://example.org/</link>{body}</channel></rss>"
    ).encode()


class Site:
    """Sources read from fixture files in ``tmp``; each poll is one ``aggregator once``."""

    def __init__(self, tmp: Path, retention: dict[str, Any], sources: tuple[str, ...]) -> None:
        self.tmp = tmp
        for source in sources:
            self.publish(source, [])
        raw: dict[str, Any] = {
            "storage": {"url": f"sqlite:///{tmp / 'state' / 'agg.db'}"},
            "output": {"dir": str(tmp / "public"), "formats": ["atom", "json"], "limit": 50},
            "retention": retention,
            "sources": [{"id": s, "url": f"https://{s}.example/feed", "fixture": f"{s}.xml"}
                        for s in sources],
        }  # fmt: skip
        self.config: Config = parse_config(raw, path=tmp / "aggregator.toml")
        self.store: SqlStore = open_store(self.config.storage.url)

    def publish(self, source: str, items: list[tuple[str, datetime]]) -> None:
        (self.tmp / f"{source}.xml").write_bytes(rss(items, title=source))

    def poll(self, now: datetime) -> dict[str, Any]:
        report = run_once(self.config, self.store, now=now, offline=True, force=True)
        return {o.source_id: o.result for o in report.outcomes}

    def titles(self, output: str = "all.atom") -> list[str]:
        data = (self.config.output.dir / output).read_bytes()
        if output.endswith(".json"):
            return [item["title"] for item in json.loads(data)["items"]]
        parsed = feedparser.parse(data)
        assert not parsed.bozo, parsed.bozo_exception
        return [e.title for e in parsed.entries]

    def tombstones(self) -> dict[tuple[str, str], bool]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(TOMBSTONES.c.source_id, TOMBSTONES.c.key, TOMBSTONES.c.pruned)
            )
            return {(s, k): bool(p) for s, k, p in rows}


@pytest.fixture
def site(tmp_path: Path) -> Any:
    made: list[Site] = []

    def make(retention: dict[str, Any], *sources: str) -> Site:
        made.append(Site(tmp_path, retention, sources or ("a",)))
        return made[-1]

    yield make
    for s in made:
        s.store.close()


def test_a_pruned_entry_never_comes_back_while_the_feed_keeps_it_for_a_year(site: Any) -> None:
    s = site({"max_age": "90d"})
    s.publish("a", [("old", T0 - 30 * DAY), ("new", T0)])
    assert s.poll(T0)["a"].new == 2
    assert run_prune(s.config, s.store, now=T0 + 55 * DAY).items == 0  # not old enough yet
    report = run_prune(s.config, s.store, now=T0 + 65 * DAY)
    assert (report.items, report.entries, report.by_source) == (1, 1, (("a", 1),))
    assert s.tombstones() == {("a", "guid:urn:story:old"): True}
    # The feed still carries "old" for a year; each poll sees a changed document.
    for month in range(1, 13):
        now = T0 + (65 + 30 * month) * DAY
        s.publish("a", [("old", T0 - 30 * DAY), ("new", T0), (f"m{month}", now)])
        result = s.poll(now)["a"]
        assert (result.new, result.updated) == (1, 0), month
        assert "Story old" not in s.titles() and "Story old" not in s.titles("all.json")
    s.store.close()


def test_max_entries_keeps_the_newest_of_each_source(site: Any) -> None:
    s = site({"max_age": "0", "max_entries": 2}, "a", "b")
    s.publish("a", [(f"a{i}", T0 - i * DAY) for i in range(4)])
    s.publish("b", [("b0", T0)])
    s.poll(T0)
    dry = run_prune(s.config, s.store, now=T0, dry_run=True)
    assert (dry.items, dry.entries, dry.dry_run) == (2, 2, True)
    assert len(s.titles()) == 5 and s.tombstones() == {}  # a dry run deletes nothing
    report = run_prune(s.config, s.store, now=T0 + 1000 * DAY)  # "0": no age limit
    assert report.by_source == (("a", 2),)
    assert set(s.tombstones()) == {("a", "guid:urn:story:a2"), ("a", "guid:urn:story:a3")}
    with s.store.engine.connect() as conn:
        logged = conn.execute(select(DECISIONS.c.key, DECISIONS.c.reason, DECISIONS.c.rule,
                                     DECISIONS.c.title)
                              .where(DECISIONS.c.action == "pruned")).all()  # fmt: skip
    why = "retention: beyond the newest 2 of its source"
    assert sorted(logged) == [
        ("guid:urn:story:a2", why, "retention", "Story a2"),
        ("guid:urn:story:a3", why, "retention", "Story a3"),
    ]


def test_a_merged_entry_survives_the_pruning_of_one_copy(site: Any) -> None:
    """Source a carries the shared story among newer ones, b carries only it: a's copy goes
    (beyond its newest 2), b's stays; the entry passes to b, and a brings nothing back."""
    s = site({"max_age": "0", "max_entries": 2}, "a", "b")
    s.publish("a", [("shared", T0 - 5 * DAY), ("a1", T0 - DAY), ("a2", T0)])
    s.publish("b", [("shared", T0 - 5 * DAY)])
    first = s.poll(T0)
    assert (first["a"].new, first["b"].duplicate) == (3, 1)  # b's copy merged into a's entry
    run_prune(s.config, s.store, now=T0)
    assert s.tombstones() == {("a", "guid:urn:story:shared"): True}
    shared = [e for e in s.store.recent_entries(["a", "b"], limit=10) if e.title == "Story shared"]
    assert [p.source_id for p in shared[0].sources] == ["b"]
    assert s.store.recent_entries(["a"], limit=10)[-1].title == "Story a1"
    s.publish("a", [("shared", T0 - 5 * DAY), ("a1", T0 - DAY), ("a2", T0), ("a3", T0 + DAY)])
    again = s.poll(T0 + 2 * DAY)
    assert (again["a"].new, again["a"].duplicate) == (1, 0)  # not merged back either
    assert s.titles().count("Story shared") == 1
    feed = feedparser.parse((s.config.output.dir / "all.atom").read_bytes())
    assert not feed.bozo


def test_tombstones_expire_after_their_bound(site: Any) -> None:
    s = site({"max_age": "30d", "keep_tombstones": "365d"})
    s.publish("a", [("old", T0 - 40 * DAY)])
    s.poll(T0)
    assert run_prune(s.config, s.store, now=T0).items == 1
    assert run_prune(s.config, s.store, now=T0 + 300 * DAY).tombstones_expired == 0
    assert run_prune(s.config, s.store, now=T0 + 366 * DAY).tombstones_expired == 1
    assert s.tombstones() == {}


def test_a_dropped_entry_is_logged_once_per_rule(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a.xml").write_bytes(rss([("crypto", T0), ("python", T0)]))
    raw: dict[str, Any] = {
        "storage": {"url": f"sqlite:///{tmp_path / 'agg.db'}"},
        "output": {"dir": str(tmp_path / "public"), "formats": ["atom"]},
        "sources": [{"id": "a", "url": "https://a.example/feed", "fixture": "a.xml",
                     "exclude": ["title:crypto"]}],
    }  # fmt: skip
    config = parse_config(raw, path=tmp_path / "c.toml")
    store = open_store(config.storage.url)
    try:
        with caplog.at_level(logging.INFO, logger="aggregator.pipeline"):
            first = run_once(config, store, now=T0, offline=True).outcomes[0].result
        assert (first.new, first.filtered) == (1, 1)
        assert any("new=1 " in m and "filtered=1" in m for m in caplog.messages)
        (tmp_path / "a.xml").write_bytes(rss([("crypto", T0), ("python", T0), ("rust", T0)]))
        second = run_once(config, store, now=T0 + DAY, offline=True, force=True).outcomes[0]
        assert (second.result.new, second.result.filtered) == (1, 0)
        with store.engine.connect() as conn:
            rows = conn.execute(select(DECISIONS.c.key, DECISIONS.c.rule, DECISIONS.c.reason)
                                .where(DECISIONS.c.action == "filtered")).all()  # fmt: skip
        assert rows == [
            ("guid:urn:story:crypto", "filter", 'exclude rule "title:crypto" matched the title')
        ]
        assert [e.title for e in store.recent_entries(["a"], limit=5)] == [
            "Story rust",
            "Story python",
        ]
    finally:
        store.close()


def test_retention_config(tmp_path: Path) -> None:
    def load(table: dict[str, Any]) -> RetentionConfig:
        raw = {"output": {"dir": str(tmp_path)}, "retention": table}
        return parse_config(raw, path=tmp_path / "c.toml").retention

    assert load({}) == RetentionConfig(max_age_s=90 * 86400.0, max_entries=1000)
    forever = load({"max_age": "0", "max_entries": 0, "prune_every": "6h"})
    assert (forever.max_age_s, forever.max_entries, forever.every_s) == (None, None, 21600.0)
    assert forever.policy(T0).keep_after is None
    with pytest.raises(ConfigError) as caught:
        load({"max_age": "ninety days", "max_entries": -1, "keep": 1})
    assert list(caught.value.problems) == [
        'retention.max_age: must be a duration like "90d", or "0" (keep for ever)',
        "retention.max_entries: must be a whole number (0: no limit)",
        "retention.keep: unknown key (expected one of "
        "['keep_tombstones', 'max_age', 'max_entries', 'prune_every'])",
    ]


def test_quiet_pruner_waits_for_a_quiet_tick_but_not_for_ever(tmp_path: Path) -> None:
    config = parse_config({"output": {"dir": str(tmp_path)}}, path=tmp_path / "c.toml")
    pruner = QuietPruner()
    assert not pruner.due(config, now=T0, quiet=False)
    assert pruner.due(config, now=T0, quiet=True)
    pruner.done(T0)
    assert not pruner.due(config, now=T0 + timedelta(hours=23), quiet=True)
    assert pruner.due(config, now=T0 + timedelta(hours=25), quiet=True)
    assert not pruner.due(config, now=T0 + timedelta(hours=25), quiet=False)
    assert pruner.due(config, now=T0 + timedelta(hours=49), quiet=False)


def test_the_daemons_scheduler_prunes_at_a_quiet_tick_and_renders(site: Any) -> None:
    s = site({"max_age": "90d"})
    s.publish("a", [("old", T0 - 100 * DAY), ("new", T0)])
    clock = [T0]
    scheduler = build_scheduler(s.config, s.store, offline=True, clock=lambda: clock[0])
    scheduler.pruner = QuietPruner()
    try:
        scheduler.start()
        busy = scheduler.tick()  # stores both: not a quiet moment
        assert busy.new == 2 and "Story old" in s.titles()
        clock[0] += timedelta(hours=1)
        scheduler.tick(force=True)  # nothing new: quiet; pruned, and the outputs follow
        assert s.tombstones() == {("a", "guid:urn:story:old"): True}
        assert s.titles() == ["Story new"]
    finally:
        scheduler.close()


def test_prune_command_reports_then_prunes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.xml").write_bytes(rss([("old", datetime(2020, 1, 1, tzinfo=UTC)), ("new", T0)]))
    (tmp_path / "c.toml").write_text(
        '[storage]\nurl = "sqlite:///state/agg.db"\n[output]\ndir = "public"\n'
        '[retention]\nmax_age = "90d"\n'
        '[[sources]]\nid = "a"\nurl = "https://a.example/feed"\nfixture = "a.xml"\n',
        encoding="utf-8",
    )
    config = str(tmp_path / "c.toml")
    assert main(["-c", config, "once", "--offline"]) == 0
    capsys.readouterr()
    assert main(["-c", config, "prune", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("would prune 1 copies of entries (1 entries deleted, the rest still")
    assert "\n  a  1\n" in out
    assert main(["-c", config, "prune"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pruned 1 copies") and "outputs: " in out
    assert b"Story old" not in (tmp_path / "public" / "all.atom").read_bytes()
    assert main(["-c", config, "prune"]) == 0
    assert capsys.readouterr().out.startswith("pruned 0 copies")


def test_prune_and_tombstones_on_every_database(store: SqlStore) -> None:
    """The store's side alone, on SQLite and PostgreSQL: the window over each source's
    newest, dates compared as stored, tombstones read back by ``known``, expiry."""
    from aggregator.process import decide, normalise_entry
    from aggregator.types import ParsedEntry, ParsedFeed, PollRecord, PrunePolicy

    class Src:
        def __init__(self, id: str) -> None:
            self.id, self.url, self.title, self.group, self.enabled = (
                id,
                f"https://{id}/",
                None,
                None,
                True,
            )

    def entry(source: str, guid: str, days_ago: int) -> Any:
        parsed = ParsedEntry(guid=f"urn:{guid}", title=f"Story {guid}", link=f"https://e/{guid}",
                             content_html="<p>x</p>", published_at=T0 - days_ago * DAY)  # fmt: skip
        return normalise_entry(
            parsed, source_id=source, feed=ParsedFeed("rss20"), feed_url="https://e/"
        )

    with store.transaction() as tx:
        tx.sync_sources([Src("a"), Src("b")], now=T0)
    for source, guids in (("a", ["s", "a1", "a2"]), ("b", ["s"])):
        entries = [entry(source, g, {"s": 9, "a1": 2}.get(g, 1)) for g in guids]
        with store.transaction() as tx:
            decisions = decide(entries, tx.known(source, entries), now=T0, title_window=DAY)
            tx.apply(source, decisions, PollRecord(source, "ok", T0, None))
    policy = PrunePolicy(now=T0, keep_after=T0 - 5 * DAY, max_entries=1,
                         tombstones_after=T0 - 365 * DAY)  # fmt: skip
    with store.transaction() as tx:
        dry = tx.prune(policy, dry_run=True)
    with store.transaction() as tx:
        done = tx.prune(policy)
    assert (dry.items, dry.entries) == (done.items, done.entries) == (3, 2)  # s and a1 go
    assert done.by_source == (("a", 2), ("b", 1))  # a: s (old) and a1 (beyond 1); b: s (old)
    with store.transaction() as tx:
        known = tx.known("a", [entry("a", g, 1) for g in ("s", "a1", "a2")])
    assert set(known.items) == {"guid:urn:a2"}
    assert {k: t.pruned for k, t in known.tombstones.items()} == {
        "guid:urn:s": True,
        "guid:urn:a1": True,
    }
    later = PrunePolicy(now=T0 + 400 * DAY, keep_after=None, max_entries=None,
                        tombstones_after=T0 + 30 * DAY)  # fmt: skip
    with store.transaction() as tx:
        assert tx.prune(later).tombstones_expired == 3
