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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .config import DEFAULT_PATH, Config, load_config
from .errors import AggregatorError, ConfigError

if TYPE_CHECKING:
    from .discover import Candidate
    from .report import TickReport
    from .sourceview import SourceView

log = logging.getLogger("aggregator")

RELOAD_HINT = (
    "a running daemon applies it once it reloads its config: "
    "`systemctl reload aggregator`, or `kill -HUP <pid of aggregator run>`"
)
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
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument("--traceback", action="store_true", help="show the traceback of a failure")
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
    _sources_parser(sub)
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


def _cmd_run(config: Config, offline: bool) -> int:
    from .daemon import Daemon, run_daemon  # APScheduler and the server: only for the daemon
    from .metrics import Metrics
    from .store import open_store
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


# -- sources --------------------------------------------------------------------------------------


def _views(config: Config) -> list[SourceView]:
    from .sourceview import read_states, source_views

    return source_views(config, read_states(config.storage.url))


def _print_json(value: Any) -> None:
    import json

    print(json.dumps(value, ensure_ascii=False, indent=2))


def _cmd_sources_list(config: Config, *, as_json: bool) -> int:
    from .sourceview import format_table

    views = _views(config)
    if as_json:
        _print_json([v.as_json() for v in views])
    else:
        print(format_table(views))
    return 0


def _cmd_sources_show(config: Config, source_id: str, *, as_json: bool) -> int:
    from .sourceview import format_details

    views = {v.id: v for v in _views(config)}
    if source_id not in views:
        known = ", ".join(views) or "none"
        raise UsageError(
            f"no source {source_id!r} in {config.path} or the database (known: {known})"
        )
    if as_json:
        _print_json(views[source_id].as_json())
    else:
        print(format_details(views[source_id]))
    return 0


def _cmd_sources_add(config: Config, path: Path, args: argparse.Namespace) -> int:
    from .configcheck import is_http_url, is_id
    from .configedit import EditError, add_sources, derive_id
    from .process.links import normalise_link

    problem = is_http_url(args.url) or (is_id(args.id) if args.id is not None else None)
    if problem:
        what = "URL" if is_http_url(args.url) else "--id"
        raise UsageError(f"{what}: {problem}")
    if args.no_fetch:
        url, feed_title = args.url, None
    else:
        candidates = _discover(args.url, config)
        if len(candidates) > 1 and not args.yes:
            print(f"several feeds found at {args.url}:", file=sys.stderr)
            for c in candidates:
                print(f"  {c.url}  ({c.title or 'untitled'}, {c.format})", file=sys.stderr)
            print(
                "error: which one? run again with its URL, or with --yes to take the first",
                file=sys.stderr,
            )
            return 2
        url, feed_title = candidates[0].url, candidates[0].title

    def plan(existing: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        ids = [str(t.get("id")) for t in existing]
        known = {normalise_link(str(t.get("url"))): t.get("id") for t in existing}
        if normalise_link(url) in known:
            raise EditError(
                f"{url} is already configured as source {known[normalise_link(url)]!r}; "
                "nothing added"
            )
        if args.id is not None and args.id in ids:
            raise EditError(f"the id {args.id!r} is taken; choose another with --id")
        table = {"id": args.id or derive_id(args.title or feed_title, url, ids), "url": url}
        table |= {k: v for k in ("title", "group") if (v := getattr(args, k))}
        return [table]

    edited = add_sources(path, plan)
    assert edited is not None  # the plan adds one source or raises
    added = edited.added[0]
    print(f"added source {added['id']!r} ({added['url']}) to {path}")
    print(RELOAD_HINT)
    return 0


def _discover(url: str, config: Config) -> list[Candidate]:
    from .discover import discover_feeds
    from .progress import progress_bar

    with progress_bar(f"looking for feeds at {url}") as bar:
        return discover_feeds(url, config, on_try=lambda _: bar.advance(),
                              on_plan=lambda n: bar.update(total=n))  # fmt: skip


def _cmd_sources_remove(config: Config, path: Path, source_id: str, *, purge: bool) -> int:
    from .configedit import remove_source

    configured = any(s.id == source_id for s in config.sources)
    if configured or not purge:  # a source only stored (removed before) can still be purged
        remove_source(path, source_id)
        print(f"removed source {source_id!r} from {path}")
    if purge:
        dropped = _purge(config, source_id, configured=configured)
        print(f"purged {source_id!r}: {dropped} stored entries only it carried were deleted")
    else:
        print("its stored entries stay (delete them with --purge)")
    if configured:
        print(RELOAD_HINT)
    return 0


def _purge(config: Config, source_id: str, *, configured: bool) -> int:
    from .store import open_store

    store = open_store(config.storage.url)
    try:
        if not configured and store.source_state(source_id) is None:
            raise UsageError(f"no source {source_id!r} in {config.path} or the database")
        with store.transaction() as tx:
            return tx.remove_sources([source_id])
    finally:
        store.close()


# -- OPML -----------------------------------------------------------------------------------------


def _cmd_import_opml(config: Config, path: Path, source: Path, *, group: str | None) -> int:
    from .configcheck import is_http_url, is_id
    from .configedit import add_sources, derive_id
    from .opml import OpmlSkip, read_opml
    from .process.links import normalise_link
    from .progress import progress_bar

    data = sys.stdin.buffer.read() if str(source) == "-" else source.read_bytes()
    opml = read_opml(data)
    skipped: list[OpmlSkip] = list(opml.skipped)

    def plan(existing: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        skipped[len(opml.skipped) :] = []  # the plan runs once; this keeps it a pure function
        ids = [str(t.get("id")) for t in existing]
        known = {normalise_link(str(t.get("url"))): f"configured as {t.get('id')!r}"
                 for t in existing}  # fmt: skip
        tables: list[dict[str, Any]] = []
        with progress_bar(f"importing {source.name}", total=len(opml.feeds)) as bar:
            for feed in opml.feeds:
                bar.advance()
                label = feed.title or feed.url
                key = normalise_link(feed.url)
                if is_http_url(feed.url) or key is None:
                    skipped.append(OpmlSkip(label, f"not an http(s) URL: {feed.url}"))
                elif key in known:
                    skipped.append(OpmlSkip(label, f"already present ({known[key]})"))
                else:
                    source_id = derive_id(feed.title, feed.url, ids)
                    if feed.id and not is_id(feed.id) and feed.id not in ids:
                        source_id = feed.id  # an export of ours names it: outputs use it
                    table = {"id": source_id, "url": feed.url}
                    table |= {"title": feed.title} if feed.title else {}
                    table |= {"group": g} if (g := group or feed.group) else {}
                    ids.append(table["id"])
                    known[key] = f"listed earlier in the file as {table['id']!r}"
                    tables.append(table)
                    log.info("import-opml add id=%s url=%s", table["id"], feed.url)
        return tables

    edited = add_sources(path, plan)
    added = edited.added if edited else ()
    print(f"{source}: {len(added)} added, {len(skipped)} skipped")
    for table in added:
        print(
            f"  added    {table['id']}  {table['url']}"
            + (f"  [{table['group']}]" if table.get("group") else "")
        )
    for skip in skipped:
        print(f"  skipped  {skip.what}: {skip.reason}")
    if added:
        print(RELOAD_HINT)
    return 0


def _cmd_export_opml(config: Config, output: Path | None) -> int:
    from .errors import StoreError
    from .opml import OpmlFeed, write_opml
    from .types import utc_now

    try:
        known = {v.id: v for v in _views(config)}
    except StoreError as exc:  # titles and site links are a nicety; the config has the feeds
        log.warning("export-opml without the stored feed titles and site links: %s", exc)
        known = {}
    feeds: list[OpmlFeed] = []
    for source in config.sources:
        view = known.get(source.id)
        title = source.title or (view.title if view else None) or source.id
        site = view.site_url if view else None
        feeds.append(OpmlFeed(source.url, title, site, source.group, source.id))
    data = write_opml(feeds, title=f"{config.output.title}: sources", now=utc_now())
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return 0
    from .render import write_atomic

    write_atomic(output, data)
    print(f"{output}: {len(feeds)} sources", file=sys.stderr)
    return 0


# -- main -----------------------------------------------------------------------------------------


class UsageError(AggregatorError):
    """The command line asks for something that cannot be done as asked (exit 2)."""

    exit_status = 2


def _dispatch(args: argparse.Namespace) -> int:
    path = _config_path(args.config)
    config = load_config(path)
    command = args.command
    if command == "check":
        return _cmd_check(config)
    if command == "once":
        return _cmd_once(config, offline=args.offline, force=args.force)
    if command == "render":
        return _cmd_render(config)
    if command == "sources":
        action = args.action or "list"
        if action == "list":
            return _cmd_sources_list(config, as_json=getattr(args, "json", False))
        if action == "show":
            return _cmd_sources_show(config, args.id, as_json=args.json)
        if action == "add":
            return _cmd_sources_add(config, path, args)
        return _cmd_sources_remove(config, path, args.id, purge=args.purge)
    if command == "import-opml":
        return _cmd_import_opml(config, path, args.file, group=args.group)
    if command == "export-opml":
        return _cmd_export_opml(config, args.output)
    return _cmd_run(config, args.offline)


def _exit_status(exc: AggregatorError) -> int:
    if isinstance(exc, ConfigError):
        return 2
    status = getattr(exc, "exit_status", 1)  # EditError, OpmlError, UsageError: 2
    return status if isinstance(status, int) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
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
