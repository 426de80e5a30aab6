"""`aggregator run` as a subprocess: READY via sd_notify, served Atom, 304, SIGHUP, SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import feedparser
import httpx
import pytest

from .feedserver import FeedServer, Route, rss, running_feed_server

pytestmark = pytest.mark.slow
WAIT_S = 30.0  # upper bound for each step; steps finish as soon as their event arrives


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class NotifySocket:
    """The service manager's side of sd_notify: a Unix datagram socket we read from."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.seen: list[str] = []

    def wait_for(self, field: str, proc: subprocess.Popen[bytes], log: Path) -> str:
        """Read datagrams until one carries ``field`` (e.g. "READY=1")."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"daemon exited {proc.returncode}:\n{log.read_text()}")
            self.sock.settimeout(min(1.0, max(0.01, deadline - time.monotonic())))
            try:
                message = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            self.seen.append(message)
            if field in message.splitlines():
                return message
        raise AssertionError(f"no {field} within {WAIT_S}s; saw {self.seen}\n{log.read_text()}")

    def close(self) -> None:
        self.sock.close()


def write_config(path: Path, server: FeedServer, port: int, sources: list[str]) -> None:
    blocks = "".join(f'[[sources]]\nid = "{s}"\nurl = "{server.url("/" + s)}"\n\n' for s in sources)
    path.write_text(
        f'[storage]\nurl = "sqlite:///state/db.sqlite"\n'
        f'[output]\ndir = "public"\nbase_url = "http://127.0.0.1:{port}/"\n'
        f'[server]\nlisten = "127.0.0.1:{port}"\n'
        f'[poll]\ninterval = "30m"\ntick = "30s"\n\n{blocks}',
        encoding="utf-8",
    )


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with running_feed_server() as srv:
        srv.routes = {
            "/alpha": Route(body=rss("Alpha", [("a1", "Alpha first story")])),
            "/beta": Route(body=rss("Beta", [("b1", "Beta brand new story")])),
        }
        yield srv


def test_run_serves_reloads_and_stops(tmp_path: Path, server: FeedServer) -> None:
    port = free_port()
    config = tmp_path / "aggregator.toml"
    write_config(config, server, port, ["alpha"])
    notify = NotifySocket(tmp_path / "notify.sock")
    log = tmp_path / "daemon.log"
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "PYTHONUNBUFFERED": "1"}
    env.pop("WATCHDOG_PID", None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "-c", str(config), "run"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        )  # fmt: skip
    try:
        notify.wait_for("READY=1", proc, log)
        notify.wait_for("WATCHDOG=1", proc, log)  # the first tick finished
        atom_url = f"http://127.0.0.1:{port}/all.atom"
        with httpx.Client() as http:
            first = http.get(atom_url)
            assert first.status_code == 200
            assert first.headers["content-type"] == "application/atom+xml; charset=utf-8"
            titles = [e.title for e in feedparser.parse(first.content).entries]
            assert titles == ["Alpha first story"]
            again = http.get(atom_url, headers={"If-None-Match": first.headers["etag"]})
            assert again.status_code == 304 and again.content == b""
            assert http.get(f"http://127.0.0.1:{port}/healthz").status_code == 200

            write_config(config, server, port, ["alpha", "beta"])
            proc.send_signal(signal.SIGHUP)
            notify.wait_for("RELOADING=1", proc, log)
            notify.wait_for("READY=1", proc, log)
            notify.wait_for("WATCHDOG=1", proc, log)  # the tick right after the reload
            titles = {e.title for e in feedparser.parse(http.get(atom_url).content).entries}
            assert titles == {"Alpha first story", "Beta brand new story"}

            config.write_text("[poll]\ninterval = 'never'\n", encoding="utf-8")
            proc.send_signal(signal.SIGHUP)  # an invalid config is rejected, the old one kept
            notify.wait_for("RELOADING=1", proc, log)
            assert "rejected" in notify.wait_for("READY=1", proc, log)
            assert http.get(atom_url).status_code == 200

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1", proc, log)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()
    text = log.read_text()
    assert "poll source=alpha status=ok http=200 new=1" in text
    assert "poll source=beta status=ok http=200 new=1" in text
    assert "reload rejected: poll.interval" in text
    assert server.count("/alpha") == 1  # not polled again before its interval


def test_apscheduler_overrun_warnings_are_dropped_and_others_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A tick longer than the tick interval made APScheduler warn once a second (issue #16)."""
    from aggregator.daemon import quiet_tick_overruns

    quiet_tick_overruns()
    quiet_tick_overruns()  # idempotent
    aps = logging.getLogger("apscheduler.scheduler")
    assert len(aps.filters) == len(set(map(id, aps.filters)))
    with caplog.at_level(logging.WARNING, logger="apscheduler.scheduler"):
        aps.warning('Execution of job "%s" skipped: maximum number of running instances '
                    "reached (%d)", "Daemon._tick_job", 1)  # fmt: skip
        aps.warning('Run time of job "%s" was missed by %s', "Daemon._tick_job", "0:00:03")
    assert [r.getMessage() for r in caplog.records] == [
        'Run time of job "Daemon._tick_job" was missed by 0:00:03'
    ]
