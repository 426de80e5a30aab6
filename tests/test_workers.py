"""Parse workers: they prepare like the inline path, and die with the process that started them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aggregator.prepare import prepare
from aggregator.types import Fetched
from aggregator.workers import ParseWorkers

from .conftest import ROOT
from .feedserver import rss

DOC = Fetched("s", "https://s.example/feed", 200, rss("S", [("1", "one"), ("2", "two")]))


@pytest.mark.slow
def test_workers_prepare_exactly_what_inline_does() -> None:
    workers = ParseWorkers(2)
    try:
        assert workers.submit(DOC, 1000).result(timeout=60) == prepare(DOC)
        assert workers.started
    finally:
        workers.close()
    assert not workers.started


STARTER = """
import sys
from aggregator.workers import ParseWorkers
from aggregator.types import Fetched
workers = ParseWorkers(2)
doc = Fetched("s", "https://s.example/feed", 200, b"<rss version='2.0'><channel><title>t</title>"
              b"<item><guid>1</guid><title>x</title></item></channel></rss>")
workers.submit(doc, 1000).result(timeout=60)
print("ready", flush=True)
sys.stdin.read()
"""


def _children() -> dict[int, list[int]]:
    """Every live process's children, from /proc (zombies count as gone)."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state != "Z":
            tree.setdefault(int(ppid), []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc (Linux) to see processes")
def test_kill_9_of_the_parent_leaves_no_process_behind() -> None:
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the resource tracker complains of the semaphores: expected
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert starter.stdout is not None and starter.stdout.readline() == b"ready\n"
        left = _descendants(starter.pid)
        assert len(left) >= 3  # the fork server, the resource tracker and two workers
        os.kill(starter.pid, signal.SIGKILL)
        starter.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(p) for p in left):
            time.sleep(0.05)  # polling for the processes to end, bounded (not a timing test)
        assert [p for p in left if _alive(p)] == []
    finally:
        starter.kill()
        starter.wait(timeout=10)
        for stream in (starter.stdin, starter.stdout):
            if stream is not None:
                stream.close()
