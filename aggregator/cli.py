"""Command-line shell: builds Config, Store and the HTTP client, runs a command, prints.

The only module that prints. Exit codes: 0 ok, 1 a failure outside the input (storage, outputs,
network), 2 a config or usage error, 130 interrupted. Every failure is one line on stderr
saying what failed, where, and what to do; ``--traceback`` (or ``--log-level DEBUG``) adds the
traceback.

Start-up is a feature (issue #12): each command imports what it needs when it runs. ``check``
and ``--help`` load no SQLAlchemy, Alembic, aiohttp or httpx; ``sources list`` reads an SQLite
database without SQLAlchemy (``store.peek``); only ``once``, ``render``, ``run``, discovery and
``--purge`` load the full stack.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .cli_explain import add_parsers as add_explain_parsers
from .config import DEFAULT_PATH, Config, load_config
from .errors import AggregatorError, ConfigError

if TYPE_CHECKING:
    from .report import TickReport

log = logging.getLogger("aggregator")

DESCRIPTION = "A feed aggregator daemon: poll sources, deduplicate, store, serve merged feeds."


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aggregator", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"aggregator {__version__}")
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=None,
        help=f"config file (default: $AGGREGATOR_CONFIG, else {DEFAULT_PATH})",
    )
    parser.add_argument(
        "--log-level",
        default=None,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="overrides the config's [log] level (default INFO)",
    )
    parser.add_argument("--traceback", action="store_true", help="show the traceback of a failure")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("check", help="validate the config; list every problem")
    once = sub.add_parser("once", help="poll the due sources now, store, render, exit")
    once.add_argument("--offline", action="store_true", help="read each source's fixture")
    once.add_argument(
        "--replay", type=Path, metavar="DIR", help="play a recording's rounds (`record`) back"
    )
    once.add_argument(
        "--force",
        action="store_true",
        help="also poll sources not yet due (never one that is gone or told to wait)",
    )
    sub.add_parser("render", help="regenerate outputs from the database alone")
    prune = sub.add_parser(
        "prune", help="apply [retention] now: prune old entries (their keys kept), re-render"
    )
    prune.add_argument("--dry-run", action="store_true", help="only report what would go")
    _sources_parser(sub)
    add_explain_parsers(sub)
    opml_in = sub.add_parser(
        "import-opml", help="add the feeds of an OPML file (as feed readers export them)"
    )
    opml_in.add_argument("file", type=Path, help="the OPML file; - reads standard input")
    opml_in.add_argument(
        "--group", help="put every imported source in this group (default: the OPML folders)"
    )
    opml_out = sub.add_parser("export-opml", help="write the sources as OPML 2.0")
    opml_out.add_argument(
        "-o", "--output", type=Path, help="write to this file (default: standard output)"
    )
    run = sub.add_parser("run", help="run the daemon: poll on schedule, serve the outputs")
    run.add_argument("--offline", action="store_true", help="poll each source's fixture")
    run.add_argument(
        "--replay", type=Path, metavar="DIR", help="each tick plays a recording's next round"
    )
    return parser


def _sources_parser(sub: Any) -> None:
    sources = sub.add_parser(
        "sources", help="list, show, add or remove sources (alone: the table of sources)"
    )
    actions = sources.add_subparsers(dest="action", metavar="ACTION")
    listing = actions.add_parser("list", help="one row per source (the default action)")
    listing.add_argument("--json", action="store_true", help="a JSON list of objects")
    show = actions.add_parser("show", help="one source's details: state, next check and why")
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help="a JSON object")
    add = actions.add_parser(
        "add", help="add a feed, or a web page whose feed is found; edits the config in place"
    )
    add.add_argument("url", help="the feed's URL, or a page that links to its feed")
    add.add_argument("--id", help="the source id (default: from the feed's title or host)")
    add.add_argument("--group", help="the source's group")
    add.add_argument("--title", help="the source's title (default: the feed's own)")
    add.add_argument(
        "-y", "--yes", action="store_true", help="when several feeds are found, take the first"
    )
    add.add_argument(
        "--no-fetch",
        action="store_true",
        help="add the URL as given: no request, no discovery (the id comes from --id or the host)",
    )
    remove = actions.add_parser("remove", help="remove a source from the config")
    remove.add_argument("id")
    remove.add_argument(
        "--purge", action="store_true", help="also delete the stored entries only it carried"
    )


def _config_path(arg: Path | None) -> Path:
    if arg is not None:
        return arg
    env = os.environ.get("AGGREGATOR_CONFIG")
    return Path(env) if env else DEFAULT_PATH


# -- check, once, render, run ---------------------------------------------------------------------


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
    from .progress import progress_bar
    from .scheduler import run_once
    from .store import open_store
    from .types import utc_now

    store = open_store(config.storage.url)
    try:
        now = utc_now()
        with progress_bar("polling") as bar:
            if bar.drawn:  # the bar's length: the sources this tick will poll
                with store.transaction() as tx:
                    tx.sync_sources(config.sources, now=now)
                among = [s.id for s in config.enabled_sources]
                bar.update(total=len(store.due_states(now, among=among, force=force)))
            report = run_once(config, store, now=now, offline=offline, force=force,
                              on_progress=bar.advance)  # fmt: skip
    finally:
        store.close()
    return _print_report(report)


def _cmd_render(config: Config) -> int:
    from .publish import render_outputs
    from .store import open_store
    from .types import utc_now

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


def _cmd_prune(config: Config, *, dry_run: bool) -> int:
    from .prune import describe, run_prune
    from .publish import render_outputs
    from .store import open_store
    from .types import utc_now

    store = open_store(config.storage.url)
    try:
        now = utc_now()
        report = run_prune(config, store, now=now, dry_run=dry_run)
        reports = render_outputs(config, store) if report.items and not dry_run else ()
    finally:
        store.close()
    print("\n".join(describe(report, config, now=now)))
    if reports:  # outputs no longer list what was pruned
        print(f"outputs: {sum(len(r.written) for r in reports)} written")
    return 0


def _cmd_run(
    config: Config, offline: bool, replay: Path | None = None, *, follow_log_level: bool = True
) -> int:
    from .daemon import Daemon, run_daemon  # APScheduler and the server: only for the daemon
    from .metrics import Metrics
    from .recording import load_recording
    from .replay import Replayer
    from .store import open_store
    from .systemd import Notifier

    replayer = Replayer(load_recording(replay)) if replay is not None else None
    store = open_store(config.storage.url)
    notifier = Notifier()
    daemon = Daemon(config, store, Metrics(), notifier, offline=offline, replay=replayer,
                    follow_log_level=follow_log_level)  # fmt: skip
    try:
        return run_daemon(daemon)
    finally:
        notifier.close()
        daemon.scheduler.close()
        store.close()


# -- main -----------------------------------------------------------------------------------------


def _dispatch(args: argparse.Namespace) -> int:
    path = _config_path(args.config)
    config = load_config(path)
    if args.log_level is None:  # --log-level wins over the config's [log] level
        logging.getLogger().setLevel(config.log_level)
    command = args.command
    if command == "check":
        return _cmd_check(config)
    if command in ("once", "run") and args.replay is not None and args.offline:
        raise ConfigError(["--replay and --offline: choose one"], path=str(path))
    if command == "once" and args.replay is not None:
        from .cli_explain import cmd_once_replay

        return cmd_once_replay(config, args.replay)
    if command == "once":
        return _cmd_once(config, offline=args.offline, force=args.force)
    if command == "render":
        return _cmd_render(config)
    if command == "prune":
        return _cmd_prune(config, dry_run=args.dry_run)
    if command in ("record", "explain"):
        from .cli_explain import run_command as run_explain

        return run_explain(config, args)
    if command in ("sources", "import-opml", "export-opml"):
        from .cli_sources import run_command

        return run_command(config, path, args)
    return _cmd_run(config, args.offline, args.replay, follow_log_level=args.log_level is None)


def _exit_status(exc: AggregatorError) -> int:
    if isinstance(exc, ConfigError):
        return 2
    status = getattr(exc, "exit_status", 1)  # EditError, OpmlError, UsageError: 2
    return status if isinstance(status, int) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level or "INFO",  # until the config is read: its [log] level then
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger().setLevel(args.log_level or "INFO")  # (basicConfig may be a no-op)
    for noisy in ("alembic", "apscheduler", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    traceback = args.traceback or args.log_level == "DEBUG"
    try:
        return _dispatch(args)
    except AggregatorError as exc:
        return _fail(str(exc), _exit_status(exc), traceback=traceback)
    except BrokenPipeError:  # `aggregator sources | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # a file the command reads or writes
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"{where}{exc.strerror or exc}", 1, traceback=traceback)
    except KeyboardInterrupt:
        return _fail("interrupted", 130, traceback=traceback)
    except Exception as exc:  # a bug: still one line, and the way to the details (issue #12)
        message = (
            f"unexpected {type(exc).__name__}: {exc} "
            "(a bug: run again with --traceback and report what it shows)"
        )
        return _fail(message, 1, traceback=traceback)


def _fail(message: str, status: int, *, traceback: bool) -> int:
    if traceback:
        import traceback as tb

        tb.print_exc(file=sys.stderr)
    print(f"error: {message}", file=sys.stderr)
    return status
