"""Regenerate the outputs from what is stored: each configured output's feeds and page, its
RFC 5005 archive pages, a feed and page per group, the river page and the outputs' OPML.

An outer shell over the store's read side and the render stage (neither imports the other).
"""

from __future__ import annotations

from collections.abc import Sequence

from .config import Config, OutputSpec
from .filters import NO_FILTERS, Filters
from .render import (
    FeedLinks,
    RenderReport,
    existing_files,
    render_output,
    write_file,
    write_files,
)
from .render.archive import archive_path, current_links, full_pages, render_archive_page
from .render.html import render_page
from .render.pages import (
    GROUPS_DIR,
    OPML_PATH,
    RIVER_PATH,
    Section,
    Site,
    feed_refs,
    group_slugs,
    render_outputs_opml,
    url_path,
)
from .store import Reader
from .types import Channel, StoredEntry


def channel_for(config: Config, spec: OutputSpec) -> Channel:
    return Channel(name=spec.name, title=spec.title, base_url=config.output.base_url)


def build_site(config: Config) -> Site:
    """Every page and feed the config gives, in config order (groups by name)."""
    slugs = group_slugs(s.group for s in config.sources if s.group)
    group_formats = [f for f in config.output.formats if f != "markdown"]
    # The river's own feeds: those of an output over every source, if there is one.
    whole = next((o for o in config.outputs if not o.groups and not o.sources), None)
    river_feeds = feed_refs(whole.name, whole.formats) if whole else ()
    return Site(
        title=config.output.title,
        base_url=config.output.base_url,
        river=Section("river", "", config.output.title, RIVER_PATH, river_feeds),
        outputs=tuple(
            Section("output", spec.name, spec.title, f"{spec.name}.html",
                    feed_refs(spec.name, spec.formats))
            for spec in config.outputs
        ),
        groups=tuple(
            Section("group", group, group, f"{GROUPS_DIR}/{slug}.html",
                    feed_refs(f"{GROUPS_DIR}/{slug}", group_formats))
            for group, slug in slugs.items()
        ),
    )  # fmt: skip


def render_outputs(config: Config, store: Reader) -> tuple[RenderReport, ...]:
    """Regenerate every configured output, group and page from the database alone."""
    site = build_site(config)
    out = config.output.dir
    reports: list[RenderReport] = []
    html = _Pages(config, site)
    for spec, section in zip(config.outputs, site.outputs, strict=True):
        ids = [s.id for s in config.sources if spec.selects(s)]
        entries = visible_entries(store, ids, spec)  # less what its rules hide (issue #15)
        channel = channel_for(config, spec)
        archived = RenderReport()
        links = FeedLinks(hub=config.output.websub_hub)
        if "atom" in spec.formats:
            archived, count = _archive(config, store, channel, ids, spec.filters)
            links = current_links(channel, count, base=links)
        reports += (render_output(channel, entries, spec.formats, out, links=links), archived)
        html.write(section, entries)
    for section in site.groups:
        ids = [s.id for s in config.sources if s.group == section.name]
        entries = store.recent_entries(ids, limit=config.output.limit)
        reports.append(_group_feeds(config, section, entries))
        html.write(section, entries)
    everyone = [s.id for s in config.sources]
    html.write(site.river, store.recent_entries(everyone, limit=config.output.limit))
    html.put(OPML_PATH, render_outputs_opml(site))
    reports.append(html.report())
    return tuple(reports)


class _Pages:
    """Writes the HTML pages and the OPML, and counts what changed."""

    def __init__(self, config: Config, site: Site) -> None:
        self.out = config.output.dir
        self.site = site
        self.written: list[str] = []
        self.unchanged: list[str] = []

    def write(self, section: Section, entries: Sequence[StoredEntry]) -> None:
        self.put(section.path, render_page(self.site, section, entries))

    def put(self, rel: str, data: bytes) -> None:
        (self.written if write_file(self.out, rel, data) else self.unchanged).append(rel)

    def report(self) -> RenderReport:
        return RenderReport(written=tuple(self.written), unchanged=tuple(self.unchanged))


def _group_feeds(config: Config, section: Section, entries: Sequence[StoredEntry]) -> RenderReport:
    """The group's feeds in ``groups/``: named by the group's slug, linking to its page."""
    slug = section.path.removeprefix(f"{GROUPS_DIR}/").removesuffix(".html")
    base = config.output.base_url
    channel = Channel(name=slug, title=f"{section.name} · {config.output.title}",
                      base_url=f"{base}{GROUPS_DIR}/")  # fmt: skip
    links = FeedLinks(hub=config.output.websub_hub, alternate=base + url_path(section.path))
    formats = [feed.format for feed in section.feeds]
    report = render_output(channel, entries, formats, config.output.dir / GROUPS_DIR, links=links)
    return RenderReport(
        written=tuple(f"{GROUPS_DIR}/{p}" for p in report.written),
        unchanged=tuple(f"{GROUPS_DIR}/{p}" for p in report.unchanged),
    )


def visible_entries(store: Reader, ids: list[str], spec: OutputSpec) -> tuple[StoredEntry, ...]:
    """The newest ``spec.limit`` entries of ``ids`` that the output's rules do not hide: read
    in growing batches until enough pass, or none are left."""
    if not spec.filters:
        return store.recent_entries(ids, limit=spec.limit)
    asked = spec.limit
    while True:
        found = store.recent_entries(ids, limit=asked)
        shown = tuple(e for e in found if spec.filters.drops(e) is None)
        if len(shown) >= spec.limit or len(found) < asked:
            return shown[: spec.limit]
        asked *= 4


ARCHIVE_READ_PAGES = 50  # archive pages read in one query (50 x 100 entries in memory at most)
ARCHIVE_WRITE_PAGES = 10  # archive pages written as one batch (~3 MB of documents held)


def _runs(pages: list[int], most: int) -> list[list[int]]:
    """``pages`` (ascending) cut into runs of consecutive numbers, ``most`` pages at most."""
    runs: list[list[int]] = []
    for page in pages:
        if runs and page == runs[-1][-1] + 1 and len(runs[-1]) < most:
            runs[-1].append(page)
        else:
            runs.append([page])
    return runs


def _archive(
    config: Config, store: Reader, channel: Channel, ids: list[str], hide: Filters = NO_FILTERS
) -> tuple[RenderReport, int]:
    """Write the full RFC 5005 archive pages not written yet; return them and how many exist.

    A page on disk is never rewritten: archive documents must not change (RFC 5005 section 4),
    even when an entry on them is updated later; the current document carries the update.
    Pages missing one after another are read together, ``ARCHIVE_READ_PAGES`` at a time (one
    query each, not one per page: a first render of a large store writes hundreds of pages,
    and each query pays for its offset; issue #16).
    """
    size = config.output.archive_page_size
    count = full_pages(store.count_entries(ids), size) if ids else 0
    written: list[str] = []
    unchanged: list[str] = []
    missing: list[int] = []
    rels = {page: archive_path(channel, page) for page in range(1, count + 1)}
    on_disk = existing_files(config.output.dir, rels.values())
    for page, rel in rels.items():
        if rel in on_disk:
            unchanged.append(rel)
        else:
            missing.append(page)
    for run in _runs(missing, ARCHIVE_READ_PAGES):
        first = run[0]
        read = store.entries_by_arrival(ids, offset=(first - 1) * size, limit=len(run) * size)
        for batch in range(0, len(run), ARCHIVE_WRITE_PAGES):
            pages: dict[str, bytes] = {}
            for page in run[batch : batch + ARCHIVE_WRITE_PAGES]:
                start = (page - first) * size
                kept = tuple(e for e in read[start : start + size] if hide.drops(e) is None)
                pages[archive_path(channel, page)] = render_archive_page(channel, kept, page)
            written += write_files(config.output.dir, pages)[0]  # one directory fsync
    return RenderReport(written=tuple(written), unchanged=tuple(unchanged)), count
