"""What `aggregator sources list/show` and `export-opml` say about each source: the config
(what is configured) joined with the store (what polling found), as rows, JSON or text.

Read-only: nothing is written to the database. Sources added to the config but not yet seen
by the daemon show as "new"; sources still stored but no longer configured as "(removed)".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .config import Config
from .types import SourceState

FIELDS = (
    "id", "url", "title", "group", "enabled", "configured", "status", "http_status", "last_poll",
    "last_ok", "next_check", "next_check_why", "entries", "failures", "last_error", "polled_url",
    "site_url",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SourceView:
    id: str
    url: str  # as configured (or as last configured, for a removed source)
    title: str | None  # the config's title, else the feed's own
    group: str | None
    enabled: bool
    configured: bool
    status: str  # new, ok, not_modified, failed, gone
    http_status: int | None
    last_poll: datetime | None
    last_ok: datetime | None
    next_check: datetime | None
    next_check_why: str | None  # what decided next_check: interval, cache, ttl, backoff ...
    entries: int
    failures: int
    last_error: str | None
    polled_url: str  # where polling goes now: differs from url after a permanent redirect
    site_url: str | None  # the feed's own link (OPML htmlUrl)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in FIELDS}
        for name in ("last_poll", "last_ok", "next_check"):
            out[name] = _iso(out[name])
        return out


def read_states(url: str) -> tuple[SourceState, ...]:
    """Every stored source's state: from an SQLite file directly when it is at the current
    schema (no SQLAlchemy import), else through the store (which migrates it first)."""
    from .store.peek import peek_source_states

    states = peek_source_states(url)
    if states is not None:
        return states
    from .store import open_store

    store = open_store(url)
    try:
        return store.source_states()
    finally:
        store.close()


def source_views(config: Config, states: Sequence[SourceState]) -> list[SourceView]:
    """Configured sources in config order, then stored ones no longer configured, by id."""
    by_id = {s.source_id: s for s in states}
    views: list[SourceView] = []
    for source in config.sources:
        state = by_id.pop(source.id, None)
        views.append(
            SourceView(
                id=source.id,
                url=source.url,
                title=source.title or (state.feed_title if state else None),
                group=source.group,
                enabled=source.enabled,
                configured=True,
                status=state.status if state else "new",
                http_status=state.http_status if state else None,
                last_poll=state.last_poll_at if state else None,
                last_ok=state.last_ok_at if state else None,
                next_check=state.next_check_at if state else None,
                next_check_why=state.next_check_why if state else _unseen(source.enabled),
                entries=state.entry_count if state else 0,
                failures=state.failures if state else 0,
                last_error=state.last_error if state else None,
                polled_url=state.url if state else source.url,
                site_url=state.feed_link if state else None,
            )
        )
    for state in sorted(by_id.values(), key=lambda s: s.source_id):
        views.append(
            SourceView(
                id=state.source_id, url=state.url, title=state.title or state.feed_title,
                group=None, enabled=False, configured=False, status=state.status,
                http_status=state.http_status, last_poll=state.last_poll_at,
                last_ok=state.last_ok_at, next_check=None, next_check_why="removed from the config",
                entries=state.entry_count, failures=state.failures, last_error=state.last_error,
                polled_url=state.url, site_url=state.feed_link,
            )
        )  # fmt: skip
    return views


def _unseen(enabled: bool) -> str:
    if not enabled:
        return "disabled"
    return "not polled yet: due as soon as the daemon reloads the config"


def _iso(when: datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def _when(when: datetime | None, never: str = "-") -> str:
    return when.strftime("%Y-%m-%d %H:%M:%SZ") if when else never


def _status(view: SourceView) -> str:
    if not view.configured:
        return f"{view.status} (removed)"
    return view.status if view.enabled else f"{view.status} (disabled)"


def format_table(views: Sequence[SourceView]) -> str:
    """One row per source, then the full text of the last errors."""
    header = ("ID", "STATUS", "HTTP", "LAST POLL", "NEXT CHECK", "ENTRIES", "FAILS", "URL")
    rows = [header]
    for v in views:
        rows.append(
            (v.id, _status(v), str(v.http_status or "-"), _when(v.last_poll, "never"),
             _when(v.next_check), str(v.entries), str(v.failures), v.polled_url)
        )  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    ]
    errors = [f"  {v.last_error}" for v in views if v.last_error]
    return "\n".join(lines + (["", "Last errors:", *errors] if errors else []))


def format_details(view: SourceView) -> str:
    """Every field of one source, one per line."""
    http = f" (HTTP {view.http_status})" if view.http_status else ""
    why = f" ({view.next_check_why})" if view.next_check_why else ""
    pairs = [
        ("id", view.id),
        ("title", view.title or "-"),
        ("url", view.url),
        *([("polled url", view.polled_url)] if view.polled_url != view.url else []),
        ("site", view.site_url or "-"),
        ("group", view.group or "-"),
        ("enabled", "yes" if view.enabled else "no"),
        ("status", _status(view) + http),
        ("last poll", _when(view.last_poll, "never")),
        ("last ok", _when(view.last_ok, "never")),
        ("next check", _when(view.next_check) + why),
        ("entries", str(view.entries)),
        ("failures", str(view.failures)),
        ("last error", view.last_error or "-"),
    ]
    width = max(len(k) for k, _ in pairs) + 1
    return "\n".join(f"{(k + ':').ljust(width)} {v}" for k, v in pairs)
