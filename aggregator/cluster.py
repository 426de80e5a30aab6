"""Several nodes on one PostgreSQL (issue #17): how a tick gets its due sources and gives them
back, the config a node runs against the one the database was synced with, and re-rendering
what other nodes stored.

The scheduler's seam is ``Scheduler.work``: ``None`` is the single-node path (SQLite, or
PostgreSQL without ``[cluster]``), where nothing here runs. No SQLAlchemy in this module:
``store.leases`` speaks to the database.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from .errors import ConfigError
from .fetchloop import host_of
from .types import PollState

if TYPE_CHECKING:
    from .config import Config
    from .scheduler import Scheduler
    from .store.leases import ClusterView

log = logging.getLogger(__name__)

__all__ = ["ClusterWork", "Work", "join_cluster", "node_id"]


class Work(Protocol):
    """Where a tick's due sources come from when several nodes share the database."""

    def synced(self, config: Config, *, now: datetime) -> None:
        """The database was just synced with ``config`` (start, reload)."""

    def take(self, now: datetime, *, among: Sequence[str], force: bool) -> dict[str, PollState]:
        """Claim due sources (of ``among``) for this tick, with their poll state."""

    def give_back(self, now: datetime) -> None:
        """The tick is over: what it claimed is free again."""

    def settle(self, now: datetime, *, changed: bool) -> bool:
        """After the tick's polls (``changed``: it stored something the outputs show): True
        when another node stored something since this node last rendered."""

    def note(self) -> str | None:
        """What ``/healthz`` should add (config drift), if anything."""


class Leases(Protocol):
    """``store.leases.SqlLeases`` as this module uses it."""

    node: str

    def claim(
        self, now: datetime, *, lease_s: float, limit: int, force: bool = False
    ) -> dict[str, PollState]: ...
    def release(self, now: datetime) -> int: ...
    def sync_hosts(self, host_of: Callable[[str], str]) -> int: ...
    def record_config(self, digest: str, now: datetime) -> None: ...
    def view(self) -> ClusterView: ...


def node_id() -> str:
    """This node's name in leases: ``$AGGREGATOR_NODE``, else host name and process id."""
    return os.environ.get("AGGREGATOR_NODE") or f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class ClusterWork:
    """One node's share of the work: leases on due hosts, the content generation, config drift."""

    leases: Leases
    lease_s: float
    batch: int
    digest: str = ""
    drift: str | None = None
    _seen: int | None = None  # the content generation this node last rendered (or stored) at
    _wanted: bool = False

    def synced(self, config: Config, *, now: datetime) -> None:
        self.digest = config.digest
        moved = self.leases.sync_hosts(host_of)
        self.leases.record_config(config.digest, now)
        log.info("cluster node=%s joined: config %s, hosts of %d sources updated",
                 self.leases.node, config.digest or "-", moved)  # fmt: skip
        self._check_drift(self.leases.view())

    def take(self, now: datetime, *, among: Sequence[str], force: bool) -> dict[str, PollState]:
        view = self.leases.view()
        self._check_drift(view)
        if view.outputs != self._seen:
            self._seen, self._wanted = view.outputs, True
        claimed = self.leases.claim(now, lease_s=self.lease_s, limit=self.batch, force=force)
        wanted = set(among)
        # A source this node's config lacks (drift) stays due: its host is free after the tick.
        states = {i: s for i, s in claimed.items() if i in wanted}
        log.debug("cluster node=%s claimed=%d unknown=%d", self.leases.node, len(states),
                  len(claimed) - len(states))  # fmt: skip
        return states

    def give_back(self, now: datetime) -> None:
        self.leases.release(now)

    def settle(self, now: datetime, *, changed: bool) -> bool:
        if changed:  # the others re-render at their next tick; this node renders now
            self._seen = self.leases.view().outputs  # (its own commits moved the generation)
        wanted, self._wanted = self._wanted, False
        return wanted

    def note(self) -> str | None:
        return self.drift

    def _check_drift(self, view: ClusterView) -> None:
        """Log when this node's config starts (or stops) differing from the cluster's."""
        drift = None
        if view.config_digest is not None and view.config_digest != self.digest:
            when = view.config_at.strftime("%Y-%m-%d %H:%M:%SZ") if view.config_at else "-"
            drift = (f"config drift: this node runs config {self.digest or '-'}, the database "
                     f"was last synced with {view.config_digest} by node {view.config_node} "
                     f"at {when}")  # fmt: skip
        if drift != self.drift:
            if drift:
                log.warning("%s", drift)
            else:
                log.info("config drift over: this node runs the cluster's config %s", self.digest)
        self.drift = drift


def join_cluster(scheduler: Scheduler, config: Config) -> None:
    """Put ``scheduler`` on the cluster path: host leases, entries decided one node at a time,
    no poll started after half the lease (so no lease runs out under a poll)."""
    from .store.leases import ClusterStore, SqlLeases
    from .store.sql import SqlStore

    if not isinstance(scheduler.store, SqlStore):
        raise ConfigError(["cluster.enabled: needs the SQL store"])
    engine = scheduler.store.engine
    scheduler.store = ClusterStore(engine)
    scheduler.work = ClusterWork(SqlLeases(engine, node_id()), lease_s=config.cluster.lease_s,
                                 batch=config.cluster.batch, digest=config.digest)  # fmt: skip
    limit = config.cluster.lease_s / 2
    deadline = scheduler.tick_deadline_s
    scheduler.tick_deadline_s = limit if deadline is None else min(deadline, limit)
