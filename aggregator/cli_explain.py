"""The CLI of issue #14: `record`, `once --replay`, `explain`, and `sources show`'s history.

Each command imports what it needs when it runs (start-up, issue #12); printing happens here
and in ``cli``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Config

if TYPE_CHECKING:
    from .recording import Recording, Round
    from .report import TickReport
    from .story import PollLog


def add_parsers(sub: Any) -> None:
    """`record` and `explain` (``--replay`` is an option of `once` and `run`, in ``cli``)."""
    record = sub.add_parser(
        "record", help="poll sources for real and keep every response as a replayable round"
    )
    record.add_argument("dir", type=Path, help="the recording's directory (a round is appended)")
    record.add_argument(
        "--sources", nargs="+", metavar="ID", help="poll these sources (default: every enabled)"
    )
    explain = sub.add_parser(
        "explain", help="the story of an entry: its sources, keys, every decision, its outputs"
    )
    explain.add_argument(
        "query", help="an entry's number or uid, a key, a link, or a fragment of a title"
    )
    explain.add_argument("--json", action="store_true", help="a JSON list, one object per entry")
    explain.add_argument("--limit", type=int, default=20, help="at most this many entries")


def run_command(config: Config, args: argparse.Namespace) -> int:
    if args.command == "record":
        return cmd_record(config, args.dir, sources=args.sources)
    return cmd_explain(config, args.query, as_json=args.json, limit=args.limit)


# -- record and replay ----------------------------------------------------------------------------


def _statuses(recording: Recording, number: int) -> str:
    counts = Counter(
        str(e.status) if e.error is None else e.error.partition(":")[0]
        for e in recording.of_round(number)
    )
    return ", ".join(f"{n} x {what}" for what, n in sorted(counts.items()))


def _round_line(played: Round, report: TickReport) -> str:
    at = played.at.strftime("%Y-%m-%d %H:%M:%SZ")
    return f"round {played.number} ({at}, {len(played.sources)} sources): {report.summary()}"


def _failures(report: TickReport) -> None:
    for outcome in report.failures:
        print(f"  FAILED {outcome.error}", file=sys.stderr)


def _print_round(played: Round, report: TickReport) -> None:
    print(_round_line(played, report))
    _failures(report)


def cmd_record(config: Config, directory: Path, *, sources: list[str] | None) -> int:
    from .record import record

    played, report, recording = record(config, directory, sources=sources)
    responses = len(recording.of_round(played.number))
    print(f"recorded round {played.number} in {directory}: {len(played.sources)} sources, "
          f"{responses} responses ({_statuses(recording, played.number) or 'none'})")  # fmt: skip
    _print_round(played, report)
    return 0


def cmd_once_replay(config: Config, directory: Path) -> int:
    """`aggregator once --replay DIR`: every recorded round, one tick each, at its time."""
    from .recording import load_recording
    from .replay import replay
    from .store import open_store

    recording = load_recording(directory)
    store = open_store(config.storage.url)
    try:
        played = replay(config, store, recording, on_round=_print_round)
    finally:
        store.close()
    errors = [t.render_error for _, t in played if t.render_error]
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0


# -- explain and sources show ---------------------------------------------------------------------


def cmd_explain(config: Config, query: str, *, as_json: bool, limit: int) -> int:
    from .explain import explain
    from .store import open_store
    from .story import format_story, story_json

    store = open_store(config.storage.url)
    try:
        stories = explain(config, store, query, limit=max(1, limit))
    finally:
        store.close()
    if as_json:
        print(json.dumps([story_json(s) for s in stories], ensure_ascii=False, indent=2))
    elif stories:
        print("\n\n".join(format_story(s) for s in stories))
    else:
        print(f"no entry matches {query!r} (decisions are kept {config.explain.keep_days} days)")
    return 0 if stories else 1


def recent_polls(config: Config, source_id: str, *, limit: int = 10) -> tuple[PollLog, ...]:
    """The source's recent polls, for `sources show`: from an SQLite file at the current
    schema without SQLAlchemy (``store.peek``), else through the store."""
    from .errors import StoreError
    from .explain import recent_polls as read
    from .store import open_store
    from .store.peek import peek_polls

    peeked = peek_polls(config.storage.url, source_id, limit=limit)
    if peeked is not None:
        return peeked
    try:
        store = open_store(config.storage.url)
        try:
            return read(store, source_id, limit=limit)
        finally:
            store.close()
    except StoreError as exc:
        print(f"warning: no poll history: {exc}", file=sys.stderr)
        return ()
