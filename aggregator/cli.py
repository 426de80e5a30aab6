"""Command-line shell: builds Config, Store and the HTTP client, runs a command, prints.

The only module that prints. Exit codes: 0 ok, 1 storage/render failure, 2 config or usage error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .config import DEFAULT_PATH, Config, load_config
from .errors import ConfigError, RenderError, StoreError
from .publish import render_outputs
from .report import TickReport
from .scheduler import run_once
from .store import open_store
from .types import SourceState, utc_now

log = logging.getLogger("aggregator")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aggregator", description=__doc__)
    parser.add_argument("--version", action="version", version=f"aggregator {__version__}")
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=None,
        help=f"config file (default: $AGGREGATOR_CONFIG, else {DEFAULT_PATH})",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("check", help="validate the config; list every problem")
    once = sub.add_parser("once", help="poll the due sources now, store, render, exit")
    once.add_argument("--offline", action="store_true", help="read each source's fixture")
    once.add_argument(
        "--force",
        action="store_true",
        help="also poll sources not yet due (never one that is gone or told to wait)",
    )
    sub.add_parser("render", help="regenerate outputs from the database alone")
    sub.add_parser("sources", help="show each source's polling state")
    run = sub.add_parser("run", help="run the daemon: poll on schedule, serve the outputs")
    run.add_argument("--offline", action="store_true", help="poll each source's fixture")
    return parser


def _config_path(arg: Path | None) -> Path:
    if arg is not None:
        return arg
    env = os.environ.get("AGGREGATOR_CONFIG")
    return Path(env) if env else DEFAULT_PATH


def _cmd_check(config: Config) -> int:
    enabled = len(config.enabled_sources)
    names = ", ".join(o.name for o in config.outputs)
    print(f"{config.path}: ok ({len(config.sources)} sources, {enabled} enabled; outputs: {names})")
    return 0


def _print_report(report: TickReport) -> int:
    for outcome in report.failures:
        print(f"FAILED {outcome.error}", file=sys.stderr)
    print(report.summary())
    if report.render_error:
        print(f"error: {report.render_error}", file=sys.stderr)
        return 1
    return 0


def _cmd_once(config: Config, *, offline: bool, force: bool) -> int:
    store = open_store(config.storage.url)
    try:
        report = run_once(config, store, now=utc_now(), offline=offline, force=force)
    finally:
        store.close()
    return _print_report(report)


def _cmd_render(config: Config) -> int:
    store = open_store(config.storage.url)
    try:
        with store.transaction() as tx:
            tx.sync_sources(config.sources, now=utc_now())
        reports = render_outputs(config, store)
    finally:
        store.close()
    written = sum(len(r.written) for r in reports)
    unchanged = sum(len(r.unchanged) for r in reports)
    print(f"outputs: {written} written, {unchanged} unchanged")
    return 0


def _ago(state: SourceState) -> str:
    if state.last_poll_at is None:
        return "never"
    return state.last_poll_at.strftime("%Y-%m-%d %H:%M:%SZ")


def format_sources(states: Sequence[SourceState], configured: set[str]) -> str:
    """The ``sources`` table as text; full error messages follow the table."""
    header = ("ID", "STATUS", "HTTP", "LAST POLL", "ENTRIES", "FAILS", "URL")
    rows = [header]
    for s in states:
        status = s.status if s.source_id in configured else f"{s.status} (removed)"
        rows.append(
            (s.source_id, status, str(s.http_status or "-"), _ago(s), str(s.entry_count),
             str(s.failures), s.url)
        )  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    ]
    errors = [f"  {s.last_error}" for s in states if s.last_error]
    return "\n".join(lines + (["", "Last errors:", *errors] if errors else []))


def _cmd_sources(config: Config) -> int:
    store = open_store(config.storage.url)
    try:
        with store.transaction() as tx:
            tx.sync_sources(config.sources, now=utc_now())
        states = store.source_states()
    finally:
        store.close()
    print(format_sources(states, {s.id for s in config.sources}))
    return 0


def _cmd_run(config: Config, offline: bool) -> int:
    from .daemon import Daemon, run_daemon  # APScheduler and the server: only for the daemon
    from .metrics import Metrics
    from .systemd import Notifier

    store = open_store(config.storage.url)
    notifier = Notifier()
    daemon = Daemon(config, store, Metrics(), notifier, offline=offline)
    try:
        return run_daemon(daemon)
    finally:
        notifier.close()
        daemon.scheduler.close()
        store.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    for noisy in ("alembic", "apscheduler", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        config = load_config(_config_path(args.config))
        if args.command == "check":
            return _cmd_check(config)
        if args.command == "once":
            return _cmd_once(config, offline=args.offline, force=args.force)
        if args.command == "render":
            return _cmd_render(config)
        if args.command == "sources":
            return _cmd_sources(config)
        return _cmd_run(config, args.offline)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (StoreError, RenderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
