"""The CLI's source management: ``sources list|show|add|remove``, ``import-opml``,
``export-opml``. The config file stays the single source of truth: edits go through
``configedit`` (tomlkit, validated like ``check``, atomic, locked).

Each command imports what it needs when it runs (start-up, issue #12).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Config
from .errors import AggregatorError

if TYPE_CHECKING:
    from .discover import Candidate
    from .opml import Opml, OpmlSkip
    from .sourceview import SourceView

log = logging.getLogger("aggregator")

RELOAD_HINT = (
    "a running daemon applies it once it reloads its config: "
    "`systemctl reload aggregator`, or `kill -HUP <pid of aggregator run>`"
)


class UsageError(AggregatorError):
    """The command line asks for something that cannot be done as asked (exit 2)."""

    exit_status = 2


def run_command(config: Config, path: Path, args: argparse.Namespace) -> int:
    """Run ``sources ...``, ``import-opml`` or ``export-opml`` as parsed in ``args``."""
    if args.command == "import-opml":
        return cmd_import_opml(config, path, args.file, group=args.group)
    if args.command == "export-opml":
        return cmd_export_opml(config, args.output)
    action = args.action or "list"
    if action == "list":
        return cmd_sources_list(config, as_json=getattr(args, "json", False))
    if action == "show":
        return cmd_sources_show(config, args.id, as_json=args.json)
    if action == "add":
        return cmd_sources_add(config, path, args)
    return cmd_sources_remove(config, path, args.id, purge=args.purge)


# -- sources --------------------------------------------------------------------------------------


def _views(config: Config) -> list[SourceView]:
    from .sourceview import read_states, source_views

    return source_views(config, read_states(config.storage.url))


def _print_json(value: Any) -> None:
    import json

    print(json.dumps(value, ensure_ascii=False, indent=2))


def cmd_sources_list(config: Config, *, as_json: bool) -> int:
    from .sourceview import format_table

    views = _views(config)
    if as_json:
        _print_json([v.as_json() for v in views])
    else:
        print(format_table(views))
    return 0


def cmd_sources_show(config: Config, source_id: str, *, as_json: bool) -> int:
    from .sourceview import format_details

    views = {v.id: v for v in _views(config)}
    if source_id not in views:
        known = ", ".join(views) or "none"
        raise UsageError(
            f"no source {source_id!r} in {config.path} or the database (known: {known})"
        )
    from .cli_explain import recent_polls
    from .story import format_polls, poll_json

    polls = recent_polls(config, source_id)  # with its history (issue #14)
    if as_json:
        _print_json(views[source_id].as_json() | {"history": [poll_json(p) for p in polls]})
    else:
        print(format_details(views[source_id]))
        print()
        print(format_polls(polls))
    return 0


def cmd_sources_add(config: Config, path: Path, args: argparse.Namespace) -> int:
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


def cmd_sources_remove(config: Config, path: Path, source_id: str, *, purge: bool) -> int:
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


def cmd_import_opml(config: Config, path: Path, source: Path, *, group: str | None) -> int:
    from .configedit import add_sources
    from .opml import read_opml

    data = sys.stdin.buffer.read() if str(source) == "-" else source.read_bytes()
    opml = read_opml(data)
    skipped: list[OpmlSkip] = list(opml.skipped)

    def plan(existing: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        skipped[len(opml.skipped) :] = []  # the plan runs once; this keeps it a pure function
        return _import_plan(opml, existing, group=group, name=source.name, skipped=skipped)

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


def _import_plan(
    opml: Opml,
    existing: Sequence[Mapping[str, Any]],
    *,
    group: str | None,
    name: str,
    skipped: list[OpmlSkip],
) -> list[dict[str, Any]]:
    """The ``[[sources]]`` tables to add for the feeds of ``opml``; what is skipped, and why,
    goes to ``skipped``."""
    from .configcheck import is_http_url, is_id
    from .configedit import derive_id
    from .opml import OpmlSkip
    from .process.links import normalise_link
    from .progress import progress_bar

    ids = [str(t.get("id")) for t in existing]
    known = {normalise_link(str(t.get("url"))): f"configured as {t.get('id')!r}"
             for t in existing}  # fmt: skip
    tables: list[dict[str, Any]] = []
    with progress_bar(f"importing {name}", total=len(opml.feeds)) as bar:
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


def cmd_export_opml(config: Config, output: Path | None) -> int:
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
