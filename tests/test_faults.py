"""Faults the daemon rides out (#11): a full disk or read-only output directory, a locked or
unreachable database. Old outputs stay, nothing stored is lost, the error is reported and the
work is retried; only start-up may refuse, with exit status 1 and a message saying why."""

from __future__ import annotations

import errno
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aggregator.cli import main
from aggregator.config import Config, load_config, parse_config
from aggregator.errors import RenderError, StoreError
from aggregator.render import write_atomic
from aggregator.scheduler import Scheduler, build_scheduler
from aggregator.store import SqlStore, engine, open_store

from .conftest import ROOT, Clock
from .fakeweb import FakeWeb, Route
from .feedserver import Route as ServedRoute
from .feedserver import rss as rss_bytes
from .feedserver import running_feed_server
from .test_daemon import NotifySocket

WAIT_S = 30.0  # upper bound for each step of the subprocess tests


def rss(source: str, count: int) -> bytes:
    return rss_bytes(source, [(f"{source}-{n}", f"Story {n} of {source}") for n in range(count)])


def make_config(tmp_path: Path, web: FakeWeb, sources: list[str]) -> Config:
    data = {
        "output": {"dir": str(tmp_path / "public")},
        "poll": {"interval": "30m", "jitter": 0},
        "sources": [{"id": s, "url": web.url(f"/{s}")} for s in sources],
    }
    return parse_config(data, path=tmp_path / "aggregator.toml")


@pytest.fixture
def web() -> Iterator[FakeWeb]:
    fake = FakeWeb()
    yield fake
    fake.close()


@contextmanager
def scheduler(config: Config, store: SqlStore, web: FakeWeb, clock: Clock) -> Iterator[Scheduler]:
    sched = build_scheduler(config, store, clock=lambda: clock.now, transport=web.transport)
    sched.parse_workers = 1
    sched.start()
    try:
        yield sched
    finally:
        sched.close()


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


# -- a full disk, a read-only output directory ----------------------------------------------------

# Tests run as root, where chmod 0o555 stops no write: the faults are raised at the system call
# that fails on a full or read-only disk, and everything above it (write_atomic, the publisher,
# the tick, the CLI) is the real code. Disk full: ENOSPC from fsync of the temp file, after its
# bytes were written (delayed allocation, NFS: where a full disk shows). Read-only: EROFS
# creating the temp file. A write the kernel itself refuses: see the RLIMIT_FSIZE test below.


def _fsync_on_a_full_disk(fd: int) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _mkstemp_on_a_read_only_fs(*args: Any, **kwargs: Any) -> tuple[int, str]:
    raise OSError(errno.EROFS, os.strerror(errno.EROFS))


FAULTS = {
    "disk full": (os, "fsync", _fsync_on_a_full_disk, "No space left on device"),
    "read-only": (tempfile, "mkstemp", _mkstemp_on_a_read_only_fs, "Read-only file system"),
}


@contextmanager
def fault(monkeypatch: pytest.MonkeyPatch, name: str) -> Iterator[str]:
    """Inject the fault ``name`` until the block ends; yields the error text it causes."""
    module, attribute, replacement, text = FAULTS[name]
    with monkeypatch.context() as patch:
        patch.setattr(module, attribute, replacement)
        yield text


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_output_fault_keeps_old_outputs_stores_polls_and_renders_when_it_clears(
    tmp_path: Path,
    web: FakeWeb,
    clock: Clock,
    memory_store: SqlStore,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    web.routes[web.url("/a")] = Route(body=rss("a", 1))
    out = tmp_path / "public"
    with scheduler(make_config(tmp_path, web, ["a"]), memory_store, web, clock) as sched:
        assert sched.tick().render_error is None
        old = files(out)
        web.routes[web.url("/a")] = Route(body=rss("a", 2))
        clock.advance(hours=1)
        with fault(monkeypatch, name) as text:
            faulty = sched.tick()
            assert (faulty.due, faulty.ok, faulty.new) == (1, 1, 1)  # the poll is stored
            assert text in (faulty.render_error or "") and not faulty.rendered
            assert files(out) == old  # the old outputs, whole, and no temp file
            state = memory_store.source_state("a")
            assert state is not None and state.entry_count == 2
            again = sched.tick()  # nothing due: the render is retried all the same
            assert again.due == 0 and text in (again.render_error or "")
        cleared = sched.tick()
    assert cleared.due == 0 and cleared.rendered and cleared.render_error is None
    assert "Story 1 of a" in (out / "all.atom").read_text()


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_once_reports_an_output_fault_with_exit_1_after_storing_the_polls(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    shutil.copytree(ROOT / "seeds", tmp_path / "seeds")
    shutil.copytree(ROOT / "config", tmp_path / "config")
    cfg = str(tmp_path / "config" / "aggregator.toml")
    with fault(monkeypatch, name) as text:
        assert main(["-c", cfg, "--log-level", "ERROR", "once", "--offline"]) == 1
        captured = capsys.readouterr()
        assert captured.out.strip().splitlines()[-1].startswith("sources: 15 ok, 1 failed;")
        error = captured.err.splitlines()[-1]
        assert error.startswith("error: ") and ".atom: cannot write" in error and text in error
        assert not [p for p in (tmp_path / "public").rglob("*") if p.is_file()]  # nothing half
    assert main(["-c", cfg, "sources"]) == 0  # the polls were stored: the table counts them
    assert " ok " in next(line for line in capsys.readouterr().out.splitlines() if "huxiu" in line)
    assert main(["-c", cfg, "render"]) == 0
    assert capsys.readouterr().out.strip().endswith(" written, 0 unchanged")


@contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes past ``limit`` bytes fail in the kernel (EFBIG), as on a full disk (ENOSPC)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the signal kills pytest
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to count fds")
def test_write_atomic_on_a_failing_write_keeps_the_original_and_leaks_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "all.atom"
    path.write_bytes(b"old")
    fds = len(os.listdir("/proc/self/fd"))
    with file_size_limit(64 << 10), pytest.raises(RenderError, match=r"all\.atom: cannot write"):
        write_atomic(path, b"x" * (1 << 20))
    assert files(tmp_path) == {"all.atom": b"old"}  # and no temp file
    assert len(os.listdir("/proc/self/fd")) == fds


# -- a locked database ----------------------------------------------------------------------------


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stores opened from here on wait 0.1 s for a lock instead of 10 s (the same connect hook,
    its busy_timeout set again): a locked write fails as it would, only sooner."""
    pragmas = engine._sqlite_pragmas

    def shorter(dbapi_connection: Any, record: Any) -> None:
        pragmas(dbapi_connection, record)
        dbapi_connection.execute("PRAGMA busy_timeout=100")

    monkeypatch.setattr(engine, "_sqlite_pragmas", shorter)


class WriteLock:
    """Another connection holding the database's write lock (WAL: readers still read)."""

    def __init__(self, db: Path) -> None:
        self._conn: sqlite3.Connection | None = sqlite3.connect(db, isolation_level=None)
        self._conn.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        if self._conn is not None:
            self._conn.execute("ROLLBACK")
            self._conn.close()
            self._conn = None

    def __enter__(self) -> WriteLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@pytest.mark.usefixtures("short_busy_timeout")
def test_a_locked_database_fails_polls_unrecorded_and_the_next_tick_stores_them(
    tmp_path: Path, web: FakeWeb, clock: Clock
) -> None:
    sources = ["a", "b", "c", "same"]
    for s in sources:
        web.routes[web.url(f"/{s}")] = Route(body=rss(s, 1))
    db = tmp_path / "state" / "db.sqlite"
    config = make_config(tmp_path, web, sources)
    with (
        closing(open_store(f"sqlite:///{db}")) as store,
        scheduler(config, store, web, clock) as sched,
    ):
        assert sched.tick().new == 4
        for s in ["a", "b", "c"]:
            web.routes[web.url(f"/{s}")] = Route(body=rss(s, 2))
        clock.advance(hours=1)
        with WriteLock(db):
            locked = sched.tick()  # returns: the writes fail, the tick goes on
        assert locked.due == 4 and {o.source_id for o in locked.failures} == {"a", "b", "c"}
        assert all("database is locked" in (o.error or "") for o in locked.failures)
        unrecorded = {
            s.source_id: (s.entry_count, s.failures, s.status) for s in store.source_states()
        }
        assert unrecorded == dict.fromkeys(sources, (1, 0, "ok"))
        assert set(store.due_states(clock.now, among=sources)) == set(sources)  # still due
        unlocked = sched.tick()
        assert unlocked.due == 4 and unlocked.failed == 0 and unlocked.new == 3
        stored = {s.source_id: s.entry_count for s in store.source_states()}
        assert stored == {"a": 2, "b": 2, "c": 2, "same": 1}
        assert len(store.recent_entries(sources, limit=100)) == 7  # no twin of any entry


# -- `aggregator run` on a locked database --------------------------------------------------------


def _start_daemon(
    tmp_path: Path, config: Path, notify: NotifySocket, log: Path
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "PYTHONPATH": str(ROOT)}
    env.pop("WATCHDOG_PID", None)
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "aggregator", "-c", str(config), "run"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        )  # fmt: skip


def _daemon_config(path: Path, urls: dict[str, str], *, tick: str = "30s") -> None:
    sources = "".join(f'[[sources]]\nid = "{s}"\nurl = "{u}"\n\n' for s, u in urls.items())
    path.write_text(
        '[storage]\nurl = "sqlite:///state/db.sqlite"\n[output]\ndir = "public"\n'
        'base_url = "http://127.0.0.1:1/"\n[server]\nenabled = false\n'
        f'[poll]\ntick = "{tick}"\n\n' + sources,
        encoding="utf-8",
    )


def _tick_status(notify: NotifySocket, proc: subprocess.Popen[bytes], log: Path) -> str:
    """The datagram sent at the end of a tick (a long tick also pings WATCHDOG=1 alone)."""
    while "STATUS=last tick" not in (message := notify.wait_for("WATCHDOG=1", proc, log)):
        pass  # each wait_for is bounded by its own deadline
    return message


@pytest.mark.slow
def test_run_started_on_a_locked_database_keeps_polling_and_stores_once_it_is_free(
    tmp_path: Path,
) -> None:
    """Start-up only reads (the database is migrated, the source known): the daemon starts under
    the lock. Its first tick's write waits out busy_timeout (10 s) and fails unrecorded; the
    daemon goes on, and the next tick, the lock gone, stores the entries."""
    with running_feed_server() as server:
        server.routes = {"/a": ServedRoute(body=rss("a", 2))}
        config = tmp_path / "aggregator.toml"
        _daemon_config(config, {"a": server.url("/a")}, tick="1s")
        db = tmp_path / "state" / "db.sqlite"
        store = open_store(f"sqlite:///{db}")
        with store.transaction() as tx:
            tx.sync_sources(load_config(config).sources, now=datetime.now(UTC))
        store.close()
        notify, log = NotifySocket(tmp_path / "notify.sock"), tmp_path / "daemon.log"
        with WriteLock(db) as lock:
            proc = _start_daemon(tmp_path, config, notify, log)
            try:
                notify.wait_for("READY=1", proc, log)
                assert "1 due, 0 ok, 1 failed" in _tick_status(notify, proc, log)
                lock.release()
                assert "1 due, 1 ok, 0 failed" in _tick_status(notify, proc, log)
                with closing(sqlite3.connect(db)) as conn:
                    assert conn.execute("SELECT count(*) FROM items").fetchone() == (2,)
                assert server.count("/a") == 2  # polled again at the next tick: it stayed due
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=WAIT_S) == 0
            finally:
                proc.kill()
                proc.wait(timeout=10)
                notify.close()
    assert "database is locked" in log.read_text()


@pytest.mark.slow
def test_run_refuses_to_start_when_the_lock_outlasts_the_busy_timeout(tmp_path: Path) -> None:
    config = tmp_path / "aggregator.toml"
    _daemon_config(config, {"a": "http://127.0.0.1:1/a"})
    db = tmp_path / "state" / "db.sqlite"
    open_store(f"sqlite:///{db}").close()  # migrated; the new source must be written at start
    with WriteLock(db):
        done = subprocess.run(
            [sys.executable, "-m", "aggregator", "-c", str(config), "run"],
            capture_output=True, text=True, cwd=tmp_path, timeout=60,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "cannot start: database error" in done.stderr
    assert "database is locked" in done.stderr


# -- an unreachable database ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql+psycopg://aggregator:s3cret@127.0.0.1:1/aggregator", "refused"),
        ("postgresql+nosuchdriver://aggregator:s3cret@127.0.0.1:1/aggregator", "nosuchdriver"),
    ],
)
def test_an_unreachable_database_is_a_store_error_that_says_why(url: str, says: str) -> None:
    pytest.importorskip("psycopg")  # no server needed: nothing listens on port 1
    with pytest.raises(StoreError) as caught:
        open_store(url)
    message = str(caught.value)
    assert says in message and "127.0.0.1:1" in message
    assert "s3cret" not in message  # the password never reaches a log


def test_a_database_error_while_rendering_is_retried_at_the_next_tick(
    tmp_path: Path,
    web: FakeWeb,
    clock: Clock,
    memory_store: SqlStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    web.routes[web.url("/a")] = Route(body=rss("a", 1))
    with scheduler(make_config(tmp_path, web, ["a"]), memory_store, web, clock) as sched:
        sched.tick()
        web.routes[web.url("/a")] = Route(body=rss("a", 2))
        clock.advance(hours=1)

        def unreadable(*args: object, **kwargs: object) -> object:
            raise StoreError("database error: disk I/O error")

        with monkeypatch.context() as patch, suppress(StoreError):
            patch.setattr(memory_store, "recent_entries", unreadable)
            sched.tick()  # the poll is stored; reading it back to render fails
        retried = sched.tick()
    assert retried.rendered and "Story 1 of a" in (tmp_path / "public" / "all.atom").read_text()


def test_a_locked_database_fails_the_batch_at_once_not_job_by_job(
    memory_store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock (or a lost connection) is the database's trouble, not one write's: the Writer does
    not retry each job alone (each would wait the whole busy timeout again)."""
    import asyncio
    import queue

    from aggregator.errors import StoreError
    from aggregator.runner import Message, PollsDone, StoreJob, Writer
    from aggregator.types import PollOutcome

    attempts: list[int] = []

    def write(tx: object) -> PollOutcome:
        attempts.append(1)
        raise StoreError("database error: OperationalError: database is locked", transient=True)

    loop = asyncio.new_event_loop()
    try:
        jobs = [StoreJob(write, loop.create_future()) for _ in range(5)]
        inbox: queue.SimpleQueue[list[Message]] = queue.SimpleQueue()
        inbox.put([*jobs, PollsDone()])
        Writer(memory_store, loop).run(inbox, between=lambda: None)
        loop.run_until_complete(asyncio.sleep(0))
        assert len(attempts) == 1  # one unit of work tried, then every job failed with it
        assert all("locked" in str(j.done.exception()) for j in jobs)
    finally:
        loop.close()


def test_database_errors_say_what_the_driver_said_without_sql_or_values(
    memory_store: SqlStore,
) -> None:
    from aggregator.errors import StoreError

    with pytest.raises(StoreError) as caught, memory_store.transaction() as tx:
        tx.sync_sources([], now=clock_now())
        tx.conn.exec_driver_sql("INSERT INTO sources (id) VALUES ('secret entry text')")
    message = str(caught.value)
    assert message.startswith("database error: IntegrityError:") and "NOT NULL" in message
    assert "secret entry text" not in message and "INSERT" not in message
    assert not caught.value.transient


def clock_now() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 11, 26, tzinfo=UTC)
