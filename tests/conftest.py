"""Shared fixtures: seeds, an injectable clock, stores on SQLite (and PostgreSQL when present)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggregator.store import SqlStore, open_store

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("AGGREGATOR_TEST_PG_URL", "")


class Clock:
    """A fixed, advanceable ``now`` for code that takes ``now`` as an argument."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 26, 12, 0, tzinfo=UTC))


@pytest.fixture
def seeds_dir() -> Path:
    return ROOT / "seeds"


@pytest.fixture
def corpus_dir() -> Path:
    return ROOT / "tests" / "data" / "corpus"


def _reset_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def pg_or_skip() -> str:
    """The test server's URL; without one, skip, unless ``AGGREGATOR_REQUIRE_PG`` is set
    (``.ci/run`` sets it on a machine with PostgreSQL): then a PostgreSQL test that cannot run
    fails (issue #17)."""
    if not PG_URL:
        if os.environ.get("AGGREGATOR_REQUIRE_PG"):
            pytest.fail("AGGREGATOR_REQUIRE_PG is set but AGGREGATOR_TEST_PG_URL is not")
        pytest.skip("PostgreSQL not available: set AGGREGATOR_TEST_PG_URL (.ci/run does)")
    return PG_URL


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL: a temp SQLite file, or the test PostgreSQL wiped clean."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'test.db'}"
    url = pg_or_skip()
    _reset_postgres(url)
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    s = open_store(store_url)
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqlStore]:
    s = open_store(f"sqlite:///{tmp_path / 'test.db'}")
    yield s
    s.close()


@pytest.fixture
def memory_store() -> Iterator[SqlStore]:
    """An in-memory SQLite database, migrated: for pipeline and scheduler tests."""
    s = open_store("sqlite://")
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _root_log_level() -> Iterator[None]:
    """``cli.main`` sets the root logger's level (``--log-level``, ``[log] level``): keep one
    test's level from silencing the next one's ``caplog``."""
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)
