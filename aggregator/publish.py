"""Regenerate the outputs from what is stored: each configured output's feeds and page, its
RFC 5005 archive pages, a feed and page per group, the river page and the outputs' OPML.

An outer shell over the store's read side and the render stage (neither imports the other).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from .config import Config, OutputSpec
from .filters import NO_FILTERS, Filters
from .render import FeedLinks, RenderReport, render_output, write_file, write_files
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


def render_outputs(
    config: Config, store: Reader, *, helpers: Helpers | None = None
) -> tuple[RenderReport, ...]:
    """Regenerate every configured output, group and page from the database alone.

    With ``helpers`` (the scheduler's parse workers, when they run), a large backlog of archive
    pages is written by them while this thread renders the rest; each output's current
    documents are written after its archive pages, so no link points to a page not yet there.
    """
    site = build_site(config)
    out = config.output.dir
    reports: list[RenderReport] = []
    html = _Pages(config, site)
    selected = [[s.id for s in config.sources if spec.selects(s)] for spec in config.outputs]
    channels = [channel_for(config, spec) for spec in config.outputs]
    # Every output's missing archive pages first: with helpers, they are written meanwhile.
    archives = [
        _Archive(config, store, channel, ids, spec.filters, helpers)
        if "atom" in spec.formats else None
        for spec, channel, ids in zip(config.outputs, channels, selected, strict=True)
    ]  # fmt: skip
    for spec, section, channel, ids, archive in zip(
        config.outputs, site.outputs, channels, selected, archives, strict=True
    ):
        entries = visible_entries(store, ids, spec)  # less what its rules hide (issue #15)
        archived = RenderReport()
        links = FeedLinks(hub=config.output.websub_hub)
        if archive is not None:
            archived = archive.finish()
            links = current_links(channel, archive.count, base=links)
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
# A first render with at least this many archived entries to write hands the pages to the
# helper processes (the parse workers), when the scheduler has them running: rendering is
# CPU-bound, and at the end of a cold tick the workers sit idle while the tick's own thread
# would write every page alone (~40 % of a first render; issue #16). A smaller backlog is
# written inline: a worker's first archive job imports the renderers and opens the store.
HELPED_FROM_ENTRIES = 4000


class Helpers(Protocol):
    """Processes that run a picklable call (``workers.ParseWorkers``): ``size`` of them."""

    @property
    def size(self) -> int: ...

    def call(
        self, fn: Callable[[ArchiveJob], tuple[str, ...]], job: ArchiveJob, /
    ) -> Future[tuple[str, ...]]: ...


@dataclass(frozen=True)
class ArchiveJob:
    """Archive pages to write, as a helper process gets them: all it needs but the store,
    which it opens itself from ``url``."""

    url: str
    out_dir: Path
    channel: Channel
    ids: tuple[str, ...]
    hide: Filters
    size: int
    pages: tuple[int, ...]


def _runs(pages: list[int], most: int) -> list[list[int]]:
    """``pages`` (ascending) cut into runs of consecutive numbers, ``most`` pages at most."""
    runs: list[list[int]] = []
    for page in pages:
        if runs and page == runs[-1][-1] + 1 and len(runs[-1]) < most:
            runs[-1].append(page)
        else:
            runs.append([page])
    return runs


def _shares(pages: list[int], parts: int) -> list[list[int]]:
    """``pages`` cut into ``parts`` slices of (nearly) equal length, in order, none empty."""
    parts = max(1, min(parts, len(pages)))
    step, extra = divmod(len(pages), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + step + (i < extra)
        out.append(pages[start:end])
        start = end
    return out


class _Archive:
    """One output's archive pages: those missing are written at once (inline), or handed to
    the helpers; ``finish`` waits for them and reports."""

    def __init__(
        self, config: Config, store: Reader, channel: Channel, ids: list[str],
        hide: Filters = NO_FILTERS, helpers: Helpers | None = None,
    ) -> None:  # fmt: skip
        size = config.output.archive_page_size
        self.count = full_pages(store.count_entries(ids), size) if ids else 0
        self.unchanged: list[str] = []
        missing: list[int] = []
        for page in range(1, self.count + 1):
            rel = archive_path(channel, page)
            if (config.output.dir / rel).is_file():
                self.unchanged.append(rel)
            else:
                missing.append(page)
        self.written: list[str] = []
        self.jobs: list[Future[tuple[str, ...]]] = []
        job = ArchiveJob(config.storage.url, config.output.dir, channel, tuple(ids), hide, size,
                         tuple(missing))  # fmt: skip
        if helpers is not None and _helped(job):
            self.jobs = [
                helpers.call(write_archive_pages, replace(job, pages=tuple(share)))
                for share in _shares(missing, helpers.size)
            ]
        else:
            self.written = list(_write_pages(store, job))

    def finish(self) -> RenderReport:
        """Wait for the helpers' pages, if any (a helper's RenderError or StoreError is raised
        here), and report."""
        for job in self.jobs:
            self.written += job.result()
        self.jobs = []
        return RenderReport(written=tuple(self.written), unchanged=tuple(self.unchanged))


def _helped(job: ArchiveJob) -> bool:
    """Whether ``job`` is worth the helpers: enough entries, and a database another process
    can open (not one in memory)."""
    in_memory = job.url in ("sqlite://", "sqlite:///:memory:")
    return not in_memory and len(job.pages) * job.size >= HELPED_FROM_ENTRIES


def _write_pages(store: Reader, job: ArchiveJob) -> tuple[str, ...]:
    """Write ``job``'s pages (never rewritten: archive documents must not change, RFC 5005
    section 4, even when an entry on them is updated later; the current document carries the
    update). Pages missing one after another are read together, ``ARCHIVE_READ_PAGES`` at a
    time (one query each, not one per page: a first render of a large store writes hundreds of
    pages, and each query pays for its offset; issue #16), and written as one batch."""
    written: list[str] = []
    for run in _runs(list(job.pages), ARCHIVE_READ_PAGES):
        first = run[0]
        read = store.entries_by_arrival(
            job.ids, offset=(first - 1) * job.size, limit=len(run) * job.size
        )
        files: dict[str, bytes] = {}
        for page in run:
            start = (page - first) * job.size
            kept = tuple(e for e in read[start : start + job.size] if job.hide.drops(e) is None)
            files[archive_path(job.channel, page)] = render_archive_page(job.channel, kept, page)
        done, _ = write_files(job.out_dir, files)
        written += done
    return tuple(written)


_READERS: dict[str, Reader] = {}  # in a helper process: the store of each URL, opened once


def write_archive_pages(job: ArchiveJob) -> tuple[str, ...]:
    """In a helper process: write ``job``'s archive pages from the database at ``job.url``."""
    store = _READERS.get(job.url)
    if store is None:
        from .store import open_store

        store = _READERS[job.url] = open_store(job.url)
    return _write_pages(store, job)
