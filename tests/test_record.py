"""`aggregator record` against a real server on 127.0.0.1, and what replays it (#14)."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from aggregator.cli import main
from aggregator.config import load_config
from aggregator.daemon import Daemon
from aggregator.errors import FetchError
from aggregator.fetch import Http, fetch
from aggregator.metrics import Metrics
from aggregator.recording import Exchange, Recording, load_recording
from aggregator.replay import Replayer, ReplayTransport
from aggregator.store import open_store
from aggregator.systemd import Notifier

from .feedserver import FeedServer, Route, rss, running_feed_server

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _config(where: Path, server: FeedServer) -> Path:
    sources = {
        "plain": server.url("/plain.xml"),
        "moved": server.url("/old.xml"),
        "going": server.url("/going.xml"),
        "down": f"http://127.0.0.1:{_closed_port()}/feed.xml",
    }
    text = f'[storage]\nurl = "sqlite:///{where}/db.sqlite"\n[output]\ndir = "{where}/public"\n'
    text += "".join(f'[[sources]]\nid = "{i}"\nurl = "{u}"\n' for i, u in sources.items())
    path = where / "aggregator.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _outputs(where: Path) -> dict[str, bytes]:
    return {str(p.relative_to(where)): p.read_bytes() for p in where.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_record_two_rounds_then_replay_them_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = tmp_path / "rec"
    with running_feed_server() as server:
        server.routes["/plain.xml"] = Route(body=rss("Plain", [("p1", "One story"), ("p2", "x")]))
        server.routes["/old.xml"] = Route(status=301, location=server.url("/new.xml"))
        server.routes["/new.xml"] = Route(body=rss("Moved", [("m1", "Moved story")]))
        server.routes["/going.xml"] = Route(body=rss("Going", [("g1", "Going story")]))
        cfg = _config(tmp_path, server)
        assert main(["-c", str(cfg), "record", str(rec)]) == 0
        server.routes["/going.xml"] = Route(status=410)
        assert main(["-c", str(cfg), "record", str(rec), "--sources", "plain", "going"]) == 0
        assert server.count("/old.xml") == 1  # round 2 did not poll "moved"
    out = capsys.readouterr().out
    assert "recorded round 2 in" in out and "2 sources, 2 responses (1 x 304, 1 x 410)" in out
    recording = load_recording(rec)
    assert [r.sources for r in recording.rounds] == [
        ("plain", "moved", "going", "down"), ("plain", "going")
    ]  # fmt: skip
    first, second = recording.of_round(1), recording.of_round(2)
    assert [(e.source_id, e.status) for e in first] == [
        ("plain", 200), ("moved", 301), ("moved", 200), ("going", 200), ("down", None)
    ]  # fmt: skip
    assert first[-1].error is not None and first[-1].error.startswith("ConnectError: ")
    assert recording.body(first[0]).startswith(b'<?xml version="1.0"')
    plain_304 = second[0]
    assert plain_304.status == 304 and plain_304.body is None
    assert plain_304.sent["if-none-match"] == first[0].headers["etag"]  # validators of round 1
    assert (tmp_path / "db.sqlite").exists() is False  # the user's database is not touched

    played = []
    for _ in range(2):
        (tmp_path / "db.sqlite").unlink(missing_ok=True)
        assert main(["-c", str(cfg), "--log-level", "ERROR", "once", "--replay", str(rec)]) == 0
        played.append(_outputs(tmp_path / "public"))
        for path in (tmp_path / "public").rglob("*"):
            if path.is_file():
                path.unlink()
    assert played[0] and played[0] == played[1]
    out = capsys.readouterr()
    assert "round 2 (" in out.out and "1 failed" in out.out
    assert "FAILED down: ConnectError: " in out.err and "FAILED going: HTTP 410 gone" in out.err
    store = open_store(f"sqlite:///{tmp_path}/db.sqlite")
    try:
        moved, going = store.source_state("moved"), store.source_state("going")
        assert moved is not None and moved.url.endswith("/new.xml")
        assert going is not None and going.status == "gone"
    finally:
        store.close()
    assert main(["-c", str(cfg), "sources", "show", "moved", "--json"]) == 0
    (poll,) = json.loads(capsys.readouterr().out)["history"]
    assert poll["redirects"] == [f"301 {moved.url}"] and poll["sent"]["etag"] is None
    assert poll["received"]["etag"] == first[2].headers["etag"]


def test_record_refuses_an_unknown_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[sources]]\nid = "a"\nurl = "http://127.0.0.1:9/a.xml"\n', encoding="utf-8")
    assert main(["-c", str(cfg), "record", str(tmp_path / "r"), "--sources", "nope"]) == 2
    assert "not an enabled source" in capsys.readouterr().err
    assert main(["-c", str(cfg), "once", "--replay", str(tmp_path / "r"), "--offline"]) == 2


def _recording(*exchanges: Exchange) -> Recording:
    return Recording(Path("/nonexistent"), (), exchanges)


def _fetch(transport: ReplayTransport, url: str) -> object:
    async def go() -> object:
        try:
            return await fetch(Http(transport, user_agent="t"), "s", url)
        except FetchError as exc:
            return exc

    return asyncio.run(go())


def test_replayed_errors_fail_as_they_did() -> None:
    url = "http://feeds.test/a.xml"
    transport = ReplayTransport(_recording(
        Exchange(1, T0, "s", url, error="TimeoutError: no complete answer in time"),
        Exchange(2, T0, "s", url, error="ReadTimeout: timed out"),
    ))  # fmt: skip
    transport.play(1)
    timeout = _fetch(transport, url)
    assert isinstance(timeout, FetchError) and timeout.timed_out
    assert str(timeout).endswith("total timeout: no complete answer in 30s")
    transport.play(2)
    read = _fetch(transport, url)
    assert isinstance(read, FetchError) and read.timed_out and "ReadTimeout" in str(read)
    unknown = _fetch(transport, url)  # round 2 has no second response for it
    assert isinstance(unknown, FetchError) and "no response recorded for" in str(unknown)


def test_replayed_304_carries_its_headers() -> None:
    url = "http://feeds.test/a.xml"
    recorded = Exchange(1, T0, "s", url, {"if-none-match": '"x"'}, 304, {"etag": '"x"'})
    transport = ReplayTransport(_recording(recorded))
    transport.play(1)

    async def go() -> httpx.Response:
        request = httpx.Request("GET", url, headers={"If-None-Match": '"x"'})
        return await transport.handle_async_request(request)

    response = asyncio.run(go())
    assert response.status_code == 304 and response.headers["etag"] == '"x"'


def test_run_replay_ticks_through_the_rounds(tmp_path: Path) -> None:
    seed = Path(__file__).resolve().parent.parent / "seeds" / "recorded" / "newsroom"
    text = (seed.parent.parent.parent / "config" / "recorded.toml").read_text(encoding="utf-8")
    text = text.replace('"sqlite:///../state/recorded.db"', f'"sqlite:///{tmp_path}/db.sqlite"')
    text = text.replace('"../public/recorded"', f'"{tmp_path}/public"')
    (tmp_path / "c.toml").write_text(text, encoding="utf-8")
    config = load_config(tmp_path / "c.toml")
    store = open_store(config.storage.url)
    replayer = Replayer(load_recording(seed))
    daemon = Daemon(config, store, Metrics(), Notifier(), replay=replayer)
    try:
        daemon.scheduler.start()
        dues = [daemon.scheduler.tick().due for _ in range(5)]
        assert dues == [6, 6, 6, 5, 0]
        assert daemon.scheduler.last_tick_at == replayer.recording.rounds[-1].at
    finally:
        daemon.scheduler.close()
        store.close()
