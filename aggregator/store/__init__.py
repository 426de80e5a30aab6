"""Persistence behind the ``Store`` protocol; SQLAlchemy stays inside this package.

``open_store(url)`` creates the engine, runs the Alembic migrations to head and returns a
``SqlStore``. The API speaks only the dataclasses of ``aggregator.types``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Protocol

from ..types import (
    Decision,
    Entry,
    Known,
    PollRecord,
    PollState,
    SourceState,
    StoredEntry,
    StoreResult,
)
from .engine import make_engine, migrate
from .sql import SqlStore

__all__ = ["SourceLike", "SqlStore", "Store", "open_store"]


class SourceLike(Protocol):
    """What the store needs to know of a configured source."""

    @property
    def id(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def title(self) -> str | None: ...
    @property
    def group(self) -> str | None: ...
    @property
    def enabled(self) -> bool: ...


class Store(Protocol):
    """Everything the pipeline, CLI and scheduler may ask of storage."""

    def sync_sources(self, sources: Iterable[SourceLike], *, now: datetime) -> None: ...
    def batch(self) -> AbstractContextManager[None]: ...
    def source_state(self, source_id: str) -> SourceState | None: ...
    def source_states(self) -> tuple[SourceState, ...]: ...
    def known(self, source_id: str, entries: Sequence[Entry]) -> Known: ...
    def apply(
        self, source_id: str, decisions: Sequence[Decision], record: PollRecord
    ) -> StoreResult: ...
    def poll_states(self, source_ids: Sequence[str]) -> dict[str, PollState]: ...
    def record_polls(self, records: Sequence[PollRecord]) -> None: ...
    def due_states(self, now: datetime, *, among: Sequence[str]) -> dict[str, PollState]: ...
    def schedule(self, source_id: str, next_check_at: datetime | None) -> None: ...
    def remove_sources(self, source_ids: Sequence[str]) -> int: ...
    def ping(self) -> None: ...
    def count_failing(self) -> int: ...
    def recent_entries(
        self, source_ids: Sequence[str], *, limit: int
    ) -> tuple[StoredEntry, ...]: ...
    def decisions_for(self, entry_id: int) -> tuple[tuple[str, str, str, str], ...]: ...
    def close(self) -> None: ...


def open_store(url: str) -> SqlStore:
    """Open (creating if needed) the database at ``url`` and migrate it to the latest schema."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    migrate(engine)
    return SqlStore(engine)
