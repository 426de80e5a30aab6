"""kill -9 of `aggregator once` and `aggregator run` mid-poll, mid-write and mid-render (#11).

One database and one output directory through 20 kills: after each one the database passes
``PRAGMA integrity_check``, keeps every entry committed before the kill, every output present is
whole (temp files may be left behind, hidden from the server), and no worker process outlives
the killed one. A clean ``once`` at the end stores and publishes every entry the server has.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from lxml import etree

from aggregator.renderstamp import STAMP
from aggregator.serve import resolve_inside

from .conftest import ROOT
from .feedserver import FeedServer, Route, running_feed_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc (Linux) to see processes"),
]
log = logging.getLogger(__name__)

SOURCES = 200
ENTRIES = 20  # per source at first; a source gains one at each of its revisions
OUTPUTS = ("all.atom", "all.rss", "all.json")
ROUND_S = 90.0  # upper bound for one round to reach its kill moment
REAP_S = 15.0  # upper bound for the killed process's workers to notice and exit
MARKER = "AGGREGATOR_CRASH_TEST"  # in the environment of every process a command starts
ATOM = "http://www.w3.org/2005/Atom"


# -- the feeds ------------------------------------------------------------------------------------


def link(source: int, n: int) -> str:
    return f"https://example.org/s{source:03d}-{n:02d}"


def revisions(source: int, round_: int) -> int:
    """How often ``source`` changed up to round ``round_``: a quarter of the sources change at
    each round after the first (the others answer 304)."""
    return sum(1 for r in range(1, round_ + 1) if r % 4 == source % 4)


def served(source: int, round_: int) -> list[str]:
    """The links of the entries ``source`` serves in round ``round_`` (feeds only grow)."""
    return [link(source, n) for n in range(ENTRIES + revisions(source, round_))]


def feed(source: int, round_: int) -> bytes:
    """RSS 2.0: each revision adds an entry and rewrites every description (so a round stores
    updates as well as new entries)."""
    rev = revisions(source, round_)
    items = "".join(
        f"<item><guid>{url}</guid><title>Story {n} from source {source}</title><link>{url}</link>"
        f"<description>&lt;p&gt;Story {n}, revision {rev}.&lt;/p&gt;</description>"
        f"<pubDate>Wed, 25 Nov 2026 {n // 60:02d}:{n % 60:02d}:00 GMT</pubDate></item>"
        for n, url in enumerate(served(source, round_))
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Source {source}</title><link>https://example.org/</link>{items}</channel></rss>"
    ).encode()


def serve_round(server: FeedServer, round_: int) -> None:
    server.routes = {f"/s{i:03d}": Route(body=feed(i, round_)) for i in range(SOURCES)}


def write_config(path: Path, server: FeedServer) -> None:
    sources = "".join(
        f'[[sources]]\nid = "s{i:03d}"\nurl = "{server.url(f"/s{i:03d}")}"\n\n'
        for i in range(SOURCES)
    )
    # Every source is due again a second after its poll: each `run` restarts with a full tick.
    path.write_text(
        '[storage]\nurl = "sqlite:///state/db.sqlite"\n'
        '[output]\ndir = "public"\nbase_url = "http://127.0.0.1:1/"\nlimit = 10000\n'
        "[server]\nenabled = false\n"
        '[poll]\ninterval = "1s"\nmin_interval = "1s"\ntick = "1s"\nper_host = 16\n\n' + sources,
        encoding="utf-8",
    )


# -- what the test watches while the command runs -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seen:
    """Things at one look: requests served this round, the WAL's size (it starts each round
    absent), temp files of outputs new this round, outputs replaced (or created) this round."""

    requests: int
    wal_bytes: int
    temps: int
    replaced: int

    def phase(self) -> str:
        if self.requests > SOURCES:
            return "next tick"
        if self.temps or self.replaced:
            return "mid-render"
        return "mid-write" if self.wal_bytes else "mid-poll"


@dataclass(frozen=True, slots=True)
class Trigger:
    what: str
    fires: Callable[[Seen], bool]


def after_requests(n: int) -> Trigger:
    return Trigger(f"{n} requests served", lambda seen: seen.requests >= n)


def wal_bytes(n: int) -> Trigger:
    return Trigger(f"WAL >= {n} bytes", lambda seen: seen.wal_bytes >= n)


# An output being written: its temp file seen or, missed (it lives for milliseconds), replaced.
RENDERING = Trigger("an output being written", lambda seen: seen.temps > 0 or seen.replaced > 0)
REPLACED = Trigger("an output replaced", lambda seen: seen.replaced > 0)

# The 20 kills: the command, and the moment it dies. Requests: mid-poll (the first polls are
# being stored meanwhile); the WAL growing: mid-write; outputs: mid-render. `run` polls every
# source again each second: 201 requests is its second tick (304s), after the first published.
PLAN: tuple[tuple[str, Trigger], ...] = (
    ("once", REPLACED),  # the cold database: 4,000 entries stored, killed as outputs appear
    ("once", after_requests(1)),
    ("once", wal_bytes(1)),
    ("run", after_requests(100)),
    ("once", wal_bytes(64 << 10)),
    ("run", RENDERING),
    ("once", after_requests(SOURCES)),
    ("run", wal_bytes(1)),
    ("once", RENDERING),
    ("run", after_requests(SOURCES + 1)),
    ("once", wal_bytes(128 << 10)),
    ("run", REPLACED),
    ("once", after_requests(50)),
    ("run", wal_bytes(1 << 20)),
    ("once", REPLACED),
    ("run", after_requests(1)),
    ("once", wal_bytes(16 << 10)),
    ("run", RENDERING),
    ("once", after_requests(150)),
    ("run", wal_bytes(256 << 10)),
)


@dataclass
class Scene:
    """What every round shares: the feed server, the config, the database, the outputs."""

    root: Path
    server: FeedServer
    marker: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def config(self) -> Path:
        return self.root / "aggregator.toml"

    @property
    def db(self) -> Path:
        return self.root / "state" / "db.sqlite"

    @property
    def out(self) -> Path:
        return self.root / "public"

    def start(self, command: str, log_path: Path) -> subprocess.Popen[bytes]:
        # Every process the command starts (fork server, resource tracker, parse workers)
        # inherits the marker: how the ones left behind are found.
        env = {**os.environ, "PYTHONPATH": str(ROOT), MARKER: self.marker}
        # `once --force`: every source polled whatever the clock says (a round that starts
        # within a second of the last poll would otherwise find nothing due, and never fire).
        args = [command, "--force"] if command == "once" else [command]
        with log_path.open("wb") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "aggregator", "-c", str(self.config), *args],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.root,
            )  # fmt: skip

    def files(self) -> dict[str, int]:
        """Name -> inode of everything in the output directory (os.replace changes the inode)."""
        try:
            return {entry.name: entry.inode() for entry in os.scandir(self.out)}
        except FileNotFoundError:
            return {}

    def look(self, requests_before: int, files_before: dict[str, int]) -> Seen:
        try:
            wal = Path(f"{self.db}-wal").stat().st_size
        except FileNotFoundError:
            wal = 0
        files = self.files()
        temps = sum(1 for name in files if name.endswith(".tmp") and name not in files_before)
        replaced = sum(
            1 for name in OUTPUTS if name in files and files_before.get(name) != files[name]
        )
        return Seen(len(self.server.requests) - requests_before, wal, temps, replaced)


# -- the checks after each kill -------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    items: set[tuple[str, str]]  # (source, key)
    uids: set[str]  # of the merged entries
    entries: int  # rows in entries (== len(uids): no twins)
    links: set[str]

    def per_source(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for source, _ in self.items:
            counts[source] = counts.get(source, 0) + 1
        return counts


def stored(conn: sqlite3.Connection) -> Stored:
    items = set(conn.execute("SELECT source_id, key FROM items"))
    uids = [uid for (uid,) in conn.execute("SELECT uid FROM entries")]
    links = {url for (url,) in conn.execute("SELECT link FROM items")}
    return Stored(items, set(uids), len(uids), links)


def committed(db: Path) -> Stored:
    """What is committed now, read like any other reader while the command writes."""
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        return stored(conn)


def recover(db: Path) -> tuple[list[str], list[tuple[object, ...]], Stored]:
    """Open the database after the kill (SQLite recovers from the WAL): its integrity, its
    foreign keys, what it holds. Closing the last connection checkpoints and removes the WAL,
    so every round starts without one."""
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        integrity = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        foreign_keys = list(conn.execute("PRAGMA foreign_key_check"))
        return integrity, foreign_keys, stored(conn)


def check_outputs(out: Path) -> tuple[dict[str, set[str]], int]:
    """Every output present is whole: it parses to its end (lxml: feedparser needs some 12 s
    for an output of 8,000 entries here, and reads a truncated file as far as it goes) with
    the root it should have; temp files left by a kill are never served. Returns each output's
    entry links and the count of temp files left."""
    links: dict[str, set[str]] = {}
    temps = 0
    for path in sorted(out.iterdir()) if out.is_dir() else ():
        if path.name.startswith("."):
            assert resolve_inside(out, "/" + path.name) is None  # the server refuses it
            if path.name == STAMP:  # what was rendered (issue #16): whole, as every output
                assert json.loads(path.read_bytes())["files"]
                continue
            assert path.name.endswith(".tmp"), path
            temps += 1
            continue
        if path.name not in OUTPUTS:  # pages, archives, per-group feeds: written the same way
            continue
        data = path.read_bytes()
        if path.suffix == ".json":
            links[path.name] = {item["url"] for item in json.loads(data)["items"]}
            continue
        root = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False))
        if path.suffix == ".atom":
            assert root.tag == f"{{{ATOM}}}feed", path
            found = root.iterfind(f"{{{ATOM}}}entry/{{{ATOM}}}link[@rel='alternate']")
            links[path.name] = {e.get("href") for e in found}
        else:
            assert root.tag == "rss", path
            links[path.name] = {e.text for e in root.iterfind("channel/item/link")}
    assert set(links) <= set(OUTPUTS), links.keys()
    return links, temps


def orphans(marker: str) -> list[int]:
    """Live processes carrying ``marker`` in their environment (zombies count as gone)."""
    needle = f"{MARKER}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if state != "Z" and needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def reap_orphans(marker: str) -> list[int]:
    """Wait (bounded) for the killed command's processes to exit; kill and return the rest."""
    deadline = time.monotonic() + REAP_S
    left = orphans(marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)  # polling for the workers to exit, bounded (not a timing test)
        left = orphans(marker)
    for pid in left:  # not left running for later tests; the caller's assert reports them
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


# -- the rounds -----------------------------------------------------------------------------------


def kill_at(
    scene: Scene, command: str, trigger: Trigger, log_path: Path
) -> tuple[Seen, Stored, int]:
    """Run ``command`` until ``trigger`` fires, read what is committed, kill -9 it. Returns
    what was seen, what was committed and how many processes the command had."""
    requests, files = len(scene.server.requests), scene.files()
    proc = scene.start(command, log_path)
    try:
        deadline = time.monotonic() + ROUND_S
        seen = scene.look(requests, files)
        while not trigger.fires(seen):
            if proc.poll() is not None:
                raise AssertionError(f"{command} exited {proc.returncode} before {trigger.what}"
                                     f":\n{log_path.read_text()}")  # fmt: skip
            assert time.monotonic() < deadline, f"no {trigger.what} within {ROUND_S}s"
            time.sleep(0.002)  # polling for the moment to kill, bounded by the deadline
            seen = scene.look(requests, files)
        before = committed(scene.db)
        processes = len(orphans(scene.marker))
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    return seen, before, processes


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    with running_feed_server() as server:
        scene = Scene(tmp_path, server)
        write_config(scene.config, server)
        (tmp_path / "logs").mkdir()
        try:
            yield scene
        finally:
            reap_orphans(scene.marker)


@dataclass(frozen=True, slots=True)
class Kill:
    """One round's figures, logged: where the kill landed and what it left."""

    round_: int
    command: str
    trigger: str
    seen: Seen
    processes: int  # the command's, when it was killed
    committed: int  # items committed when it was killed
    after: int  # items after recovery
    temps_left: int  # temp files in the output directory (never served)
    seconds: float  # from start to kill

    def line(self) -> str:
        seen = self.seen
        return (
            f"kill {self.round_:2d} {self.command:<4} at {self.trigger:<24} landed "
            f"{seen.phase():<10} requests={seen.requests:3d} wal={seen.wal_bytes:7d} "
            f"new_temps={seen.temps} replaced={seen.replaced} processes={self.processes} "
            f"items: {self.committed} committed, {self.after} after; "
            f"temps left {self.temps_left}; {self.seconds:.1f}s"
        )


def check_after_kill(scene: Scene, round_: int, before: Stored, counts: dict[str, int]) -> Stored:
    """No process left, the database sound and holding all it had, every output whole."""
    assert reap_orphans(scene.marker) == [], f"round {round_}: processes outlived the kill"
    integrity, foreign_keys, after = recover(scene.db)
    assert integrity == ["ok"], (round_, integrity)
    assert foreign_keys == [], round_
    assert before.items <= after.items, f"round {round_}: {before.items - after.items} lost"
    assert before.uids <= after.uids, f"round {round_}: {before.uids - after.uids} lost"
    assert after.entries == len(after.uids) == len(after.items)  # no twins (no merges here)
    now = after.per_source()
    assert all(now.get(s, 0) >= n for s, n in counts.items()), f"round {round_}: a source shrank"
    return after


def test_kill_9_loses_nothing_committed_and_leaves_nothing_broken(scene: Scene) -> None:
    started = time.monotonic()
    counts: dict[str, int] = {}
    kills: list[Kill] = []
    for round_, (command, trigger) in enumerate(PLAN):
        began = time.monotonic()
        serve_round(scene.server, round_)
        log_path = scene.root / "logs" / f"{round_:02d}-{command}.log"
        seen, before, processes = kill_at(scene, command, trigger, log_path)
        seconds = time.monotonic() - began
        after = check_after_kill(scene, round_, before, counts)
        counts = after.per_source()
        _, temps = check_outputs(scene.out)
        kills.append(Kill(round_, command, trigger.what, seen, processes, len(before.items),
                          len(after.items), temps, seconds))  # fmt: skip
        log.info("%s", kills[-1].line())
    # Not a vacuous check: some kills had the fork server, resource tracker and workers running.
    assert max(k.processes for k in kills) >= 4
    assert {k.seen.phase() for k in kills} >= {"mid-poll", "mid-write", "mid-render"}

    # A clean run on the same database and directory: everything the server has, published.
    final = len(PLAN)
    serve_round(scene.server, final)
    log_path = scene.root / "logs" / "final-once.log"
    proc = scene.start("once", log_path)
    assert proc.wait(timeout=120) == 0, log_path.read_text()
    assert f"sources: {SOURCES} ok, 0 failed" in log_path.read_text()
    union = {url for source in range(SOURCES) for url in served(source, final)}
    integrity, _, after = recover(scene.db)
    assert integrity == ["ok"]
    assert after.links == union and after.entries == len(union)
    links, _ = check_outputs(scene.out)
    assert links == dict.fromkeys(OUTPUTS, union)
    assert orphans(scene.marker) == []
    log.info("%d kills and a clean run in %.1fs", len(kills), time.monotonic() - started)
