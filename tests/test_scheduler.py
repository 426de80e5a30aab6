"""The tick against a real HTTP server on 127.0.0.1, with an injected clock; next_check is pure."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aggregator.config import Config, parse_config
from aggregator.pipeline import render_outputs
from aggregator.render import RenderReport
from aggregator.schedule import next_check
from aggregator.scheduler import Scheduler, build_scheduler, interleave_by_host
from aggregator.store import SqlStore, open_store

from .conftest import Clock
from .feedserver import FeedServer, Route, rss, running_feed_server

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
Build = Callable[[Config], Scheduler]
H = 3600.0


# -- next_check (pure) ----------------------------------------------------------------------------


def nc(interval_s: float = 1800.0, key: str = "s@t0", **kw: Any) -> datetime:
    return next_check(T0, interval_s, key=key, floor_s=300.0, ceiling_s=86400.0, **kw)


def test_interval_max_age_and_ttl() -> None:
    assert nc() == T0 + timedelta(minutes=30)
    assert nc(max_age_s=2 * H) == T0 + timedelta(hours=2)  # the server says: no news before
    assert nc(max_age_s=60) == T0 + timedelta(minutes=30)  # never more often than the interval
    assert nc(ttl_s=3 * H) == T0 + timedelta(hours=3)


def test_backoff_doubles_per_failure_up_to_the_ceiling_and_resets() -> None:
    waits = [nc(failures=f) - T0 for f in range(8)]
    assert waits[:4] == [timedelta(minutes=30 * 2**f) for f in range(4)]
    assert waits[7] == timedelta(hours=24)  # capped
    assert nc(failures=0) == T0 + timedelta(minutes=30)


def test_floor_and_ceiling() -> None:
    assert nc(interval_s=10) == T0 + timedelta(minutes=5)
    assert nc(max_age_s=30 * 86400) == T0 + timedelta(days=1)


def test_retry_after_is_honoured_beyond_the_ceiling_up_to_a_week() -> None:
    assert nc(retry_after_s=2 * 86400) == T0 + timedelta(days=2)
    assert nc(retry_after_s=30 * 86400) == T0 + timedelta(days=7)
    assert nc(retry_after_s=10) == T0 + timedelta(minutes=30)


def test_jitter_is_bounded_stable_and_spreads_sources() -> None:
    times = {nc(jitter=0.1, key=f"s{i}@t0") for i in range(20)}
    assert all(T0 + timedelta(minutes=30) <= t <= T0 + timedelta(minutes=33) for t in times)
    assert len(times) == 20
    assert nc(jitter=0.1, key="a@t0") == nc(jitter=0.1, key="a@t0")


def test_skip_hours_and_days_move_the_check_out() -> None:
    assert nc(skip_hours=(12, 13)) == datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
    thursday = T0.weekday()
    assert nc(skip_days=(thursday,)) == datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
    assert nc(skip_hours=tuple(range(24))) == T0 + timedelta(minutes=30)  # nonsense: ignored


def test_interleave_by_host() -> None:
    cfg = parse_config(
        {"sources": [{"id": i, "url": f"https://{h}/{i}"} for i, h in
                     [("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b"), ("c1", "c")]]},
        path=Path("/tmp/x.toml"),
    )  # fmt: skip
    order = interleave_by_host([(s.url.split("/")[2], s) for s in cfg.sources])
    assert [s.id for s in order] == ["a1", "b1", "c1", "a2", "a3"]


# -- ticks against a real server ------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with running_feed_server() as srv:
        yield srv


def make_config(tmp_path: Path, server: FeedServer, paths: list[str], **poll: object) -> Config:
    data = {
        "storage": {"url": f"sqlite:///{tmp_path / 'db.sqlite'}"},
        "output": {"dir": str(tmp_path / "public")},
        "poll": {"interval": "30m", "jitter": 0, "read_timeout": "0.5s", **poll},
        "sources": [{"id": p.strip("/").replace("/", "-"), "url": server.url(p)} for p in paths],
    }
    return parse_config(data, path=tmp_path / "c.toml")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    s = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield s
    s.close()


@pytest.fixture
def scheduler_for(store: SqlStore, clock: Clock) -> Iterator[Build]:
    made: list[Scheduler] = []

    def build(config: Config) -> Scheduler:
        sched = build_scheduler(config, store, clock=lambda: clock.now)
        sched.start()
        made.append(sched)
        return sched

    yield build
    for sched in made:
        sched.close()


FEED = rss("Feed", [("1", "one"), ("2", "two")])


@pytest.mark.slow
def test_second_tick_sends_only_conditional_gets_and_writes_nothing(
    tmp_path: Path,
    server: FeedServer,
    scheduler_for: Build,
    clock: Clock,
) -> None:
    server.routes = {
        f"/f{i}": Route(body=rss(f"Feed {i}", [(f"{i}-1", f"one {i}"), (f"{i}-2", f"two {i}")]))
        for i in range(5)
    }
    config = make_config(tmp_path, server, [f"/f{i}" for i in range(5)])
    sched = scheduler_for(config)
    first = sched.tick()
    assert first.due == 5 and first.rendered and sum(o.result.new for o in first.outcomes) == 10
    outputs = {p: p.stat().st_mtime_ns for p in (tmp_path / "public").iterdir()}
    assert sched.tick().due == 0  # nothing is due before its interval
    clock.advance(minutes=31)
    second = sched.tick()
    assert second.due == 5 and {o.status for o in second.outcomes} == {"not_modified"}
    assert {o.http_status for o in second.outcomes} == {304}
    assert not second.rendered
    later = server.requests[5:]
    assert len(later) == 5 and all("if-none-match" in r.headers for r in later)
    assert {p: p.stat().st_mtime_ns for p in outputs} == outputs


@pytest.mark.slow
def test_unchanged_body_without_conditional_get_skips_parsing(
    tmp_path: Path,
    server: FeedServer,
    scheduler_for: Build,
    clock: Clock,
) -> None:
    server.routes = {"/plain": Route(body=FEED, conditional=False)}
    sched = scheduler_for(make_config(tmp_path, server, ["/plain"]))
    sched.tick()
    clock.advance(hours=1)
    (outcome,) = sched.tick().outcomes
    assert (outcome.status, outcome.http_status) == ("not_modified", 200)


@pytest.mark.slow
def test_permanent_redirect_updates_the_url_temporary_does_not(
    tmp_path: Path,
    server: FeedServer,
    scheduler_for: Build,
    store: SqlStore,
    clock: Clock,
) -> None:
    server.routes = {
        "/old": Route(status=301, location=server.url("/new")),
        "/new": Route(body=FEED),
        "/tmp": Route(status=302, location=server.url("/new2")),
        "/new2": Route(body=rss("Other", [("9", "nine")])),
    }
    sched = scheduler_for(make_config(tmp_path, server, ["/old", "/tmp"]))
    sched.tick()
    old, tmp = store.source_state("old"), store.source_state("tmp")
    assert old is not None and old.url == server.url("/new")
    assert tmp is not None and tmp.url == server.url("/tmp")
    clock.advance(hours=1)
    sched.tick()
    assert server.count("/old") == 1 and server.count("/tmp") == 2  # polled at the new URL


@pytest.mark.slow
def test_gone_disables_the_source(
    tmp_path: Path,
    server: FeedServer,
    scheduler_for: Build,
    store: SqlStore,
    clock: Clock,
) -> None:
    server.routes = {"/gone": Route(status=410)}
    sched = scheduler_for(make_config(tmp_path, server, ["/gone"]))
    (outcome,) = sched.tick().outcomes
    assert outcome.status == "gone"
    state = store.source_state("gone")
    assert state is not None and state.status == "gone" and state.next_check_at is None
    clock.advance(days=30)
    assert sched.tick().due == 0 and server.count("/gone") == 1


@pytest.mark.slow
def test_429_retry_after_and_500_backoff(
    tmp_path: Path,
    server: FeedServer,
    scheduler_for: Build,
    store: SqlStore,
    clock: Clock,
) -> None:
    server.routes = {
        "/busy": Route(status=429, headers={"Retry-After": "7200"}),
        "/broken": Route(status=500, body=b"oops"),
    }
    sched = scheduler_for(make_config(tmp_path, server, ["/busy", "/broken"]))
    sched.tick()
    busy, broken = store.source_state("busy"), store.source_state("broken")
    assert busy is not None and busy.next_check_at == T0 + timedelta(hours=2)  # Retry-After
    assert (
        broken is not None
        and broken.failures == 1
        and broken.next_check_at == T0 + timedelta(hours=1)
    )
    assert broken.last_error is not None and "HTTP 500" in broken.last_error
    clock.advance(hours=1)
    sched.tick()
    broken = store.source_state("broken")
    assert broken is not None and broken.failures == 2
    assert broken.next_check_at == clock.now + timedelta(hours=2)
    server.routes["/broken"] = Route(body=FEED)
    clock.advance(hours=2)
    sched.tick()
    broken = store.source_state("broken")
    assert broken is not None and (broken.failures, broken.status) == (0, "ok")
    assert broken.next_check_at == clock.now + timedelta(minutes=30)  # backoff reset


@pytest.mark.slow
def test_slow_oversized_bomb_and_file_redirect_fail_alone(
    tmp_path: Path,
    server: FeedServer,
    scheduler_for: Build,
    store: SqlStore,
) -> None:
    server.routes = {
        "/slow": Route(body=FEED, block=server.released),  # never answers during the test
        "/big": Route(body=b"<rss>" + b" " * 3000 + b"</rss>"),
        "/bomb": Route(body=b"<rss>" + b"\0" * 500_000, gzip=True),
        "/file": Route(status=301, location="file:///etc/passwd"),
        "/ok": Route(body=FEED),
    }
    config = make_config(
        tmp_path, server, ["/slow", "/big", "/bomb", "/file", "/ok"], max_bytes=2048
    )
    report = scheduler_for(config).tick()
    errors = {o.source_id: o.error or "" for o in report.outcomes}
    assert "ReadTimeout" in errors["slow"]
    assert "cap" in errors["big"]
    assert "decoded" in errors["bomb"] and len(gzip.compress(b"\0" * 500_000)) < 2048
    assert "non-http" in errors["file"]
    assert errors["ok"] == "" and report.rendered


@pytest.mark.slow
def test_per_host_cap_bounds_requests_in_flight(
    tmp_path: Path,
    server: FeedServer,
    scheduler_for: Build,
) -> None:
    # Each request stays in flight until a third one would be (a broken cap), or 0.2 s.
    server.routes = {f"/h{i}": Route(body=FEED, hold_s=0.2) for i in range(6)}
    config = make_config(tmp_path, server, [f"/h{i}" for i in range(6)], per_host=2)
    report = scheduler_for(config).tick()
    assert len(report.outcomes) == 6 and server.max_in_flight == 2


@pytest.mark.slow
def test_fetching_does_not_block_storing(
    tmp_path: Path,
    server: FeedServer,
    scheduler_for: Build,
    store: SqlStore,
) -> None:
    fast_stored = threading.Event()
    server.routes = {
        "/slow": Route(body=FEED, block=fast_stored),
        "/fast": Route(body=rss("F", [("f", "fast")])),
    }
    real_apply = store.apply

    def apply(source_id, *args, **kwargs):  # type: ignore[no-untyped-def]
        result = real_apply(source_id, *args, **kwargs)
        if source_id == "fast":
            fast_stored.set()  # only now may the slow response be sent
        return result

    store.apply = apply  # type: ignore[method-assign]
    report = scheduler_for(
        make_config(tmp_path, server, ["/slow", "/fast"], read_timeout="10s")
    ).tick()
    assert [o.source_id for o in report.outcomes] == ["fast", "slow"]
    assert all(o.status == "ok" for o in report.outcomes)


@pytest.mark.slow
def test_reload_adds_and_removes_sources(
    tmp_path: Path,
    server: FeedServer,
    scheduler_for: Build,
    store: SqlStore,
    clock: Clock,
) -> None:
    server.routes = {
        "/a": Route(body=rss("A", [("a1", "Story from A only")])),
        "/b": Route(body=rss("B", [("b1", "Story from B")])),
    }
    sched = scheduler_for(make_config(tmp_path, server, ["/a"]))
    sched.tick()
    new = parse_config(
        {
            **_raw(tmp_path, server, ["/b"]),
            "storage": {"url": f"sqlite:///{tmp_path / 'db.sqlite'}", "keep_removed": False},
        },
        path=tmp_path / "c.toml",
    )
    assert sched.reload(new) == ("a",)
    report = sched.tick()  # b is due at once, before any interval passed
    assert [o.source_id for o in report.outcomes] == ["b"] and report.rendered
    assert [s.source_id for s in store.source_states()] == ["b"]
    assert [e.title for e in store.recent_entries(["a", "b"], limit=10)] == ["Story from B"]


def _raw(tmp_path: Path, server: FeedServer, paths: list[str]) -> dict[str, object]:
    return {
        "output": {"dir": str(tmp_path / "public")},
        "poll": {"interval": "30m", "jitter": 0},
        "sources": [{"id": p.strip("/"), "url": server.url(p)} for p in paths],
    }


@pytest.mark.slow
def test_stop_abandons_in_flight_fetches_quickly(
    tmp_path: Path,
    server: FeedServer,
    scheduler_for: Build,
) -> None:
    server.routes = {"/stuck": Route(body=FEED, block=server.released), "/ok": Route(body=FEED)}
    sched = scheduler_for(make_config(tmp_path, server, ["/stuck", "/ok"], read_timeout="30s"))
    sched.drain_s = 0.1
    sched.stop()  # asked to stop before the tick: nothing new starts, in-flight is abandoned
    report = sched.tick()
    assert report.abandoned + len(report.outcomes) == 2 and report.abandoned >= 1


@pytest.mark.slow
def test_fast_sources_are_published_before_slow_ones_finish(
    tmp_path: Path, server: FeedServer, scheduler_for: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = threading.Event()
    server.routes = {
        "/slow": Route(body=rss("S", [("s", "slow story")]), block=published),
        "/fast": Route(body=rss("F", [("f", "fast story")])),
    }
    sched = scheduler_for(make_config(tmp_path, server, ["/slow", "/fast"], read_timeout="10s"))
    sched.render_every_s = 0.0
    seen_in_outputs: list[bytes] = []

    def render(config: Config, store: SqlStore) -> tuple[RenderReport, ...]:
        done = render_outputs(config, store)
        seen_in_outputs.append((tmp_path / "public" / "all.json").read_bytes())
        published.set()  # only now may the slow source answer
        return done

    monkeypatch.setattr("aggregator.scheduler.render_outputs", render)
    report = sched.tick()
    assert [o.source_id for o in report.outcomes] == ["fast", "slow"]
    assert b"fast story" in seen_in_outputs[0] and b"slow story" not in seen_in_outputs[0]
    assert b"slow story" in seen_in_outputs[-1]


@pytest.mark.slow
def test_server_freshness_sets_the_next_check(
    tmp_path: Path, server: FeedServer, scheduler_for: Build, store: SqlStore
) -> None:
    server.routes = {
        "/fresh": Route(body=FEED, headers={"Cache-Control": "public, max-age=7200"}),
        "/ttl": Route(body=rss("T", [("t", "ttl story")], extra="<ttl>180</ttl>")),
    }
    sched = scheduler_for(make_config(tmp_path, server, ["/fresh", "/ttl"]))
    sched.tick()
    fresh, ttl = store.source_state("fresh"), store.source_state("ttl")
    assert fresh is not None and fresh.next_check_at == T0 + timedelta(hours=2)
    assert ttl is not None and ttl.next_check_at == T0 + timedelta(hours=3)
    assert all("if-modified-since" not in r.headers for r in server.requests)


@pytest.mark.slow
def test_conditional_get_sends_both_validators(
    tmp_path: Path, server: FeedServer, scheduler_for: Build, clock: Clock
) -> None:
    server.routes = {"/f": Route(body=FEED)}
    sched = scheduler_for(make_config(tmp_path, server, ["/f"]))
    sched.tick()
    clock.advance(hours=1)
    sched.tick()
    headers = server.requests[-1].headers
    assert headers["if-none-match"] == server.routes["/f"].etag
    assert headers["if-modified-since"] == server.routes["/f"].last_modified
    assert headers["user-agent"].startswith("aggregator")


def test_offline_ticks_pick_up_a_changed_fixture(
    tmp_path: Path, store: SqlStore, clock: Clock
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
    sched = build_scheduler(config, store, offline=True, clock=lambda: clock.now)
    sched.start()
    assert sched.tick().outcomes[0].result.new == 1
    clock.advance(hours=1)
    assert sched.tick().outcomes[0].status == "not_modified"
    fixture.write_bytes(rss("Local", [("1", "second version")]))
    clock.advance(hours=1)
    (outcome,) = sched.tick().outcomes
    assert (outcome.status, outcome.result.updated) == ("ok", 1)
    assert [e.title for e in store.recent_entries(["local"], limit=5)] == ["second version"]


@pytest.mark.slow
def test_large_ticks_parse_in_worker_processes(
    tmp_path: Path, store: SqlStore, clock: Clock
) -> None:
    from aggregator.scheduler import POOL_MIN_SOURCES

    sources = []
    for i in range(POOL_MIN_SOURCES + 2):
        path = tmp_path / f"f{i}.xml"
        body = rss(f"Feed {i}", [(f"{i}-a", f"story a of {i}"), (f"{i}-b", f"story b of {i}")])
        path.write_bytes(body if i != 7 else body[:80])  # one truncated: fails alone
        sources.append({"id": f"f{i}", "url": f"https://h{i}.example/feed", "fixture": str(path)})
    config = parse_config({"output": {"dir": str(tmp_path / "public")}, "sources": sources},
                          path=tmp_path / "c.toml")  # fmt: skip
    sched = build_scheduler(config, store, offline=True, clock=lambda: clock.now)
    sched.start()
    try:
        report = sched.tick()
        assert sched._pool is not None  # the bodies went to the workers
    finally:
        sched.close()
    assert [o.source_id for o in report.outcomes] == [s["id"] for s in sources]  # config order
    failed = [o for o in report.outcomes if not o.ok]
    assert [o.source_id for o in failed] == ["f7"] and "f7:" in (failed[0].error or "")
    assert sum(o.result.new for o in report.outcomes) == 2 * (len(sources) - 1)


@pytest.mark.slow
def test_fetching_waits_for_storing_backpressure(
    tmp_path: Path, server: FeedServer, scheduler_for: Build, store: SqlStore
) -> None:
    server.routes = {
        f"/b{i}": Route(body=rss(f"B{i}", [(f"b{i}", f"story {i}")])) for i in range(30)
    }
    sched = scheduler_for(
        make_config(tmp_path, server, [f"/b{i}" for i in range(30)], max_concurrency=1)
    )
    sched.parse_workers = 1  # pending slots: max(2 * 1, 4 * 1) = 4
    seen_at_apply: list[int] = []
    real_apply = store.apply

    def apply(*args, **kwargs):  # type: ignore[no-untyped-def]
        if not seen_at_apply:  # a slow first store: would the fetches run ahead meanwhile?
            with server._cond:
                server._cond.wait_for(lambda: len(server.requests) >= 12, timeout=1.0)
        seen_at_apply.append(len(server.requests))
        return real_apply(*args, **kwargs)

    store.apply = apply  # type: ignore[method-assign]
    report = sched.tick()
    assert len(report.outcomes) == 30
    # At most 4 documents wait to be stored, plus one held by the (single) fetch worker while
    # it waits for a slot: the fetches never run further ahead than that.
    assert all(seen <= stored + 4 + 1 for stored, seen in enumerate(seen_at_apply))
    assert max(seen - stored for stored, seen in enumerate(seen_at_apply)) == 5
