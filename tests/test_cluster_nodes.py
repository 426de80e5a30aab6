"""Three ``aggregator run`` processes on one PostgreSQL (issue #17), polling real servers on
127.0.0.1: each source once per interval, one entry per story, the same outputs on every
node; a node killed with SIGKILL mid-tick is taken over within the lease."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import feedparser
import httpx
import pytest
from sqlalchemy import create_engine

from .clusterkit import Feeds, Node, config_text, feeds, kill_all, scalar, start_nodes, wait_for
from .conftest import pg_or_skip
from .pgdb import fresh_database

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_database(pg_or_skip()) as url:
        yield url


def assert_stored_once(pg_url: str, web: Feeds) -> None:
    """Every story once, every (source, story) once, each shared story one merge."""
    engine = create_engine(pg_url)
    try:
        assert scalar(engine, "select count(*) from entries") == web.stories
        assert scalar(engine, "select count(distinct norm_link) from entries") == web.stories
        assert scalar(engine, "select count(*) from items") == 3 * web.count
        merges = "select count(*) from decisions where action = 'merge'"
        assert scalar(engine, merges) == web.count // 2
    finally:
        engine.dispose()


def served(node: Node, path: str) -> bytes:
    with httpx.Client(timeout=10) as http:
        reply = http.get(f"http://127.0.0.1:{node.port}/{path}")
        assert reply.status_code == 200, (node.name, path, reply.status_code)
        return reply.content


def outputs(node: Node) -> dict[str, bytes]:
    public = node.dir / "public"
    return {str(p.relative_to(public)): p.read_bytes() for p in public.rglob("*") if p.is_file()}


def test_three_nodes_poll_each_source_once_per_interval_and_serve_the_same_outputs(
    tmp_path: Path, pg_url: str
) -> None:
    interval, rounds = 4.0, 3
    with feeds(hosts=10, per_host=30) as web:
        config = config_text(web, pg_url, interval="4s", tick="1s", lease="4s", batch=40)
        nodes = start_nodes(tmp_path, ["n1", "n2", "n3"], config)
        try:
            for node in nodes:
                node.wait_serving()
            wait_for(lambda: all(len(web.requests(i)) >= rounds for i in range(web.count)),
                     f"every source polled {rounds} times", timeout_s=120)  # fmt: skip
            assert_stored_once(pg_url, web)

            def same_everywhere() -> bool:
                atoms = {served(node, "all.atom") for node in nodes}
                return len(atoms) == 1 and len(feedparser.parse(atoms.pop()).entries) == web.stories

            wait_for(same_everywhere, "the same all.atom, every story, on every node")
            assert len({served(node, "all.json") for node in nodes}) == 1
            assert outputs(nodes[0]) == outputs(nodes[1]) == outputs(nodes[2])
        finally:
            codes = [node.stop() for node in nodes]
            kill_all(nodes)
        assert codes == [0, 0, 0]
    for i in range(web.count):
        times = web.requests(i)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # Never twice in one interval (two nodes polling one source would be seconds apart at
        # most), and never an interval skipped.
        assert all(interval / 2 <= gap <= 2 * interval + 1 for gap in gaps), (web.ids[i], gaps)
    for node in nodes:  # the work was shared: every node polled
        assert "poll source=" in node.log, node.name
        assert "config drift" not in node.log


def test_a_node_killed_mid_tick_is_taken_over_within_the_lease(tmp_path: Path, pg_url: str) -> None:
    lease = 4.0
    with feeds(hosts=4, per_host=10) as web:
        gated = web.servers[0]
        gate = threading.Event()  # the first host's requests hang until the victim is dead
        for route in gated.routes.values():
            route.block = gate
        config = config_text(web, pg_url, interval="1h", tick="500ms", lease="4s", batch=10)
        nodes = start_nodes(tmp_path, ["n1", "n2", "n3"], config)
        engine = create_engine(pg_url)
        try:
            for node in nodes:
                node.wait_serving()
            wait_for(lambda: gated.in_flight >= 2, "the first host's two requests in flight")
            host = f"127.0.0.1:{gated.port}"
            owner = scalar(engine, f"select lease_owner from hosts where host = '{host}'")
            victim = next(node for node in nodes if node.name == owner)
            seen_before = len(gated.requests)
            victim.proc.kill()
            victim.proc.wait()
            killed_at = time.monotonic()
            gate.set()
            ok = "select count(*) from sources where last_ok_at is not null"
            wait_for(lambda: scalar(engine, ok) == web.count, "every source stored",
                     timeout_s=lease + 30)  # fmt: skip
            takeover_s = min(r.at for r in gated.requests[seen_before:]) - killed_at
            assert takeover_s <= lease + 2.0, takeover_s
            new_owner = scalar(engine, f"select lease_owner from hosts where host = '{host}'")
            assert new_owner in (None, *(n.name for n in nodes if n is not victim))
            assert_stored_once(pg_url, web)
            survivors = [node for node in nodes if node is not victim]
            wait_for(lambda: len({served(n, "all.atom") for n in survivors}) == 1,
                     "the survivors serving the same all.atom")  # fmt: skip
        finally:
            engine.dispose()
            codes = [node.stop() for node in nodes if node is not victim]
            kill_all(nodes)
        assert codes == [0, 0]
    for i in range(web.count):
        count = len(web.requests(i))
        # Polled again only where the victim's request died with it (its host's, in flight).
        assert count == 1 or (count == 2 and web.server_of(i) is gated), (web.ids[i], count)
    print(f"takeover after SIGKILL: {takeover_s:.2f}s (lease {lease:g}s)")  # noqa: T201
