"""The ``[cluster]`` table (issue #17): several nodes sharing one PostgreSQL. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .configcheck import CLUSTER_KEYS, Problems, check_table, parse_duration


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Several ``aggregator run`` nodes on one PostgreSQL database: each claims due hosts for
    ``lease_s`` (a dead node's hosts are taken over once it expires), at most ``batch``
    sources a tick. Off: the single-node path, as on SQLite."""

    enabled: bool = False
    lease_s: float = 120.0
    batch: int = 2000


DEFAULT_CLUSTER = ClusterConfig()


def build_cluster(
    raw: Any, storage_url: str, timeout_s: float, problems: Problems
) -> ClusterConfig:
    """``[cluster]`` checked: a PostgreSQL database, a lease longer than a tick's polls."""
    table = check_table(raw, "cluster", CLUSTER_KEYS, problems)
    defaults = ClusterConfig()
    cluster = ClusterConfig(
        enabled=table.get("enabled", defaults.enabled),
        lease_s=parse_duration(table.get("lease")) or defaults.lease_s,
        batch=table.get("batch", defaults.batch),
    )
    if not cluster.enabled:
        return cluster
    if not storage_url.startswith("postgresql"):
        problems.add("cluster.enabled", "needs a PostgreSQL [storage] url (SQLite is one node's)")
    # A tick starts no poll after half the lease, and a poll lasts at most [poll] timeout: the
    # lease outlasts both, so no other node takes a host while it is still being polled.
    if cluster.lease_s < 2 * timeout_s:
        problems.add("cluster.lease", f"must be at least twice [poll] timeout ({2 * timeout_s:g}s)")
    return cluster
