"""A PostgreSQL database of its own for a test (created, then dropped with every connection)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, make_url, text


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new empty database on the server of ``server_url``; its URL. Dropped afterwards, even
    with nodes still connected (``WITH (FORCE)``: PostgreSQL >= 13)."""
    name = f"agg_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
