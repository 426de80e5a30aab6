"""Engine creation (SQLite pragmas) and Alembic migrations for the store.

Alembic is imported only when the database is behind ``HEAD_REVISION`` (a new database, or one
written by an older release): start-up is one query otherwise (issue #12).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from ..errors import StoreError
from .revision import HEAD_REVISION

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _in_memory(url: str) -> bool:
    return url in ("sqlite://", "sqlite:///:memory:")


def _masked(url: str) -> str:
    """``url`` with its password hidden, fit for a message (messages end up in logs)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # not a URL at all: no password to find in it
        return url


def make_engine(url: str) -> Engine:
    # An in-memory SQLite database lives as long as its connection: one, shared by all threads.
    shared: dict[str, Any] = (
        {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
        if _in_memory(url)
        else {}
    )
    try:
        engine = create_engine(url, **shared)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise StoreError(f"cannot open database {_masked(url)!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def schema_revisions(engine: Engine) -> tuple[str, ...]:
    """The revisions ``alembic_version`` holds (one query); () for a database without it."""
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version"))
            return tuple(str(row[0]) for row in rows)
    except SQLAlchemyError:  # no such table (a new database), or no database: Alembic will say
        return ()


_MIGRATE = 0x61676772_6D696772  # the migrations' advisory lock: "aggrmigr" in ASCII


def migrate(engine: Engine) -> None:
    """Run the Alembic migrations up to head (idempotent; Alembic only when one is due)."""
    if schema_revisions(engine) == (HEAD_REVISION,):
        return
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":  # nodes starting together migrate once (#17)
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATE})
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot migrate database {engine.url!r}: {exc}") from exc
