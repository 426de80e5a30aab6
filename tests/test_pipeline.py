"""seeds -> parse -> process -> store -> outputs, end to end on the default offline config."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import feedparser
import httpx
import pytest
import yaml

from aggregator.config import Config, DedupConfig, PollConfig, SourceConfig, load_config
from aggregator.pipeline import Fetcher, Write, poll_source
from aggregator.prepare import Prepared, prepare
from aggregator.publish import render_outputs
from aggregator.schedule import Planner
from aggregator.scheduler import run_once
from aggregator.store import SqlStore, open_store
from aggregator.types import Fetched, PollOutcome, PollRecord, PollState

from .conftest import ROOT, Clock
from .feedserver import rss

JING = shutil.which("jing")
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the default config and seeds, so state/ and public/ land in tmp."""
    shutil.copytree(ROOT / "seeds", tmp_path / "seeds")
    shutil.copytree(ROOT / "config", tmp_path / "config")
    return tmp_path


@pytest.fixture
def config(project: Path) -> Config:
    return load_config(project / "config" / "aggregator.toml")


@pytest.fixture
def db(config: Config) -> Iterator[SqlStore]:
    store = open_store(config.storage.url)
    yield store
    store.close()


def outputs(config: Config) -> dict[str, bytes]:
    root = config.output.dir
    return {  # (not the render stamp, a dotfile: ``renderstamp``)
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def test_first_run_ingests_every_seed_and_fails_only_the_broken_one(
    config: Config, db: SqlStore, clock: Clock
) -> None:
    report = run_once(config, db, now=clock.now, offline=True)
    failed = [o.source_id for o in report.outcomes if not o.ok]
    assert failed == ["reuters-broken"]
    assert "reuters-broken" in (report.outcomes[-1].error or "")
    by_id = {o.source_id: o.result for o in report.outcomes}
    assert by_id["huxiu"].new == 1
    assert by_id["kc0011"].new == 20
    assert by_id["kc0011-mirror"].new == 0 and by_id["kc0011-mirror"].duplicate == 20
    assert by_id["daringfireball-json"].duplicate > 0  # stories shared with the Atom feed
    files = outputs(config)
    assert {"all.atom", "all.rss", "all.json"} <= set(files)
    assert sum(name.startswith("markdown/all/") for name in files) == 100  # the entry limit
    states = {s.source_id: s for s in db.source_states()}
    assert states["reuters-broken"].status == "failed" and states["reuters-broken"].failures == 1
    assert states["huxiu"].status == "ok" and states["huxiu"].entry_count == 1


def test_second_run_adds_nothing_and_rewrites_no_file(
    config: Config, db: SqlStore, clock: Clock
) -> None:
    first = run_once(config, db, now=clock.now, offline=True)
    # 100 posts + 3 feeds of "all", its page and 1 archive page, 6 groups x (3 feeds + page),
    # the river and outputs.opml (#13)
    assert first.summary().endswith("outputs: 131 written, 0 unchanged")
    before = outputs(config)
    mtimes = {p: p.stat().st_mtime_ns for p in config.output.dir.rglob("*") if p.is_file()}
    again = run_once(config, db, now=clock.advance(hours=1), offline=True)
    totals = [(o.result.new, o.result.updated, o.result.duplicate) for o in again.outcomes]
    assert set(totals) == {(0, 0, 0)}
    assert sum(len(r.written) for r in again.renders) == 0
    assert outputs(config) == before
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    # Nothing stored since the last render: nothing rendered at all (issue #16)
    assert again.summary().endswith("outputs: up to date (nothing rendered)")


def test_a_changed_fixture_is_an_update_not_a_new_entry(
    project: Path, config: Config, db: SqlStore, clock: Clock
) -> None:
    run_once(config, db, now=clock.now, offline=True)
    fixture = project / "seeds" / "feeds" / "rss2-reader-full.rss"
    text = fixture.read_text(encoding="utf-8")
    assert text.count("<description>") >= 2
    head, _, tail = text.rpartition("<description>")
    fixture.write_text(head + "<description>Edited: " + tail, encoding="utf-8")
    report = run_once(config, db, now=clock.advance(hours=2), offline=True, force=True)
    by_id = {o.source_id: o for o in report.outcomes}
    assert (by_id["example-rss"].result.new, by_id["example-rss"].result.updated) == (0, 1)
    assert by_id["huxiu"].status == "not_modified"  # unchanged bodies are not even parsed


def test_render_alone_reproduces_identical_bytes(
    config: Config, db: SqlStore, clock: Clock
) -> None:
    run_once(config, db, now=clock.now, offline=True)
    before = outputs(config)
    shutil.rmtree(config.output.dir)
    render_outputs(config, db)
    assert outputs(config) == before


def test_outputs_reparse_and_keep_provenance(config: Config, db: SqlStore, clock: Clock) -> None:
    run_once(config, db, now=clock.now, offline=True)
    root = config.output.dir
    atom = feedparser.parse((root / "all.atom").read_bytes())
    rss = feedparser.parse((root / "all.rss").read_bytes())
    feed = json.loads((root / "all.json").read_bytes())
    assert not atom.bozo and not rss.bozo
    assert len(atom.entries) == len(rss.entries) == len(feed["items"]) == 100
    assert [e.id for e in atom.entries] == [i["id"] for i in feed["items"]]
    dates = [e.published_parsed for e in atom.entries]
    assert dates == sorted(dates, reverse=True)  # newest first
    merged = [i for i in feed["items"] if len(i["_aggregator"]["sources"]) > 1]
    assert any(
        {s["id"] for s in i["_aggregator"]["sources"]} == {"kc0011", "kc0011-mirror"}
        for i in merged
    )
    text = b"".join((root / n).read_bytes() for n in ("all.atom", "all.rss", "all.json")).lower()
    assert b"<script" not in text and b"javascript:" not in text
    huxiu = next(e for e in atom.entries if "工业互联网" in e.title)
    assert huxiu.source.title == "虎嗅 - 首页资讯"


@pytest.mark.slow
@pytest.mark.skipif(JING is None, reason="jing not installed (apt-get install jing)")
def test_atom_output_is_valid_against_the_relax_ng_schema(
    config: Config, db: SqlStore, clock: Clock
) -> None:
    run_once(config, db, now=clock.now, offline=True)
    schema = ROOT / "tests" / "data" / "schemas" / "atom.rnc"
    done = subprocess.run(
        [str(JING), "-c", str(schema), str(config.output.dir / "all.atom")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout


def front_matter(text: str) -> dict[str, object]:
    _, head, _ = text.split("---\n", 2)
    loaded = yaml.safe_load(head)
    assert isinstance(loaded, dict)
    return loaded


def images(text: str) -> list[str]:
    import re

    return re.findall(r'<img\b[^>]*?(?<![\w-])src="([^"]+)"', text)


def test_markdown_round_trip_of_the_seed(
    config: Config, db: SqlStore, clock: Clock, seeds_dir: Path
) -> None:
    run_once(config, db, now=clock.now, offline=True)
    seed = (seeds_dir / "huxiu" / "huxiu-2021-03-22-industrial-internet.md").read_text(
        encoding="utf-8"
    )
    exported = [
        p.read_text(encoding="utf-8")
        for p in (config.output.dir / "markdown" / "all").glob("*.md")
        if "工业互联网创业机会" in p.read_text(encoding="utf-8")
    ]
    assert len(exported) == 1
    want, got = front_matter(seed), front_matter(exported[0])
    assert got == want
    assert list(got) == list(want)  # the same key order
    seed_images = list(dict.fromkeys(images(seed)))
    assert seed_images and list(dict.fromkeys(images(exported[0]))) == seed_images
    assert 'referrerpolicy="no-referrer"' in exported[0]


def test_undated_entries_keep_their_first_seen_date_across_runs(
    config: Config, db: SqlStore, clock: Clock
) -> None:
    first_seen = clock.now
    run_once(config, db, now=first_seen, offline=True)
    run_once(config, db, now=clock.advance(days=2), offline=True)
    entries = db.recent_entries(["example-rss", "scripting-gd"], limit=50)
    undated = [e for e in entries if e.published_at == first_seen]
    assert undated, "the RSS 0.92 sample has undated items"
    assert all(e.published_at != first_seen + timedelta(days=2) for e in entries)


def test_golden_outputs(tmp_path: Path) -> None:
    """Byte-for-byte outputs of a small config (regenerate: `python -m tests.golden_pipeline`)."""
    from .golden_pipeline import GOLDEN, render_golden

    got = render_golden(tmp_path)
    want = {
        str(p.relative_to(GOLDEN)): p.read_bytes() for p in sorted(GOLDEN.rglob("*")) if p.is_file()
    }
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == want[name], (
            f"{name} differs: run `python -m tests.golden_pipeline`, review the diff"
        )


def test_polling_over_http_uses_conditional_get(tmp_path: Path, clock: Clock) -> None:
    """Without --offline the shared client fetches; a 304 parses and writes nothing."""

    body = (ROOT / "seeds" / "feeds" / "rss2-reader-full.rss").read_bytes()
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.headers.get("if-none-match") == '"v1"':
            return httpx.Response(304, headers={"ETag": '"v1"'})
        return httpx.Response(
            200, content=body, headers={"ETag": '"v1"', "Content-Type": "application/rss+xml"}
        )

    path = tmp_path / "c.toml"
    path.write_text(
        '[storage]\nurl = "sqlite:///s.db"\n[output]\ndir = "out"\n'
        '[[sources]]\nid = "r"\nurl = "https://feeds.example/rss"\n',
        encoding="utf-8",
    )
    config = load_config(path)
    store = open_store(config.storage.url)
    transport = httpx.MockTransport(handler)
    first = run_once(config, store, now=clock.now, offline=False, transport=transport)
    second = run_once(
        config, store, now=clock.advance(minutes=1), offline=False, force=True, transport=transport
    )
    store.close()
    assert first.outcomes[0].status == "ok" and first.outcomes[0].result.new == 5
    assert second.outcomes[0].status == "not_modified" and second.outcomes[0].http_status == 304
    assert (
        "if-none-match" not in requests[0].headers
        and requests[1].headers["if-none-match"] == '"v1"'
    )
    assert sum(len(r.written) for r in second.renders) == 0


def test_once_polls_what_is_due_and_force_never_what_a_server_asked_to_wait(
    tmp_path: Path, clock: Clock
) -> None:
    """Cron users run `once`: a 410 stays off, a Retry-After is never cut short (issue #11)."""
    answers = {"gone": 410, "busy": 429, "ok": 200}
    requests: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        name = request.url.path.strip("/")
        requests.append(name)
        if answers[name] == 429:
            return httpx.Response(429, headers={"Retry-After": "3600"})
        if answers[name] == 410:
            return httpx.Response(410)
        return httpx.Response(200, content=rss("OK", [("1", "one")]))

    path = tmp_path / "c.toml"
    path.write_text(
        '[storage]\nurl = "sqlite:///s.db"\n[output]\ndir = "out"\n'
        '[poll]\ninterval = "30m"\njitter = 0\n'
        + "".join(f'[[sources]]\nid = "{n}"\nurl = "https://x.example/{n}"\n' for n in answers),
        encoding="utf-8",
    )
    config = load_config(path)
    store = open_store(config.storage.url)
    transport = httpx.MockTransport(handler)

    def once(minutes: float, *, force: bool = False) -> list[str]:
        requests.clear()
        run_once(config, store, now=clock.advance(minutes=minutes), offline=False, force=force,
                 transport=transport)  # fmt: skip
        return sorted(requests)

    try:
        assert once(0) == ["busy", "gone", "ok"]
        assert once(1) == []  # nothing is due yet
        assert once(1, force=True) == ["ok"]  # not gone, not told to wait: forced
        assert once(40) == ["ok"]  # due again; "busy" waits out its hour
        assert once(25) == ["busy"]  # the hour is over (and "ok" is not due yet)
        assert once(1, force=True) == ["ok"]  # "busy" was told to wait again; gone stays off
        states = {s.source_id: s for s in store.source_states()}
        assert states["gone"].next_check_why == "gone"
        assert states["busy"].next_check_why == "backoff, retry-after"  # 2 failures: 2 h > 1 h
        assert once(600) == ["busy", "ok"]
    finally:
        store.close()


# -- poll_source alone: one source, a context of the test's own (no loop thread, no sockets) --


class InlineContext:
    """A ``PollContext`` that runs everything at once: prepare inline, store right away."""

    def __init__(self, store: SqlStore, fetcher: Fetcher, now: datetime) -> None:
        self.db, self.fetcher = store, fetcher
        self.planner = Planner(PollConfig(jitter=0.0), now)
        self.dedup = DedupConfig()
        self.explain = True  # each poll's history on its record (issue #14)
        self.records: list[PollRecord] = []
        self.slots = self.held = 0

    def slot(self, source: SourceConfig, state: PollState | None) -> InlineContext:
        return self

    async def enter(self) -> None:  # (the slot: counts the polls that took one, and held)
        self.slots += 1
        self.held += 1

    def leave(self) -> None:
        self.held -= 1

    async def prepare(self, fetched: Fetched) -> Prepared:
        return prepare(fetched)

    async def store(self, write: Write) -> PollOutcome:  # type: ignore[misc]
        with self.db.transaction() as tx:
            return write(tx)

    def record(self, record: PollRecord) -> None:
        self.records.append(record)


def _poll(ctx: InlineContext, source: SourceConfig, state: PollState | None = None) -> PollOutcome:
    return asyncio.run(poll_source(source, state, ctx))  # type: ignore[arg-type]


@pytest.fixture
def inline(memory_store: SqlStore, tmp_path: Path, clock: Clock) -> InlineContext:
    ctx = InlineContext(memory_store, Fetcher(None, offline=True), clock.now)
    return ctx


def _source(tmp_path: Path, body: bytes | None) -> SourceConfig:
    fixture = tmp_path / "feed.xml"
    if body is not None:
        fixture.write_bytes(body)
    return SourceConfig(id="s", url="https://s.example/feed", fixture=fixture)


def test_poll_source_stores_a_new_document(
    inline: InlineContext, tmp_path: Path, memory_store: SqlStore
) -> None:
    source = _source(tmp_path, rss("S", [("1", "first story"), ("2", "second story")]))
    with memory_store.transaction() as tx:
        tx.sync_sources([source], now=inline.planner.now)
    outcome = _poll(inline, source)
    assert (outcome.status, outcome.result.new, inline.slots, inline.held) == ("ok", 2, 1, 0)
    assert inline.records == []  # its bookkeeping went with the entries, in one unit of work
    stored = memory_store.recent_entries(["s"], limit=5)
    assert sorted(e.title for e in stored) == ["first story", "second story"]


def test_poll_source_records_an_unchanged_document_without_preparing_it(
    inline: InlineContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = rss("S", [("1", "first story")])
    source = _source(tmp_path, body)
    state = PollState("s", source.url, body_hash=hashlib.sha256(body).hexdigest())
    monkeypatch.setattr(InlineContext, "prepare", None)  # would fail if called
    outcome = _poll(inline, source, state)
    assert outcome.status == "not_modified"
    (record,) = inline.records
    assert (record.status, record.next_check_at) == (
        "not_modified",
        inline.planner.now + timedelta(minutes=30),
    )


def test_poll_source_records_failures_with_backoff(inline: InlineContext, tmp_path: Path) -> None:
    missing = _source(tmp_path / "nowhere", None)
    outcome = _poll(inline, missing, PollState("s", missing.url, failures=2))
    assert outcome.status == "failed" and "cannot read fixture" in (outcome.error or "")
    broken = _source(tmp_path, b"no feed here, not even XML")
    outcome = _poll(inline, broken)
    assert outcome.status == "failed" and outcome.http_status == 200
    first, second = inline.records
    assert (first.status, first.next_check_at) == (
        "failed",
        inline.planner.now + timedelta(hours=4),
    )
    assert second.next_check_at == inline.planner.now + timedelta(hours=1)
    assert first.history is not None and first.history.url == missing.url  # issue #14
