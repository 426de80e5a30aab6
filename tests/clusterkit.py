"""Several ``aggregator run`` nodes as real processes on one PostgreSQL, polling feeds served by
real HTTP servers on 127.0.0.1 (one server per host): for tests/test_cluster_nodes.py."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine

from .feedserver import FeedServer, Route, rss, running_feed_server

WAIT_S = 60.0
T = TypeVar("T")
_SERVING = re.compile(rb"serving \S+ on http://127\.0\.0\.1:(\d+)/")


@dataclass
class Node:
    name: str
    dir: Path
    proc: subprocess.Popen[bytes]
    port: int = 0

    @property
    def log(self) -> str:
        return (self.dir / "log").read_text(encoding="utf-8", errors="replace")

    def wait_serving(self) -> None:
        def port() -> int | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.log}")
            found = _SERVING.search((self.dir / "log").read_bytes())
            return int(found.group(1)) if found else None

        self.port = wait_for(port, f"{self.name} serving")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)


def wait_for(probe: Callable[[], T | None], what: str, timeout_s: float = WAIT_S) -> T:
    """``probe()`` until it returns something (not None, not False); fail after ``timeout_s``.
    Each probe reads state that other processes move: the wait is on that condition."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.05)  # between probes of another process's progress, not a timing guess


@dataclass
class Feeds:
    """``hosts`` servers with ``per_host`` sources each; source ``i`` carries two stories of its
    own and one it shares with the source ``half`` places on (on another host)."""

    servers: list[FeedServer]
    per_host: int
    ids: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.servers) * self.per_host

    def server_of(self, index: int) -> FeedServer:
        return self.servers[index // self.per_host]

    def url(self, index: int) -> str:
        return self.server_of(index).url(f"/{self.ids[index]}")

    def requests(self, index: int) -> list[float]:
        path = f"/{self.ids[index]}"
        return sorted(r.at for r in self.server_of(index).requests if r.path == path)

    @property
    def stories(self) -> int:
        return 2 * self.count + self.count // 2

    def route(self, index: int) -> Route:
        sid, shared = self.ids[index], index % (self.count // 2)
        items = [(f"{sid}-a", f"Story A of {sid}"), (f"{sid}-b", f"Story B of {sid}"),
                 (f"shared-{shared}", f"The story both feeds carry, number {shared}")]  # fmt: skip
        return Route(body=rss(f"Feed {sid}", items))


@contextmanager
def feeds(hosts: int, per_host: int) -> Iterator[Feeds]:
    with ExitStack() as stack:
        servers = [stack.enter_context(running_feed_server()) for _ in range(hosts)]
        made = Feeds(servers, per_host, [f"s{i:03d}" for i in range(hosts * per_host)])
        for i, sid in enumerate(made.ids):
            made.server_of(i).routes[f"/{sid}"] = made.route(i)
        yield made


def config_text(feeds: Feeds, db_url: str, *, interval: str, tick: str, lease: str,
                batch: int, timeout: str = "2s") -> str:  # fmt: skip
    sources = "".join(
        f'[[sources]]\nid = "{sid}"\nurl = "{feeds.url(i)}"\n' for i, sid in enumerate(feeds.ids)
    )
    return (
        f'[storage]\nurl = "{db_url}"\n'
        '[output]\ndir = "public"\nbase_url = "http://aggregator.example/"\nlimit = 1000\n'
        'formats = ["atom", "json"]\n'
        '[server]\nlisten = "127.0.0.1:0"\n'
        f'[poll]\ninterval = "{interval}"\nmin_interval = "1s"\njitter = 0\ntick = "{tick}"\n'
        f'timeout = "{timeout}"\nconnect_timeout = "1s"\nread_timeout = "{timeout}"\n'
        "parse_workers = 1\n"
        f'[cluster]\nenabled = true\nlease = "{lease}"\nbatch = {batch}\n\n{sources}'
    )


def start_nodes(base: Path, names: list[str], config: str) -> list[Node]:
    """One process per name, each in a directory of its own (its outputs, its log) with the
    same config file."""
    nodes = []
    for name in names:
        home = base / name
        home.mkdir()
        (home / "config.toml").write_text(config, encoding="utf-8")
        env = {**os.environ, "AGGREGATOR_NODE": name, "PYTHONUNBUFFERED": "1"}
        env.pop("NOTIFY_SOCKET", None)
        with (home / "log").open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "aggregator", "-c", "config.toml", "run"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=home,
            )  # fmt: skip
        nodes.append(Node(name, home, proc))
    return nodes


def kill_all(nodes: list[Node]) -> None:
    for node in nodes:
        if node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait()


def scalar(engine: Engine, sql: str) -> object:
    from sqlalchemy import text

    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar()
