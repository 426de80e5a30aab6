"""The tick, end to end without sockets: a scripted web (``MockTransport``), an in-memory
database and an injected clock. Concurrency is observed through events, never through sleeps."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from aggregator.config import Config, parse_config
from aggregator.errors import StoreError
from aggregator.publish import render_outputs
from aggregator.render import RenderReport
from aggregator.scheduler import POOL_MIN_SOURCES, Scheduler, build_scheduler
from aggregator.store import SqlStore
from aggregator.store.sql import SqlTransaction

from .conftest import Clock
from .fakeweb import FakeWeb, Route
from .feedserver import rss

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
Build = Callable[[Config], Scheduler]
FEED = rss("Feed", [("1", "one"), ("2", "two")])


@pytest.fixture
def web() -> Iterator[FakeWeb]:
    fake = FakeWeb()
    yield fake
    fake.close()


def make_config(tmp_path: Path, urls: list[str], **poll: object) -> Config:
    data = {
        "output": {"dir": str(tmp_path / "public")},
        "poll": {"interval": "30m", "jitter": 0, **poll},
        "sources": [{"id": source_id(u), "url": u} for u in urls],
    }
    return parse_config(data, path=tmp_path / "c.toml")


def source_id(url: str) -> str:
    return url.split("/", 3)[3].replace("/", "-")


@pytest.fixture
def scheduler_for(memory_store: SqlStore, clock: Clock, web: FakeWeb) -> Iterator[Build]:
    made: list[Scheduler] = []

    def build(config: Config) -> Scheduler:
        sched = build_scheduler(
            config, memory_store, clock=lambda: clock.now, transport=web.transport
        )
        sched.parse_workers = 1
        sched.start()
        made.append(sched)
        return sched

    yield build
    web.close()
    for sched in made:
        sched.close()


def test_second_tick_sends_only_conditional_gets_and_writes_nothing(
    tmp_path: Path, web: FakeWeb, scheduler_for: Build, clock: Clock
) -> None:
    urls = [web.url(f"/f{i}") for i in range(5)]
    for i, url in enumerate(urls):
        web.routes[url] = Route(body=rss(f"Feed {i}", [(f"{i}-1", f"one {i}"), (f"{i}-2", "x")]))
    sched = scheduler_for(make_config(tmp_path, urls))
    first = sched.tick()
    assert first.due == 5 and first.rendered and first.new == 10
    outputs = {p: p.stat().st_mtime_ns for p in (tmp_path / "public").iterdir()}
    assert sched.tick().due == 0  # nothing is due before its interval
    clock.advance(minutes=31)
    second = sched.tick()
    assert second.due == 5 and {o.status for o in second.outcomes} == {"not_modified"}
    assert {o.http_status for o in second.outcomes} == {304}
    assert not second.rendered
    later = web.requests[5:]
    assert len(later) == 5 and all("if-none-match" in r.headers for r in later)
    assert {p: p.stat().st_mtime_ns for p in outputs} == outputs


def test_unchanged_body_without_conditional_get_skips_parsing(
    tmp_path: Path, web: FakeWeb, scheduler_for: Build, clock: Clock
) -> None:
    web.routes[web.url("/plain")] = Route(body=FEED, conditional=False)
    sched = scheduler_for(make_config(tmp_path, [web.url("/plain")]))
    sched.tick()
    clock.advance(hours=1)
    (outcome,) = sched.tick().outcomes
    assert (outcome.status, outcome.http_status) == ("not_modified", 200)


def test_permanent_redirect_updates_the_url_temporary_does_not(
    tmp_path: Path, web: FakeWeb, scheduler_for: Build, memory_store: SqlStore, clock: Clock
) -> None:
    web.routes = {
        web.url("/old"): Route(status=301, location=web.url("/new")),
        web.url("/new"): Route(body=FEED),
        web.url("/tmp"): Route(status=302, location=web.url("/new2")),
        web.url("/new2"): Route(body=rss("Other", [("9", "nine")])),
    }
    sched = scheduler_for(make_config(tmp_path, [web.url("/old"), web.url("/tmp")]))
    sched.tick()
    old, tmp = memory_store.source_state("old"), memory_store.source_state("tmp")
    assert old is not None and old.url == web.url("/new")
    assert tmp is not None and tmp.url == web.url("/tmp")
    clock.advance(hours=1)
    sched.tick()
    assert web.count(web.url("/old")) == 1 and web.count(web.url("/tmp")) == 2


def test_gone_disables_the_source(
    tmp_path: Path, web: FakeWeb, scheduler_for: Build, memory_store: SqlStore, clock: Clock
) -> None:
    web.routes[web.url("/gone")] = Route(status=410)
    sched = scheduler_for(make_config(tmp_path, [web.url("/gone")]))
    (outcome,) = sched.tick().outcomes
    assert outcome.status == "gone"
    state = memory_store.source_state("gone")
    assert state is not None and state.status == "gone" and state.next_check_at is None
    clock.advance(days=30)
    assert sched.tick().due == 0 and web.count(web.url("/gone")) == 1


def test_429_retry_after_and_500_backoff(
    tmp_path: Path, web: FakeWeb, scheduler_for: Build, memory_store: SqlStore, clock: Clock
) -> None:
    web.routes = {
        web.url("/busy"): Route(status=429, headers={"Retry-After": "7200"}),
        web.url("/broken"): Route(status=500, body=b"oops"),
    }
    sched = scheduler_for(make_config(tmp_path, [web.url("/busy"), web.url("/broken")]))
    sched.tick()
    busy, broken = memory_store.source_state("busy"), memory_store.source_state("broken")
    assert busy is not None and busy.next_check_at == T0 + timedelta(hours=2)  # Retry-After
    assert broken is not None and broken.failures == 1
    assert broken.next_check_at == T0 + timedelta(hours=1)
    assert broken.last_error is not None and "HTTP 500" in broken.last_error
    clock.advance(hours=1)
    sched.tick()
    broken = memory_store.source_state("broken")
    assert broken is not None and broken.failures == 2
    assert broken.next_check_at == clock.now + timedelta(hours=2)
    web.routes[web.url("/broken")] = Route(body=FEED)
    clock.advance(hours=2)
    sched.tick()
    broken = memory_store.source_state("broken")
    assert broken is not None and (broken.failures, broken.status) == (0, "ok")
    assert broken.next_check_at == clock.now + timedelta(minutes=30)  # backoff reset


def test_timeout_oversized_bomb_and_file_redirect_fail_alone(
    tmp_path: Path, web: FakeWeb, scheduler_for: Build
) -> None:
    web.routes = {
        web.url("/slow", host="slow.test"): Route(raises=httpx.ReadTimeout),
        web.url("/big"): Route(body=b"<rss>" + b" " * 3000 + b"</rss>"),
        web.url("/bomb"): Route(body=b"<rss>" + b"\0" * 500_000, gzip=True),
        web.url("/file"): Route(status=301, location="file:///etc/passwd"),
        web.url("/ok"): Route(body=FEED),
    }
    urls = [web.url("/slow", host="slow.test")] + [
        web.url(p) for p in ("/big", "/bomb", "/file", "/ok")
    ]
    report = scheduler_for(make_config(tmp_path, urls, max_bytes=2048)).tick()
    errors = {o.source_id: o.error or "" for o in report.outcomes}
    assert "ReadTimeout" in errors["slow"]
    assert "cap" in errors["big"]
    assert "decoded" in errors["bomb"]
    assert "non-http" in errors["file"]
    assert errors["ok"] == "" and report.rendered


def test_per_host_and_total_caps_bound_requests_in_flight(
    tmp_path: Path, web: FakeWeb, scheduler_for: Build
) -> None:
    # Every request stays in flight for 50 turns of the loop: long enough for every worker
    # to start its own, so a broken cap would show.
    one_host = [web.url(f"/h{i}") for i in range(6)]
    for url in one_host:
        web.routes[url] = Route(body=FEED, linger=50)
    report = scheduler_for(make_config(tmp_path, one_host, per_host=2)).tick()
    assert len(report.outcomes) == 6 and web.max_in_flight == 2
    web.max_in_flight = 0
    many_hosts = [web.url(f"/m{i}", host=f"h{i}.test") for i in range(8)]
    for url in many_hosts:
        web.routes[url] = Route(body=FEED, linger=50)
    config = make_config(tmp_path, many_hosts, per_host=2, max_concurrency=3)
    report = scheduler_for(config).tick()
    assert len(report.outcomes) == 8 and web.max_in_flight == 3


def test_time_queued_for_a_slot_is_not_the_requests_duration(
    tmp_path: Path, web: FakeWeb, scheduler_for: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    seconds = [0.0]  # a stopwatch the test moves
    monkeypatch.setattr("aggregator.pipeline.perf_counter", lambda: seconds[0])
    release = threading.Event()
    first, second = web.url("/first"), web.url("/second")
    web.routes = {first: Route(body=FEED, block=release), second: Route(body=FEED)}
    sched = scheduler_for(make_config(tmp_path, [first, second], per_host=1))
    reports: list[Any] = []
    ticking = threading.Thread(target=lambda: reports.append(sched.tick()))
    ticking.start()
    assert web.arrived(first).wait(10)
    seconds[0] = 60.0  # "first" takes a minute; "second" waits for the host's only slot
    release.set()
    ticking.join(10)
    outcomes = {o.source_id: o for o in reports[0].outcomes}
    assert web.requests[1].url == second
    assert outcomes["first"].duration_s == 60.0
    assert outcomes["second"].duration_s == 0.0  # queued a minute, answered at once


def test_fetching_does_not_block_storing(
    tmp_path: Path, web: FakeWeb, scheduler_for: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_stored = threading.Event()
    web.routes = {
        web.url("/slow"): Route(body=FEED, block=fast_stored),
        web.url("/fast"): Route(body=rss("F", [("f", "fast")])),
    }
    real_apply = SqlTransaction.apply

    def apply(self: SqlTransaction, source_id: str, *args: Any) -> Any:
        result = real_apply(self, source_id, *args)
        if source_id == "fast":
            fast_stored.set()  # only now may the slow response be sent
        return result

    monkeypatch.setattr(SqlTransaction, "apply", apply)
    report = scheduler_for(make_config(tmp_path, [web.url("/slow"), web.url("/fast")])).tick()
    assert [o.source_id for o in report.outcomes] == ["fast", "slow"]
    assert all(o.status == "ok" for o in report.outcomes)


def test_a_failing_write_fails_its_source_alone_and_it_stays_due(
    tmp_path: Path,
    web: FakeWeb,
    scheduler_for: Build,
    memory_store: SqlStore,
    monkeypatch: pytest.MonkeyPatch,
    clock: Clock,
) -> None:
    urls = [web.url(f"/s{i}") for i in range(4)]
    for i, url in enumerate(urls):
        web.routes[url] = Route(body=rss(f"S{i}", [(f"s{i}", f"story number {i}")]))
    real_apply = SqlTransaction.apply

    def apply(self: SqlTransaction, source_id: str, *args: Any) -> Any:
        if source_id == "s2":
            raise StoreError("database error: disk I/O error")
        return real_apply(self, source_id, *args)

    monkeypatch.setattr(SqlTransaction, "apply", apply)
    sched = scheduler_for(make_config(tmp_path, urls))
    report = sched.tick()
    status = {o.source_id: o.status for o in report.outcomes}
    assert status == {"s0": "ok", "s1": "ok", "s2": "failed", "s3": "ok"}
    assert "disk I/O" in (report.failures[0].error or "")
    stored = memory_store.recent_entries(["s0", "s1", "s2", "s3"], limit=10)
    assert sorted(e.title for e in stored) == ["story number 0", "story number 1",
                                               "story number 3"]  # fmt: skip
    monkeypatch.setattr(SqlTransaction, "apply", real_apply)
    clock.advance(minutes=1)
    again = sched.tick()  # nothing was written for s2: it is still due, and now it lands
    assert [(o.source_id, o.result.new) for o in again.outcomes] == [("s2", 1)]


def test_reload_adds_and_removes_sources(
    tmp_path: Path, web: FakeWeb, scheduler_for: Build, memory_store: SqlStore
) -> None:
    web.routes = {
        web.url("/a"): Route(body=rss("A", [("a1", "Story from A only")])),
        web.url("/b"): Route(body=rss("B", [("b1", "Story from B")])),
    }
    sched = scheduler_for(make_config(tmp_path, [web.url("/a")]))
    sched.tick()
    new = parse_config(
        {
            "output": {"dir": str(tmp_path / "public")},
            "storage": {"keep_removed": False},
            "poll": {"interval": "30m", "jitter": 0},
            "sources": [{"id": "b", "url": web.url("/b")}],
        },
        path=tmp_path / "c.toml",
    )
    assert sched.reload(new) == ("a",)
    report = sched.tick()  # b is due at once, before any interval passed
    assert [o.source_id for o in report.outcomes] == ["b"] and report.rendered
    assert [s.source_id for s in memory_store.source_states()] == ["b"]
    assert [e.title for e in memory_store.recent_entries(["a", "b"], limit=10)] == ["Story from B"]


def test_stop_drains_in_flight_polls_then_abandons_them(
    tmp_path: Path, web: FakeWeb, scheduler_for: Build
) -> None:
    stopped = threading.Event()
    finishing, stuck, later = web.url("/finishing"), web.url("/stuck"), web.url("/later")
    web.routes = {
        finishing: Route(body=FEED, block=stopped),  # answers within the drain time
        stuck: Route(body=FEED, block=threading.Event()),  # never answers
        later: Route(body=FEED),
    }
    sched = scheduler_for(make_config(tmp_path, [finishing, stuck, later], max_concurrency=2))
    sched.drain_s = 1.0
    reports: list[Any] = []
    ticking = threading.Thread(target=lambda: reports.append(sched.tick()))
    ticking.start()
    assert web.arrived(finishing).wait(10) and web.arrived(stuck).wait(10)  # both in flight,
    sched.stop()  # ... when the stop comes
    stopped.set()
    ticking.join(10)
    assert not ticking.is_alive()
    (report,) = reports
    assert [(o.source_id, o.status) for o in report.outcomes] == [("finishing", "ok")]
    # "stuck" cancelled after the drain time; "later", waiting for a slot when the stop came,
    # never begun (deterministic: it gets a slot only once "finishing" is answered)
    assert report.abandoned == 2
    assert web.count(later) == 0 and report.new == 2 and report.rendered


def test_fast_sources_are_published_before_slow_ones_finish(
    tmp_path: Path, web: FakeWeb, scheduler_for: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = threading.Event()
    web.routes = {
        web.url("/slow"): Route(body=rss("S", [("s", "slow story")]), block=published),
        web.url("/fast"): Route(body=rss("F", [("f", "fast story")])),
    }
    sched = scheduler_for(make_config(tmp_path, [web.url("/slow"), web.url("/fast")]))
    sched.render_every_s = 0.0
    seen_in_outputs: list[bytes] = []

    def render(config: Config, store: SqlStore, **how: Any) -> tuple[RenderReport, ...]:
        done = render_outputs(config, store, **how)
        seen_in_outputs.append((tmp_path / "public" / "all.json").read_bytes())
        published.set()  # only now may the slow source answer
        return done

    monkeypatch.setattr("aggregator.scheduler.render_outputs", render)
    report = sched.tick()
    assert [o.source_id for o in report.outcomes] == ["fast", "slow"]
    assert b"fast story" in seen_in_outputs[0] and b"slow story" not in seen_in_outputs[0]
    assert b"slow story" in seen_in_outputs[-1]


def test_server_freshness_sets_the_next_check(
    tmp_path: Path, web: FakeWeb, scheduler_for: Build, memory_store: SqlStore
) -> None:
    web.routes = {
        web.url("/fresh"): Route(body=FEED, headers={"Cache-Control": "public, max-age=7200"}),
        web.url("/ttl"): Route(body=rss("T", [("t", "ttl story")], extra="<ttl>180</ttl>")),
    }
    sched = scheduler_for(make_config(tmp_path, [web.url("/fresh"), web.url("/ttl")]))
    sched.tick()
    fresh, ttl = memory_store.source_state("fresh"), memory_store.source_state("ttl")
    assert fresh is not None and fresh.next_check_at == T0 + timedelta(hours=2)
    assert ttl is not None and ttl.next_check_at == T0 + timedelta(hours=3)
    assert all("if-modified-since" not in r.headers for r in web.requests)


def test_conditional_get_sends_both_validators(
    tmp_path: Path, web: FakeWeb, scheduler_for: Build, clock: Clock
) -> None:
    url = web.url("/f")
    web.routes[url] = Route(body=FEED)
    sched = scheduler_for(make_config(tmp_path, [url]))
    sched.tick()
    clock.advance(hours=1)
    sched.tick()
    headers = web.requests[-1].headers
    assert headers["if-none-match"] == web.routes[url].etag
    assert headers["if-modified-since"] == web.routes[url].last_modified
    assert headers["user-agent"].startswith("aggregator")


def test_offline_ticks_pick_up_a_changed_fixture(
    tmp_path: Path, memory_store: SqlStore, clock: Clock
) -> None:
    fixture = tmp_path / "feed.xml"
    fixture.write_bytes(rss("Local", [("1", "first version")]))
    config = parse_config(
        {
            "output": {"dir": str(tmp_path / "public")},
            "sources": [
                {"id": "local", "url": "https://local.example/feed", "fixture": str(fixture)}
            ],
        },
        path=tmp_path / "c.toml",
    )
    sched = build_scheduler(config, memory_store, offline=True, clock=lambda: clock.now)
    sched.start()
    try:
        assert sched.tick().outcomes[0].result.new == 1
        clock.advance(hours=1)
        assert sched.tick().outcomes[0].status == "not_modified"
        fixture.write_bytes(rss("Local", [("1", "second version")]))
        clock.advance(hours=1)
        (outcome,) = sched.tick().outcomes
    finally:
        sched.close()
    assert (outcome.status, outcome.result.updated) == ("ok", 1)
    assert [e.title for e in memory_store.recent_entries(["local"], limit=5)] == ["second version"]


@pytest.mark.slow  # starts worker processes
def test_large_ticks_prepare_in_worker_processes(
    tmp_path: Path, web: FakeWeb, memory_store: SqlStore, clock: Clock
) -> None:
    urls = [web.url(f"/f{i}", host=f"h{i}.test") for i in range(POOL_MIN_SOURCES + 2)]
    for i, url in enumerate(urls):
        body = rss(f"Feed {i}", [(f"{i}-a", f"story a of {i}"), (f"{i}-b", f"story b of {i}")])
        web.routes[url] = Route(body=body if i != 7 else body[:80])  # one truncated: fails
    config = make_config(tmp_path, urls)
    sched = build_scheduler(config, memory_store, clock=lambda: clock.now, transport=web.transport)
    sched.parse_workers = 2
    sched.start()
    try:
        report = sched.tick()
        assert sched.workers_started  # the bodies went to the workers
    finally:
        sched.close()
    failed = report.failures
    assert [o.source_id for o in failed] == ["f7"] and "f7:" in (failed[0].error or "")
    assert report.new == 2 * (len(urls) - 1)


def test_fetching_waits_for_storing_backpressure(
    tmp_path: Path, web: FakeWeb, scheduler_for: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = [web.url(f"/b{i}") for i in range(30)]
    for i, url in enumerate(urls):
        web.routes[url] = Route(body=rss(f"B{i}", [(f"b{i}", f"story {i}")]))
    sched = scheduler_for(make_config(tmp_path, urls, max_concurrency=1))
    seen_at_apply: list[int] = []
    real_apply = SqlTransaction.apply

    def apply(self: SqlTransaction, *args: Any) -> Any:
        if not seen_at_apply:  # a slow first store: would the fetches run ahead meanwhile?
            assert web.arrived(urls[4]).wait(10)  # the bound: 5 polls at a time
            settle(sched)  # every poll that could start has started
        seen_at_apply.append(len(web.requests))
        return real_apply(self, *args)

    monkeypatch.setattr(SqlTransaction, "apply", apply)
    report = sched.tick()
    assert len(report.outcomes) == 30
    # One request in flight (max_concurrency) plus at most 4 documents waiting to be stored
    # (max(2 * 1, 4 * 1 worker)): the fetches never run further ahead than that.
    assert all(seen <= stored + 5 for stored, seen in enumerate(seen_at_apply))
    assert max(seen - stored for stored, seen in enumerate(seen_at_apply)) == 5


def settle(sched: Scheduler, turns: int = 50) -> None:
    """Let the fetch loop run until it has nothing left to do (the fake web answers in-loop)."""
    loop = sched._loop
    assert loop is not None
    for _ in range(turns):
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop.loop).result(10)


def test_a_host_that_times_out_is_not_asked_again_this_tick(
    tmp_path: Path, web: FakeWeb, scheduler_for: Build, memory_store: SqlStore, clock: Clock
) -> None:
    slow = [web.url(f"/s{i}", host="slow.test") for i in range(4)]
    fine = [web.url(f"/f{i}", host="fine.test") for i in range(2)]
    for url in slow:
        web.routes[url] = Route(raises=httpx.ReadTimeout)
    for url in fine:
        web.routes[url] = Route(body=FEED)
    sched = scheduler_for(make_config(tmp_path, slow + fine, per_host=1))
    report = sched.tick()
    status = {o.source_id: o.status for o in report.outcomes}
    assert status == {"s0": "failed", "s1": "deferred", "s2": "deferred", "s3": "deferred",
                      "f0": "ok", "f1": "ok"}  # fmt: skip
    assert sum(web.count(u) for u in slow) == 1  # one request to the struggling host
    deferred = memory_store.source_state("s1")
    assert deferred is not None and deferred.failures == 0 and deferred.status == "new"
    assert report.summary().startswith("sources: 2 ok, 1 failed, 3 deferred;")
    assert sched.tick().due == 3  # the deferred ones are still due: polled at the next tick


def test_no_poll_starts_after_the_tick_deadline(
    tmp_path: Path, web: FakeWeb, scheduler_for: Build
) -> None:
    seconds = [0.0]
    urls = [web.url(f"/d{i}") for i in range(4)]
    for url in urls:
        web.routes[url] = Route(body=FEED)
    web.routes[urls[0]].on_request = lambda: seconds.__setitem__(0, 120.0)  # a long first poll
    sched = scheduler_for(make_config(tmp_path, urls, per_host=1))
    sched.tick_deadline_s, sched.monotonic = 60.0, lambda: seconds[0]
    report = sched.tick()
    status = {o.source_id: o.status for o in report.outcomes}
    assert status == {"d0": "ok", "d1": "deferred", "d2": "deferred", "d3": "deferred"}
    assert len(web.requests) == 1


def test_guids_made_up_on_every_request_do_not_flood_the_outputs(
    tmp_path: Path, web: FakeWeb, scheduler_for: Build, clock: Clock, memory_store: SqlStore
) -> None:
    url = web.url("/fickle")
    story = "<link>https://example.org/{n}</link><title>Story number {n}</title>"

    def feed(poll: int) -> bytes:
        items = "".join(
            f"<item><guid>{poll}-{n}</guid>{story.format(n=n)}</item>" for n in range(3)
        )
        return f'<rss version="2.0"><channel><title>F</title>{items}</channel></rss>'.encode()

    web.routes[url] = Route(body=feed(0))
    sched = scheduler_for(make_config(tmp_path, [url]))
    assert sched.tick().new == 3
    outputs = {p: p.read_bytes() for p in (tmp_path / "public").iterdir()}
    for poll in range(1, 4):
        web.routes[url] = Route(body=feed(poll))
        clock.advance(hours=1)
        report = sched.tick()
        assert (report.new, report.duplicate, report.rendered) == (0, 3, False)
    assert {p: p.read_bytes() for p in outputs} == outputs
    assert len(memory_store.recent_entries(["fickle"], limit=10)) == 3
    # a second post about the same link, with a title of its own, is a new entry
    web.routes[url] = Route(body=feed(9).replace(b"Story number 2<", b"Story number 2, again<"))
    clock.advance(hours=1)
    assert sched.tick().new == 1


def test_logs_are_quiet_for_unchanged_polls_and_the_tick_line_says_how_long(
    tmp_path: Path,
    web: FakeWeb,
    scheduler_for: Build,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    urls = [web.url(f"/q{i}") for i in range(3)]
    for i, url in enumerate(urls):
        web.routes[url] = Route(body=rss(f"Q{i}", [(f"q{i}", f"quiet {i}")]))
    web.routes[web.url("/broken")] = Route(status=500)
    sched = scheduler_for(make_config(tmp_path, [*urls, web.url("/broken")], max_interval="1h"))
    sched.tick()
    clock.advance(hours=2)
    caplog.clear()
    with caplog.at_level("INFO"):
        report = sched.tick()
    assert report.not_modified == 3 and report.failed == 1
    info = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    polls = [m for m in info if m.startswith("poll ")]
    assert len(polls) == 1 and "source=broken status=failed" in polls[0]  # 304s: not at INFO
    (tick,) = [m for m in info if m.startswith("tick ")]
    assert "not_modified=3 failed=1" in tick and "duration_ms=" in tick and "slowest=" in tick
    with caplog.at_level("DEBUG", logger="aggregator.pipeline"):
        clock.advance(hours=2)
        sched.tick()
    assert any("status=not_modified" in r.getMessage() for r in caplog.records)
