"""/status and /status.json (#13): the daemon's health on top, every source failing first, and
the immutable archive pages, served by the daemon itself on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from lxml import html

from aggregator.config import load_config
from aggregator.daemon import Daemon
from aggregator.metrics import Metrics
from aggregator.render.status import DaemonStatus, StatusReport, render_status_json, source_rows
from aggregator.store import open_store
from aggregator.systemd import Notifier
from aggregator.types import SourceState

from .sitekit import SiteKit, items

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Daemon, str]]:
    kit = SiteKit(tmp_path)
    kit.feed("good", "Good source", items("good", 12))
    broken = kit.feed("broken", "Broken", [])
    broken.write_bytes((ROOT / "seeds" / "feeds" / "rss2-truncated-invalid.xml").read_bytes())
    port = free_port()
    kit.write_config([("good", "tech"), ("broken", "news")], port=port,
                     output="archive_page_size = 5")  # fmt: skip
    config = load_config(tmp_path / "aggregator.toml")
    store = open_store(config.storage.url)
    daemon = Daemon(config, store, Metrics(), Notifier(env={}), offline=True)
    daemon.start()
    try:
        deadline = time.monotonic() + 30
        while daemon.last_report is None:
            assert time.monotonic() < deadline, "no tick"
            time.sleep(0.05)
        yield daemon, f"http://127.0.0.1:{port}"
    finally:
        daemon.stop()
        daemon.scheduler.close()
        store.close()


def test_status_json_has_the_daemon_then_every_source_failing_first(
    served: tuple[Daemon, str],
) -> None:
    _, base = served
    response = httpx.get(f"{base}/status.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    status = response.json()
    daemon = status["daemon"]
    assert daemon["healthy"] is True and daemon["detail"].startswith("last tick")
    assert daemon["last_tick_at"] is not None and daemon["tick_duration_s"] > 0
    assert daemon["last_tick"] == {"due": 2, "ok": 1, "failed": 1, "deferred": 0, "new": 12,
                                   "updated": 0}  # fmt: skip
    assert (daemon["due_now"], daemon["sources"], daemon["failing"]) == (0, 2, 1)
    assert [s["id"] for s in status["sources"]] == ["broken", "good"]
    broken, good = status["sources"]
    assert broken["status"] == "failed" and "broken:" in broken["last_error"]
    assert broken["next_check_why"] and broken["next_check"] > good["last_poll"]
    assert (good["status"], good["http_status"], good["entries"]) == ("ok", 200, 12)
    assert good["group"] == "tech" and good["last_error"] is None


def test_status_page_shows_health_on_top_and_failing_sources_first(
    served: tuple[Daemon, str],
) -> None:
    _, base = served
    response = httpx.get(f"{base}/status", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-encoding"] == "gzip"
    doc = html.fromstring(response.content)
    cards = [c.xpath("string(h2)") for c in doc.xpath("//section[@class='health']/div")]
    assert cards[:3] == ["Daemon", "Last tick", "Queue"]
    assert doc.xpath("string(//section[@class='health']/div[1]/p[@class='big'])") == "healthy"
    rows = doc.xpath("//table[@class='sources']/tbody/tr")
    assert [r.get("id") for r in rows] == ["source-broken", "source-good"]
    assert "failing" in rows[0].get("class")
    assert "not a readable feed" in rows[0].xpath("string(td[@class='error'])")
    etag = response.headers["etag"]
    again = httpx.get(f"{base}/status", headers={"If-None-Match": etag, "Accept-Encoding": "gzip"})
    assert again.status_code in (200, 304)  # 304 unless a relative time moved on


def test_river_and_archives_are_served_with_the_right_caching(
    served: tuple[Daemon, str],
) -> None:
    _, base = served
    river = httpx.get(f"{base}/")
    assert river.status_code == 200 and river.headers["cache-control"] == "no-cache"
    assert "Good story number 11" in river.text
    assert httpx.get(f"{base}/outputs.opml").headers["content-type"] == "text/x-opml; charset=utf-8"
    page = httpx.get(f"{base}/archive/all/2.atom")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "public, max-age=31536000, immutable"
    etag = page.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert (
        httpx.get(f"{base}/archive/all/2.atom", headers={"If-None-Match": etag}).status_code == 304
    )
    assert httpx.get(f"{base}/archive/all/3.atom").status_code == 404  # not full yet
    assert httpx.get(f"{base}/all.atom").headers["cache-control"] == "no-cache"


def test_status_rows_and_json_are_pure() -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

    def state(sid: str, status: str) -> SourceState:
        return SourceState(sid, f"https://x.example/{sid}", None, f"Feed {sid}", None, None, None,
                           None, now, None, status, 200, 0, None, now + timedelta(minutes=5), 3,
                           True, next_check_why="interval")  # fmt: skip

    states = [state("b", "ok"), state("a", "ok"), state("z", "gone"), state("gone-elsewhere", "ok")]
    rows = source_rows(states, {"a": None, "b": "g", "z": None})
    assert [r.source_id for r in rows] == ["z", "a", "b"]  # failing first; unconfigured left out
    assert rows[0].title == "Feed z"
    daemon = DaemonStatus(healthy=False, detail="no tick yet", sources=3, due_now=0,
                          tick_every_s=30)  # fmt: skip
    data = json.loads(render_status_json(StatusReport(daemon, rows), now=now))
    assert data["generated_at"] == "2026-11-28T12:00:00Z"
    assert data["daemon"]["last_tick_at"] is None and data["daemon"]["failing"] == 1
    assert data["sources"][0]["next_check"] == "2026-11-28T12:05:00Z"
