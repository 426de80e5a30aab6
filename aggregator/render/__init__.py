"""Render outputs and write them atomically; renderers are pure, only the writers touch disk."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aggregator.errors import RenderError
from aggregator.render import atom, jsonfeed, rss
from aggregator.render._common import NO_LINKS, FeedLinks
from aggregator.render.atom import render_atom
from aggregator.render.jsonfeed import render_jsonfeed
from aggregator.render.markdown import render_markdown
from aggregator.render.rss import render_rss
from aggregator.types import Channel, StoredEntry

__all__ = [
    "FORMATS",
    "NO_LINKS",
    "FeedLinks",
    "RenderReport",
    "output_path",
    "render_atom",
    "render_jsonfeed",
    "render_markdown",
    "render_output",
    "render_rss",
    "sync_dir",
    "write_atomic",
    "write_file",
    "write_files",
]

FORMATS = ("atom", "rss", "json", "markdown")
_FEEDS = {
    "atom": (atom.file_name, render_atom),
    "rss": (rss.file_name, render_rss),
    "json": (jsonfeed.file_name, render_jsonfeed),
}
_NEW_FILE_MODE = 0o644  # outputs are published; mkstemp alone would leave them 0600


@dataclass(frozen=True, slots=True)
class RenderReport:
    """What ``render_output`` did; paths are relative to the output directory."""

    written: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: int = 0


def output_path(channel: Channel, fmt: str) -> str:
    """Where ``fmt`` of ``channel`` goes, relative to the output directory (a directory for
    markdown)."""
    if fmt == "markdown":
        return f"markdown/{channel.name}"
    if fmt not in _FEEDS:
        raise RenderError(f"{channel.name}: unknown output format {fmt!r}")
    return _FEEDS[fmt][0](channel)


def render_output(
    channel: Channel,
    entries: Sequence[StoredEntry],
    formats: Iterable[str],
    out_dir: Path,
    *,
    links: FeedLinks = NO_LINKS,
) -> RenderReport:
    """Render each requested format (in ``FORMATS`` order) and write the changed files;
    ``links`` go into the feeds (hub, alternate page, prev-archive)."""
    wanted = set(formats)
    if unknown := sorted(wanted.difference(FORMATS)):
        raise RenderError(f"{channel.name}: unknown output formats {unknown}")
    _check_file_name(channel.name)
    _make_dir(out_dir)
    written: list[str] = []
    unchanged: list[str] = []
    removed = 0
    for fmt in (fmt for fmt in FORMATS if fmt in wanted):
        rel = output_path(channel, fmt)
        if fmt == "markdown":
            files = _render_markdown(channel, entries)
            done, same, removed = _sync(out_dir / rel, files)
            written += (f"{rel}/{name}" for name in done)
            unchanged += (f"{rel}/{name}" for name in same)
        else:
            data = _render_feed(channel, entries, fmt, links)
            (written if write_atomic(out_dir / rel, data) else unchanged).append(rel)
    return RenderReport(written=tuple(written), unchanged=tuple(unchanged), removed=removed)


def _render_feed(
    channel: Channel, entries: Sequence[StoredEntry], fmt: str, links: FeedLinks
) -> bytes:
    # RFC 5005 archives are Atom's: the other formats get the hub and the page only.
    if fmt != "atom":
        links = FeedLinks(hub=links.hub, alternate=links.alternate)
    try:
        return _FEEDS[fmt][1](channel, entries, links=links)
    except ValueError as exc:  # lxml refuses text it cannot serialise
        raise RenderError(f"{channel.name}: cannot render {fmt}: {exc}") from exc


def _render_markdown(channel: Channel, entries: Sequence[StoredEntry]) -> dict[str, bytes]:
    try:
        return render_markdown(channel, entries)
    except ValueError as exc:
        raise RenderError(f"{channel.name}: cannot render markdown: {exc}") from exc


def write_file(out_dir: Path, rel: str, data: bytes) -> bool:
    """Write ``data`` atomically at ``rel`` (``/``-separated) under ``out_dir``, creating its
    directories; False when the file already held ``data``."""
    return write_atomic(_path_of(out_dir, rel), data)


def existing_files(out_dir: Path, names: Iterable[str]) -> set[str]:
    """Those of ``names`` (paths relative to ``out_dir``) that are files: what
    ``(out_dir / name).is_file()`` answers of each, from one listing of each directory instead
    of a ``stat`` a file (an archive holds a page per 100 entries: 10,000 at a million)."""
    wanted: dict[str, dict[str, list[str]]] = {}  # directory -> base name -> the names
    for name in names:
        parent, _, base = name.rpartition("/")
        wanted.setdefault(parent, {}).setdefault(base, []).append(name)
    found: set[str] = set()
    for parent, bases in wanted.items():
        try:
            with os.scandir(out_dir / parent) as listing:
                for e in listing:
                    if e.name in bases and e.is_file():
                        found.update(bases[e.name])
        except (OSError, ValueError):  # as ``Path.is_file`` answers False
            continue
    return found


def write_files(out_dir: Path, files: Mapping[str, bytes]) -> tuple[list[str], list[str]]:
    """``write_file`` for many files at once: (written, unchanged), each in the order given.

    Every file is still replaced atomically (a temp file, fsynced, renamed over it), but the
    renames come after all the fsyncs and each directory is fsynced once, not once per file: a
    first render writes hundreds of archive pages, and the per-file directory fsync was half of
    its fsyncs (issue #16). A crash part-way leaves each file old or new, never partial.
    """
    written: list[str] = []
    unchanged: list[str] = []
    todo: list[tuple[str, Path, bytes, int]] = []
    for rel, data in files.items():
        path = _path_of(out_dir, rel)
        mode = _mode_for_write(path, data)
        if mode is None:
            unchanged.append(rel)
        else:
            todo.append((rel, path, data, mode))
    temps: list[str] = []
    path = out_dir
    try:
        for _, path, data, mode in todo:
            temps.append(_fsynced_temp(path, data, mode))
        for (rel, path, _, _), tmp in zip(todo, temps, strict=True):
            os.replace(tmp, path)
            written.append(rel)
        temps.clear()
        for path in dict.fromkeys(path.parent for _, path, _, _ in todo):
            _fsync_dir(path)
    except OSError as exc:  # ``path``: the file (or directory) that could not be written
        raise RenderError(f"{path}: cannot write: {exc}") from exc
    finally:
        for tmp in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return written, unchanged


def _path_of(out_dir: Path, rel: str) -> Path:
    """The path of ``rel`` (``/``-separated, each part a plain name) under ``out_dir``, its
    directories created."""
    parts = rel.split("/")
    for part in parts:
        _check_file_name(part)
    path = out_dir.joinpath(*parts)
    _make_dir(path.parent)
    return path


def write_atomic(path: Path, data: bytes) -> bool:
    """Replace ``path`` with ``data`` atomically; return False (and touch nothing) if unchanged.

    Writes a temp file in the same directory, fsyncs it, ``os.replace``s it over ``path`` and
    fsyncs the directory, so readers see the old or the new bytes, never a partial file.
    """
    mode = _mode_for_write(path, data)
    if mode is None:
        return False
    tmp: str | None = None
    try:
        tmp = _fsynced_temp(path, data, mode)
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except OSError as exc:
        raise RenderError(f"{path}: cannot write: {exc}") from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return True


def _fsynced_temp(path: Path, data: bytes, mode: int) -> str:
    """A temp file beside ``path`` holding ``data`` with ``mode``, fsynced: ready to be renamed
    over ``path``. Removed again if it cannot be written whole."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def _mode_for_write(path: Path, data: bytes) -> int | None:
    """The mode the new file gets (the existing one's, else 0644); None if ``path`` holds
    ``data`` already."""
    try:
        status = path.stat()
        if status.st_size == len(data) and path.read_bytes() == data:
            return None
    except FileNotFoundError:
        return _NEW_FILE_MODE
    except OSError as exc:
        raise RenderError(f"{path}: cannot read: {exc}") from exc
    return status.st_mode & 0o7777


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself (a directory entry) across a crash."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_dir(directory: Path, files: Mapping[str, bytes]) -> tuple[int, int, int]:
    """Make ``directory`` hold ``files``: (written, unchanged, removed).

    Creates the directory, writes each file atomically and removes stale ``*.md`` files that
    are not in ``files``; other files are never touched.
    """
    written, unchanged, removed = _sync(directory, files)
    return len(written), len(unchanged), removed


def _sync(directory: Path, files: Mapping[str, bytes]) -> tuple[list[str], list[str], int]:
    for name in files:
        _check_file_name(name)
    _make_dir(directory)
    written, unchanged = write_files(directory, {name: files[name] for name in sorted(files)})
    return written, unchanged, _remove_stale(directory, keep=files.keys())


def _remove_stale(directory: Path, *, keep: Iterable[str]) -> int:
    kept = set(keep)
    removed = 0
    try:
        for path in sorted(directory.glob("*.md")):
            if path.name not in kept and path.is_file():
                path.unlink()
                removed += 1
    except OSError as exc:
        raise RenderError(f"{directory}: cannot remove stale posts: {exc}") from exc
    return removed


def _make_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RenderError(f"{directory}: cannot create directory: {exc}") from exc


def _check_file_name(name: str) -> None:
    """Refuse names that would escape their directory (``..``, ``a/b``) or be hidden/empty."""
    if not name or name.startswith(".") or "/" in name or "\\" in name or "\0" in name:
        raise RenderError(f"{name!r}: not a plain file name")
