"""WebSub (#13): outputs advertise the hub and themselves; the daemon pings the hub when an
output changes, from the background, so a hub that is down or slow never holds up a tick."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import feedparser
import pytest

from aggregator.config import load_config
from aggregator.daemon import Daemon
from aggregator.metrics import Metrics
from aggregator.render import RenderReport
from aggregator.scheduler import run_once
from aggregator.store import SqlStore, open_store
from aggregator.systemd import Notifier
from aggregator.websub import HubPinger, changed_topics

from .fakehub import FakeHub, running_hub
from .sitekit import T0, SiteKit, items

pytestmark = pytest.mark.slow
BASE = "http://127.0.0.1:8080/"


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with running_hub() as fake:
        yield fake


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/hub"


def test_changed_topics_are_the_feeds_written_never_archives_or_pages() -> None:
    renders = (
        RenderReport(written=("all.atom", "all.rss", "markdown/all/x.md", "archive/all/1.atom")),
        RenderReport(written=("groups/新闻.json", "index.html", "outputs.opml"),
                     unchanged=("all.json",)),
    )  # fmt: skip
    assert changed_topics(BASE, renders) == (
        f"{BASE}all.atom", f"{BASE}all.rss", f"{BASE}groups/新闻.json",
    )  # fmt: skip


def test_pinger_posts_a_form_encoded_publish_per_topic(hub: FakeHub) -> None:
    pinger = HubPinger(hub.url)
    try:
        pinger.publish([f"{BASE}all.atom", f"{BASE}groups/新闻.atom"])
        assert pinger.wait_idle(10)
    finally:
        pinger.close()
    assert hub.pings == [
        {"hub.mode": ["publish"], "hub.url": [f"{BASE}all.atom"]},
        {"hub.mode": ["publish"], "hub.url": [f"{BASE}groups/新闻.atom"]},
    ]
    assert set(hub.content_types) == {"application/x-www-form-urlencoded"}
    assert (pinger.sent, pinger.failed) == (2, 0)


def test_a_slow_hub_never_blocks_publish_and_repeats_collapse() -> None:
    with running_hub(delay_s=30) as slow:
        pinger = HubPinger(slow.url, timeout_s=0.5)
        try:
            started = time.monotonic()
            for _ in range(20):  # twenty ticks' worth while the hub hangs
                pinger.publish([f"{BASE}all.atom"])
            assert time.monotonic() - started < 0.1
            assert pinger.wait_idle(5)
        finally:
            pinger.close()
        assert 1 <= len(slow.pings) <= 2  # the one in flight, then one for all the repeats
        assert pinger.failed == len(slow.pings)  # each timed out after 0.5 s


def test_a_hub_that_is_down_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    pinger = HubPinger(closed_port_url(), timeout_s=1)
    try:
        pinger.publish([f"{BASE}all.atom"])
        assert pinger.wait_idle(5)
    finally:
        pinger.close()
    assert pinger.failed == 1
    assert any("websub: hub" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)  # fmt: skip


def test_a_refusing_hub_is_counted() -> None:
    with running_hub(status=400) as refusing:
        pinger = HubPinger(refusing.url)
        try:
            pinger.publish([f"{BASE}all.atom"])
            assert pinger.wait_idle(5)
        finally:
            pinger.close()
    assert (pinger.sent, pinger.failed) == (0, 1)


def site(tmp_path: Path, hub_url: str, *, port: int = 8080) -> SiteKit:
    kit = SiteKit(tmp_path)
    kit.feed("a", "Source A", items("a", 3))
    kit.write_config([("a", "tech")], port=port, output=f'websub_hub = "{hub_url}"',
                     extra="", outputs="")  # fmt: skip
    return kit


def test_every_feed_advertises_the_hub_and_itself(tmp_path: Path) -> None:
    kit = site(tmp_path, "https://hub.example.org/")
    config = load_config(kit.root / "aggregator.toml")
    store = open_store(config.storage.url)
    try:
        run_once(config, store, now=T0 + timedelta(days=1), offline=True)
    finally:
        store.close()
    out = config.output.dir
    for name in ("all.atom", "all.rss", "groups/tech.atom", "groups/tech.rss"):
        parsed = feedparser.parse((out / name).read_bytes())
        rels = {link.rel: link.href for link in parsed.feed.links}
        assert rels["hub"] == "https://hub.example.org/", name
        assert rels["self"] == f"{BASE}{name}", name
    for name in ("all.json", "groups/tech.json"):
        feed = json.loads((out / name).read_bytes())
        assert feed["hubs"] == [{"type": "WebSub", "url": "https://hub.example.org/"}]
        assert feed["feed_url"] == f"{BASE}{name}"


def start_daemon(kit: SiteKit) -> tuple[Daemon, SqlStore]:
    config = load_config(kit.root / "aggregator.toml")
    store = open_store(config.storage.url)
    daemon = Daemon(config, store, Metrics(), Notifier(env={}), offline=True)
    daemon.start()
    return daemon, store


def stop_daemon(daemon: Daemon, store: SqlStore) -> None:
    daemon.stop()
    daemon.scheduler.close()
    store.close()


def wait_for_tick(daemon: Daemon, count: int = 1, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    # The tick counts itself (scheduler) before the daemon keeps its report: wait for both.
    while (
        daemon.metrics.registry.get_sample_value("aggregator_ticks_total") or 0
    ) < count or daemon.last_report is None:
        assert time.monotonic() < deadline, "no tick"
        time.sleep(0.05)


def test_the_daemon_pings_the_hub_for_each_changed_feed(tmp_path: Path, hub: FakeHub) -> None:
    kit = site(tmp_path, hub.url)
    (tmp_path / "aggregator.toml").write_text(
        (tmp_path / "aggregator.toml")
        .read_text()
        .replace("[server]\n", "[server]\nenabled = false\n"),
        encoding="utf-8",
    )
    daemon, store = start_daemon(kit)
    try:
        wait_for_tick(daemon)
        assert hub.wait_for(6)
        assert sorted(hub.topics()) == sorted(
            f"{BASE}{name}" for name in ("all.atom", "all.rss", "all.json",
                                         "groups/tech.atom", "groups/tech.rss", "groups/tech.json")
        )  # fmt: skip
        daemon.reload()  # re-renders at the next tick: nothing changed, nothing pinged
        wait_for_tick(daemon, 2)
        assert daemon.pinger is not None and daemon.pinger.wait_idle(5)
        assert len(hub.pings) == 6
    finally:
        stop_daemon(daemon, store)


def test_a_hanging_hub_never_holds_up_a_tick_or_the_stop(tmp_path: Path) -> None:
    with running_hub(delay_s=60) as hanging:
        kit = site(tmp_path, hanging.url)
        path = tmp_path / "aggregator.toml"
        path.write_text(path.read_text().replace("[server]\n", "[server]\nenabled = false\n"),
                        encoding="utf-8")  # fmt: skip
        daemon, store = start_daemon(kit)
        try:
            wait_for_tick(daemon)
            assert daemon.last_report is not None and daemon.last_report.rendered
            assert daemon.last_report.duration_s < 5
            assert hanging.wait_for(1)  # the ping is out, and hangs
        finally:
            started = time.monotonic()
            stop_daemon(daemon, store)
            assert time.monotonic() - started < 5
