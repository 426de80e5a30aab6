"""Persistence behind the ``Store`` protocol; SQLAlchemy stays inside this package.

``open_store(url)`` creates the engine, runs the Alembic migrations to head and returns a
``SqlStore``. The API speaks only the dataclasses of ``aggregator.types``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..types import (
    Decision,
    Entry,
    Known,
    PollRecord,
    PollState,
    PrunePolicy,
    PruneReport,
    SourceState,
    StoredEntry,
    StoreResult,
)

if TYPE_CHECKING:
    from .sql import SqlStore

__all__ = ["Reader", "SourceLike", "SqlStore", "Store", "Transaction", "open_store"]


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


class Transaction(Protocol):
    """One unit of work (``with store.transaction() as tx``): what a poll and a reload write."""

    def known(self, source_id: str, entries: Sequence[Entry]) -> Known: ...
    def apply(
        self, source_id: str, decisions: Sequence[Decision], record: PollRecord
    ) -> StoreResult: ...
    def record_polls(self, records: Sequence[PollRecord]) -> None: ...
    def sync_sources(self, sources: Iterable[SourceLike], *, now: datetime) -> None: ...
    def remove_sources(self, source_ids: Sequence[str]) -> int: ...
    def prune(self, policy: PrunePolicy, *, dry_run: bool = False) -> PruneReport: ...
    def forget_history(self, before: datetime, *, at: datetime) -> tuple[int, int]:
        """Delete the polls and verdicts older than ``before`` (``[explain] keep_days``);
        remember ``at`` as the time of this prune."""


class Reader(Protocol):
    """What the renderers, the CLI and the server read."""

    def recent_entries(
        self, source_ids: Sequence[str], *, limit: int
    ) -> tuple[StoredEntry, ...]: ...
    def count_entries(self, source_ids: Sequence[str]) -> int: ...
    def entries_by_arrival(
        self, source_ids: Sequence[str], *, offset: int, limit: int
    ) -> tuple[StoredEntry, ...]: ...
    def source_state(self, source_id: str) -> SourceState | None: ...
    def source_states(self) -> tuple[SourceState, ...]: ...
    def count_failing(self) -> int: ...
    def ping(self) -> None: ...
    def content_generation(self) -> int:
        """Moves with every commit that changes what outputs show (``store.generation``)."""

    def history_pruned_at(self) -> datetime | None:
        """When any process last pruned the explain history (``forget_history``)."""


class Store(Reader, Protocol):
    """Storage as the scheduler sees it: the tick's reads, units of work, and the readers'."""

    def transaction(self) -> AbstractContextManager[Transaction]: ...
    def due_states(
        self, now: datetime, *, among: Sequence[str], force: bool = False
    ) -> dict[str, PollState]: ...
    def close(self) -> None: ...


def open_store(url: str) -> SqlStore:
    """Open (creating if needed) the database at ``url`` and migrate it to the latest schema.

    ``sqlite://`` (or ``sqlite:///:memory:``) is one in-memory database shared by every thread
    of the process: for tests.
    """
    from .engine import make_engine, migrate  # SQLAlchemy: only once a database is opened
    from .sql import SqlStore

    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    migrate(engine)
    return SqlStore(engine)


def __getattr__(name: str) -> Any:
    """``SqlStore`` on first use: the protocols above cost no SQLAlchemy import (issue #12)."""
    if name == "SqlStore":
        from .sql import SqlStore

        return SqlStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
