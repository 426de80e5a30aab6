"""The recorded seed (``seeds/recorded/newsroom``, made by ``tests/make_recording.py``)
replayed round by round, and twice into empty databases; `explain` on what it stored (#14)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from aggregator.cli import main
from aggregator.config import Config, load_config
from aggregator.explain import explain
from aggregator.recording import load_recording
from aggregator.replay import Replayer, replay
from aggregator.scheduler import Scheduler, build_scheduler
from aggregator.store import SqlStore, open_store
from aggregator.story import Story

from .conftest import ROOT

SEED = ROOT / "seeds" / "recorded" / "newsroom"
CONFIG = ROOT / "config" / "recorded.toml"


def newsroom_config(where: Path) -> Config:
    """The seed's config with its database and outputs in ``where``."""
    config = load_config(CONFIG)
    storage = replace(config.storage, url=f"sqlite:///{where / 'db.sqlite'}")
    return replace(config, storage=storage, output=replace(config.output, dir=where / "public"))


@pytest.fixture
def played(tmp_path: Path) -> Iterator[tuple[Scheduler, SqlStore, Config]]:
    config = newsroom_config(tmp_path)
    store = open_store(config.storage.url)
    scheduler = build_scheduler(config, store, replay=Replayer(load_recording(SEED)))
    scheduler.start()
    yield scheduler, store, config
    scheduler.close()
    store.close()


def titles(store: SqlStore, source_id: str) -> set[str]:
    return {e.title for e in store.recent_entries([source_id], limit=100)}


def story(config: Config, store: SqlStore, query: str) -> Story:
    (found,) = explain(config, store, query)
    return found


def verdicts(found: Story, action: str) -> list[tuple[str, str | None, tuple[str, ...]]]:
    return [(v.source_id, v.rule, v.fields) for v in found.verdicts if v.action == action]


def test_round_1_stores_merges_by_link_and_title_and_drops_over_the_cap(
    played: tuple[Scheduler, SqlStore, Config],
) -> None:
    scheduler, store, config = played
    report = scheduler.tick()
    assert (report.due, report.new, report.duplicate) == (6, 14, 2)
    assert titles(store, "blog") == {
        "Welcome to the blog", "Notes on caching", "A third post about feeds"
    }  # fmt: skip
    rates = story(config, store, "Central bank holds rates steady")
    assert [(c.source_id, c.primary) for c in rates.carriers] == [("wire", True), ("mirror", False)]
    assert verdicts(rates, "merge") == [("mirror", "link", ())]
    assert verdicts(story(config, store, "Storm closes"), "merge") == [("mirror", "title", ())]
    firehose = titles(store, "firehose")
    assert len(firehose) == 5 and "Firehose item 1" not in firehose
    (dropped,) = explain(config, store, "Firehose item 1")
    assert dropped.entry_id is None and verdicts(dropped, "dropped") == [("firehose", "cap", ())]


def test_round_2_gains_moves_and_a_merged_copy_is_edited(
    played: tuple[Scheduler, SqlStore, Config],
) -> None:
    scheduler, store, config = played
    scheduler.tick()
    report = scheduler.tick()
    assert {o.source_id: o.http_status for o in report.outcomes} == {
        "blog": 200, "moving": 200, "vanishing": 304, "wire": 304, "mirror": 200, "firehose": 304
    }  # fmt: skip
    assert "Gaining a fourth post" in titles(store, "blog")
    moving = store.source_state("moving")
    assert moving is not None and moving.url == "http://news.example.net/feed.xml"
    assert titles(store, "moving") >= {"Bridge repairs start Monday"}
    rates = story(config, store, "Central bank holds rates steady")
    assert rates.title == "Central bank holds rates steady"  # the primary's (wire's) title
    ((source, _, fields),) = verdicts(rates, "update")
    assert source == "mirror" and {"title", "content"} <= set(fields)


def test_round_3_edits_and_a_source_goes(played: tuple[Scheduler, SqlStore, Config]) -> None:
    scheduler, store, config = played
    for _ in range(3):
        report = scheduler.tick()
    assert {o.source_id: o.status for o in report.outcomes}["vanishing"] == "gone"
    gone = store.source_state("vanishing")
    assert gone is not None and gone.status == "gone"
    assert "Notes on HTTP caching" in titles(store, "blog")
    assert "Notes on caching" not in titles(store, "blog")
    caching = story(config, store, "HTTP caching")
    assert verdicts(caching, "update") == [("blog", None, ("title", "content", "summary"))]
    rates = story(config, store, "rates steady")
    assert [(s, f) for s, _, f in verdicts(rates, "update")] == [
        ("mirror", ("title", "content", "summary")), ("wire", ("content", "summary"))
    ]  # fmt: skip


def test_round_4_drops_from_the_feed_keep_what_is_stored(
    played: tuple[Scheduler, SqlStore, Config],
) -> None:
    scheduler, store, _ = played
    for _ in range(4):
        report = scheduler.tick()
    assert report.due == 5 and "vanishing" not in {o.source_id for o in report.outcomes}
    assert titles(store, "blog") >= {
        "Welcome to the blog", "Fifth: conditional requests", "Sixth: the 410 status"
    }  # fmt: skip
    assert scheduler.tick().due == 0  # played out: nothing more to poll


def _stored(store: SqlStore) -> list[tuple[object, ...]]:
    return [
        (e.uid, e.title, e.link, e.content_html, e.published_at, e.updated_at,
         tuple(p.source_id for p in e.sources))
        for e in store.recent_entries(["blog", "moving", "vanishing", "wire", "mirror",
                                       "firehose"], limit=1000)
    ]  # fmt: skip


def _outputs(where: Path) -> dict[str, bytes]:
    return {str(p.relative_to(where)): p.read_bytes() for p in where.rglob("*") if p.is_file()}


def test_a_replay_into_an_empty_database_is_the_same_every_time(tmp_path: Path) -> None:
    recording = load_recording(SEED)
    results = []
    for run in ("first", "second"):
        config = newsroom_config(tmp_path / run)
        store = open_store(config.storage.url)
        try:
            replay(config, store, recording)
            results.append((_stored(store), _outputs(config.output.dir)))
        finally:
            store.close()
    (stored, outputs), (stored_again, outputs_again) = results
    assert len(stored) == 18 and stored == stored_again
    assert outputs and outputs == outputs_again


def test_explain_names_the_merge_rule_and_the_edit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = CONFIG.read_text(encoding="utf-8")
    text = text.replace('"sqlite:///../state/recorded.db"', f'"sqlite:///{tmp_path}/db.sqlite"')
    text = text.replace('"../public/recorded"', f'"{tmp_path}/public"')
    cfg = tmp_path / "recorded.toml"
    cfg.write_text(text, encoding="utf-8")
    assert main(["-c", str(cfg), "--log-level", "WARNING", "once", "--replay", str(SEED)]) == 0
    assert "round 4 (2026-11-21 02:00:00Z, 5 sources)" in capsys.readouterr().out
    assert main(["-c", str(cfg), "explain", "rates"]) == 0
    out = capsys.readouterr().out
    assert "merge [link] -> entry" in out and "update [content, summary]" in out
    assert "a merged copy: the entry shows its primary source's content" in out
    assert main(["-c", str(cfg), "explain", "--json", "暴雨"]) == 0
    (rain,) = json.loads(capsys.readouterr().out)
    assert rain["title"] == "上海发布暴雨预警" and rain["sources"][0]["source"] == "mirror"
    places = {o["name"]: o["shown"] for o in rain["outputs"]}
    assert places == {"all": True, "group blogs": False, "group news": True,
                      "river (index.html)": True}  # fmt: skip
    assert main(["-c", str(cfg), "explain", "no such story"]) == 1
