"""What `aggregator explain` and `sources show` tell (issue #14): the values, and their text.

Values the store reads (``store.history``, ``store.stories``) and the CLI prints: a source's
recent polls (``PollLog``), the verdicts taken about an entry (``Verdict``), the sources that
carried it (``Carrier``), where it stands in each output (``OutputPlace``), all of it as one
``Story`` per entry. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .types import as_utc


@dataclass(frozen=True, slots=True)
class PollLog:
    """One poll of one source, as the ``polls`` table keeps it."""

    at: datetime
    status: str
    http_status: int | None
    duration_ms: int
    url: str
    redirects: tuple[str, ...] = ()
    sent_etag: str | None = None
    sent_last_modified: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None
    next_check_at: datetime | None = None
    next_check_why: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)  # what a parsed poll stored
    repeat: bool = False  # a 304 that sent and got back the poll before's validators
    repeats: int = 0  # a run of repeats (issue #16): this many more after ``at`` ...
    last_at: datetime | None = None  # ... the last of them then

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", as_utc(self.at))
        object.__setattr__(self, "next_check_at", as_utc(self.next_check_at))
        object.__setattr__(self, "last_at", as_utc(self.last_at))


@dataclass(frozen=True, slots=True)
class Verdict:
    """One row of ``decisions``: what a poll decided about one entry of one source."""

    at: datetime
    source_id: str
    key: str
    entry_id: int | None
    action: str
    reason: str
    rule: str | None = None
    fields: tuple[str, ...] = ()
    title: str | None = None
    link: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", as_utc(self.at))


@dataclass(frozen=True, slots=True)
class Carrier:
    """A source that carries the entry (one row of ``items``)."""

    source_id: str
    key: str
    guid: str | None
    link: str | None
    primary: bool  # the merged entry's content is this source's
    first_seen_at: datetime
    updated_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "first_seen_at", as_utc(self.first_seen_at))
        object.__setattr__(self, "updated_at", as_utc(self.updated_at))


@dataclass(frozen=True, slots=True)
class OutputPlace:
    """Whether an output shows the entry now, and why (not)."""

    name: str
    shown: bool
    why: str


@dataclass(frozen=True, slots=True)
class Story:
    """Everything known of one entry; ``entry_id`` is None for one its source does not store:
    never stored (dropped over the per-feed cap, or by a source's rule) or pruned."""

    entry_id: int | None
    uid: str | None
    title: str
    link: str | None
    published_at: datetime | None = None
    first_seen_at: datetime | None = None
    updated_at: datetime | None = None
    sort_at: datetime | None = None
    carriers: tuple[Carrier, ...] = ()
    verdicts: tuple[Verdict, ...] = ()
    outputs: tuple[OutputPlace, ...] = ()

    def __post_init__(self) -> None:
        for name in ("published_at", "first_seen_at", "updated_at", "sort_at"):
            object.__setattr__(self, name, as_utc(getattr(self, name)))


# -- text -----------------------------------------------------------------------------------------


def when(value: datetime | None, never: str = "-") -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else never


def _iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def describe(verdict: Verdict) -> str:
    """One line: when, which source, what, by which rule or with which fields, and why."""
    how = f" [{verdict.rule}]" if verdict.rule else ""
    if verdict.fields:
        how += f" [{', '.join(verdict.fields)}]"
    target = f" -> entry {verdict.entry_id}" if verdict.action == "merge" else ""
    return (
        f"{when(verdict.at)}  {verdict.source_id}  {verdict.action}{how}{target}: {verdict.reason}"
    )


def format_story(story: Story) -> str:
    """The story of one entry, as `aggregator explain` prints it."""
    head = f"entry {story.entry_id}  {story.uid}"
    if story.entry_id is None:
        last = story.verdicts[-1] if story.verdicts else None
        gone = "pruned" if last and last.action == "pruned" else "never stored"
        head = f"{gone}: {last.source_id} {last.key}" if last else gone
    lines = [head, f"  title:      {story.title}", f"  link:       {story.link or '-'}"]
    if story.entry_id:
        lines += [
            f"  published:  {when(story.published_at)}  (sorted by {when(story.sort_at)})",
            f"  first seen: {when(story.first_seen_at)}, updated {when(story.updated_at)}",
        ]
    lines.append("  carried by:" if story.carriers else "  carried by: no source stores it")
    for c in story.carriers:
        role = "primary" if c.primary else "merged"
        lines.append(
            f"    {c.source_id} ({role})  key {c.key}  first seen {when(c.first_seen_at)}, "
            f"changed {when(c.updated_at)}"
        )
    lines.append("  decisions:" if story.verdicts else "  decisions: none kept")
    lines += [f"    {describe(v)}" for v in story.verdicts]
    if story.outputs:
        lines.append("  outputs:")
        lines += [f"    {o.name}: {'shown' if o.shown else 'not shown'} ({o.why})"
                  for o in story.outputs]  # fmt: skip
    return "\n".join(lines)


def story_json(story: Story) -> dict[str, Any]:
    """The story as JSON-ready data (`explain --json`)."""
    return {
        "entry_id": story.entry_id,
        "uid": story.uid,
        "title": story.title,
        "link": story.link,
        "published": _iso(story.published_at),
        "first_seen": _iso(story.first_seen_at),
        "updated": _iso(story.updated_at),
        "sources": [
            {"source": c.source_id, "key": c.key, "guid": c.guid, "link": c.link,
             "primary": c.primary, "first_seen": _iso(c.first_seen_at),
             "changed": _iso(c.updated_at)}
            for c in story.carriers
        ],
        "decisions": [
            {"at": _iso(v.at), "source": v.source_id, "key": v.key, "entry_id": v.entry_id,
             "action": v.action, "rule": v.rule, "fields": list(v.fields), "reason": v.reason}
            for v in story.verdicts
        ],
        "outputs": [{"name": o.name, "shown": o.shown, "why": o.why} for o in story.outputs],
    }  # fmt: skip


def format_polls(polls: Sequence[PollLog]) -> str:
    """A source's recent polls, newest first, for `sources show`."""
    if not polls:
        return "recent polls: none kept"
    lines = ["recent polls (newest first):"]
    for p in polls:
        http = f" HTTP {p.http_status}" if p.http_status else ""
        if p.repeats:
            lines.append(f"  {when(p.at)}  {p.status}{http}  {p.url or '-'}")
            lines.append(f"      and {p.repeats} more the same, the last {when(p.last_at)}")
        else:
            lines.append(f"  {when(p.at)}  {p.status}{http}  {p.duration_ms} ms  {p.url or '-'}")
        sent = _validators(p.sent_etag, p.sent_last_modified)
        got = _validators(p.etag, p.last_modified)
        if p.repeat:
            lines.append(f"      validators sent and received: {sent or 'as before'}")
        elif sent or got:
            lines.append(f"      validators sent: {sent or '-'}; received: {got or '-'}")
        lines += [f"      redirect: {hop}" for hop in p.redirects]
        if p.counts:
            counted = ", ".join(f"{n} {k}" for k, n in p.counts.items() if n) or "nothing"
            lines.append(f"      entries: {counted}")
        if p.error:
            lines.append(f"      error: {p.error}")
        why = f" ({p.next_check_why})" if p.next_check_why else ""
        lines.append(f"      next check: {when(p.next_check_at)}{why}")
    return "\n".join(lines)


def _validators(etag: str | None, last_modified: str | None) -> str:
    parts = ([f"ETag {etag}"] if etag else []) + (
        [f"Last-Modified {last_modified}"] if last_modified else []
    )
    return ", ".join(parts)


def poll_json(p: PollLog) -> dict[str, Any]:
    return {
        "at": _iso(p.at), "status": p.status, "http_status": p.http_status,
        "duration_ms": p.duration_ms, "url": p.url, "redirects": list(p.redirects),
        "sent": {"etag": p.sent_etag, "last_modified": p.sent_last_modified},
        "received": {"etag": p.etag, "last_modified": p.last_modified},
        "error": p.error, "next_check": _iso(p.next_check_at),
        "next_check_why": p.next_check_why, "stored": dict(p.counts), "repeat": p.repeat,
        "polls": 1 + p.repeats, "last_at": _iso(p.last_at),
    }  # fmt: skip
