"""Conversions between Core rows and the dataclasses of ``aggregator.types``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from ..story import PollLog
from ..types import Enclosure, Entry, FeedHints, PollState, Provenance, SourceState, StoredEntry

# One encoder for every call: ``json.dumps`` with options builds a new one each time, which
# costs more than encoding the short lists stored here (two per entry).
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def dumps(value: Any) -> str:
    return "[]" if not value and isinstance(value, list | tuple) else _ENCODE(value)


def entry_values(entry: Entry) -> dict[str, Any]:
    """Columns of ``entries`` that come straight from the source's item."""
    return {
        "title": entry.title,
        "link": entry.link,
        "norm_link": entry.norm_link,
        "norm_title": entry.norm_title,
        "author": entry.author,
        "published_at": entry.published_at,
        "content_html": entry.content_html,
        "summary": entry.summary,
        "thumbnail": entry.thumbnail,
        "categories": dumps(list(entry.categories)),
        "enclosures": dumps([[e.url, e.type, e.length] for e in entry.enclosures]),
        "content_hash": entry.content_hash,
    }


NO_HINTS = FeedHints()


def _int_list(value: str | None) -> tuple[int, ...]:
    return tuple(json.loads(value)) if value and value != "[]" else ()


def to_state(row: Any, entry_count: int) -> SourceState:
    """From a row of ``sources`` (every column)."""
    return SourceState(
        source_id=row.id,
        url=row.url,
        title=row.title,
        feed_title=row.feed_title,
        feed_link=row.feed_link,
        etag=row.etag,
        last_modified=row.last_modified,
        body_hash=row.body_hash,
        last_poll_at=row.last_poll_at,
        last_ok_at=row.last_ok_at,
        status=row.status,
        http_status=row.http_status,
        failures=row.failures,
        last_error=row.last_error,
        next_check_at=row.next_check_at,
        next_check_why=row.next_check_why,
        entry_count=entry_count,
        enabled=row.enabled,
        ttl_s=row.ttl_s,
        skip_hours=_int_list(row.skip_hours),
        skip_days=_int_list(row.skip_days),
    )


POLL_COLUMNS = (
    "id", "url", "etag", "last_modified", "body_hash", "failures", "ttl_s", "skip_hours",
    "skip_days",
)  # fmt: skip


def to_poll_state(row: Sequence[Any]) -> PollState:
    """From a row of ``POLL_COLUMNS``."""
    source_id, url, etag, last_modified, body_hash, failures, ttl_s, hours, days = row
    if ttl_s is None and hours == days == "[]":  # most feeds: no hints (one shared object)
        hints = NO_HINTS
    else:
        hints = FeedHints(ttl_s, _int_list(hours), _int_list(days))
    return PollState(source_id, url, etag, last_modified, body_hash, failures, hints)


def to_stored(row: Any, sources: tuple[Provenance, ...], group: str | None) -> StoredEntry:
    """From a row of ``entries`` (every column)."""
    return StoredEntry(
        uid=row.uid,
        title=row.title,
        link=row.link,
        author=row.author,
        published_at=row.published_at or row.first_seen_at,
        updated_at=row.updated_at,
        content_html=row.content_html,
        summary=row.summary,
        thumbnail=row.thumbnail,
        categories=tuple(json.loads(row.categories)),
        enclosures=tuple(
            Enclosure(url, typ, length) for url, typ, length in json.loads(row.enclosures)
        ),
        group=group,
        sources=sources,
    )


def to_poll_log(row: Any) -> PollLog:
    """From a row of ``polls`` (every column; issue #14); a repeat's URL and validators are
    left for ``fill_repeats``."""
    counts = dict(part.split("=", 1) for part in (row.counts or "").split())
    nxt = None if row.next_check_s is None else row.at + timedelta(seconds=row.next_check_s)
    repeats = row.repeats or 0
    return PollLog(
        at=row.at,
        status=row.status,
        http_status=row.http_status,
        duration_ms=row.duration_ms,
        url=row.url or "",
        redirects=tuple(row.redirects.split("\n")) if row.redirects else (),
        sent_etag=row.sent_etag,
        sent_last_modified=row.sent_last_modified,
        etag=row.etag,
        last_modified=row.last_modified,
        error=row.error,
        next_check_at=nxt,
        next_check_why=row.next_check_why,
        counts={name: int(value) for name, value in counts.items()},
        repeat=row.url is None,
        repeats=repeats,
        last_at=row.last_at if repeats else None,
    )


def fill_repeats(newest_first: list[PollLog], older: PollLog | None) -> tuple[PollLog, ...]:
    """Repeats take the URL and validators of the poll before them (``older``: the newest
    poll before these that kept its own); where none is known they stay empty."""
    carried = older
    filled: list[PollLog] = []
    for poll in reversed(newest_first):
        if poll.repeat and carried is not None:
            url = carried.redirects[-1].split(" ", 1)[1] if carried.redirects else carried.url
            poll = replace(poll, url=url, sent_etag=carried.etag,
                           sent_last_modified=carried.last_modified, etag=carried.etag,
                           last_modified=carried.last_modified)  # fmt: skip
        elif not poll.repeat:
            carried = poll
        filled.append(poll)
    return tuple(reversed(filled))


def open_run(run: Any) -> PollLog:
    """The run of repeats a source's row holds (``history._OPEN_RUN``: count, first and last
    poll, why the next check is when it is), as the row it will become (which keeps no next
    check: ``sources show`` gives the source's own)."""
    count, first_at, last_at, why = run
    return PollLog(at=first_at or last_at, status="not_modified", http_status=304,
                   duration_ms=0, url="", next_check_why=why,
                   repeat=True, repeats=count - 1,
                   last_at=last_at if count > 1 else None)  # fmt: skip
