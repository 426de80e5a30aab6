"""The status page's data: the daemon's health and every source's state, failing first.

Pure: no I/O; ``now`` is an argument. The daemon builds a ``StatusReport``; the server renders
it as HTML (``html.render_status``) or JSON (``render_status_json``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aggregator.render._common import rfc3339
from aggregator.types import SourceState

FAILING = frozenset({"failed", "gone"})


@dataclass(frozen=True, slots=True)
class DaemonStatus:
    """The daemon itself: healthy or not, and what its last tick did."""

    healthy: bool
    detail: str
    sources: int  # enabled sources
    due_now: int  # enabled sources whose next check has passed: the queue
    tick_every_s: float
    last_tick_at: datetime | None = None
    tick_duration_s: float | None = None
    tick_due: int = 0
    tick_ok: int = 0
    tick_failed: int = 0
    tick_deferred: int = 0
    tick_new: int = 0
    tick_updated: int = 0
    render_error: str | None = None


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """One source as the status page lists it."""

    source_id: str
    title: str
    group: str | None
    url: str
    enabled: bool
    status: str
    http_status: int | None
    last_poll_at: datetime | None
    last_ok_at: datetime | None
    next_check_at: datetime | None
    next_check_why: str | None
    entry_count: int
    failures: int
    last_error: str | None

    @property
    def failing(self) -> bool:
        return self.status in FAILING


@dataclass(frozen=True, slots=True)
class StatusReport:
    daemon: DaemonStatus
    sources: tuple[SourceStatus, ...]  # failing first, then by id

    @property
    def failing(self) -> int:
        return sum(s.failing for s in self.sources)


def source_rows(
    states: Iterable[SourceState], groups: Mapping[str, str | None]
) -> tuple[SourceStatus, ...]:
    """The configured sources' states (``groups``: id -> group, for the configured ones only),
    failing first, then by id."""
    rows = [
        SourceStatus(
            source_id=s.source_id,
            title=s.title or s.feed_title or s.source_id,
            group=groups[s.source_id],
            url=s.url,
            enabled=s.enabled,
            status=s.status,
            http_status=s.http_status,
            last_poll_at=s.last_poll_at,
            last_ok_at=s.last_ok_at,
            next_check_at=s.next_check_at,
            next_check_why=s.next_check_why,
            entry_count=s.entry_count,
            failures=s.failures,
            last_error=s.last_error,
        )
        for s in states
        if s.source_id in groups
    ]
    return tuple(sorted(rows, key=lambda r: (not r.failing, r.source_id)))


def due_now(states: Iterable[SourceState], now: datetime) -> int:
    """Enabled sources, not gone, whose next check is due."""
    return sum(
        s.enabled and s.status != "gone" and (s.next_check_at is None or s.next_check_at <= now)
        for s in states
    )


def render_status_json(report: StatusReport, *, now: datetime) -> bytes:
    """``/status.json``: the same data as the page, times in RFC 3339 UTC, keys in fixed order."""
    daemon = report.daemon
    document = {
        "generated_at": rfc3339(now),
        "daemon": {
            "healthy": daemon.healthy,
            "detail": daemon.detail,
            "last_tick_at": _time(daemon.last_tick_at),
            "tick_duration_s": daemon.tick_duration_s,
            "tick_every_s": daemon.tick_every_s,
            "last_tick": {
                "due": daemon.tick_due,
                "ok": daemon.tick_ok,
                "failed": daemon.tick_failed,
                "deferred": daemon.tick_deferred,
                "new": daemon.tick_new,
                "updated": daemon.tick_updated,
            },
            "due_now": daemon.due_now,
            "sources": daemon.sources,
            "failing": report.failing,
            "render_error": daemon.render_error,
        },
        "sources": [_source_json(row) for row in report.sources],
    }
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _source_json(row: SourceStatus) -> dict[str, Any]:
    return {
        "id": row.source_id,
        "title": row.title,
        "group": row.group,
        "url": row.url,
        "enabled": row.enabled,
        "status": row.status,
        "http_status": row.http_status,
        "last_poll": _time(row.last_poll_at),
        "last_ok": _time(row.last_ok_at),
        "next_check": _time(row.next_check_at),
        "next_check_why": row.next_check_why,
        "entries": row.entry_count,
        "failures": row.failures,
        "last_error": row.last_error,
    }


def _time(value: datetime | None) -> str | None:
    return rfc3339(value) if value is not None else None
