"""Whether the outputs on disk already show what is stored, so that nothing is rendered again
only to find every file unchanged (issue #16).

A successful render leaves a stamp in the output directory (a dotfile: never served): the
store's content generation it rendered (``store.generation``), the digest of the config file,
an identity of the renderer (the package version and the size and mtime of every file of the
render stage and its templates) and the files it wrote or found unchanged. A process that
starts later (``once`` from cron, a restarted daemon) renders only if one of those differs, or
a file it lists is gone. The generation is read before rendering, so a change committed while
a render runs leaves the stamp behind it: rendered again next time, never missed.

A config without a digest (built in memory, not read from a file) never counts as current.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from . import __version__
from .config import Config
from .render import RenderReport, existing_files, write_atomic

log = logging.getLogger(__name__)

STAMP = ".aggregator-rendered.json"


@cache
def renderer_id() -> str:
    """The package version, and the size and mtime of the render stage's files (an edited
    template or renderer makes every output due again)."""
    here = Path(__file__).resolve().parent
    files = [*sorted((here / "render").rglob("*")), here / "publish.py"]
    parts = [__version__]
    for path in files:
        if path.is_file():
            stat = path.stat()
            parts.append(f"{path.relative_to(here)}:{stat.st_size}:{stat.st_mtime_ns}")
    return "|".join(parts)


def _expected(config: Config, generation: int) -> dict[str, object]:
    return {"generation": generation, "config": config.digest, "renderer": renderer_id()}


def write_stamp(config: Config, generation: int, reports: Sequence[RenderReport]) -> None:
    """After a render that wrote every output: what it rendered, and which files."""
    if not config.digest:
        return
    files = sorted({name for r in reports for name in (*r.written, *r.unchanged)})
    stamp = {**_expected(config, generation), "files": files}
    try:
        write_atomic(config.output.dir / STAMP, json.dumps(stamp, indent=0).encode())
    except OSError as exc:  # the outputs stand; the next process renders once more
        log.warning("cannot write %s: %s", STAMP, exc)


def is_current(config: Config, generation: int) -> bool:
    """True when the outputs on disk are what a render now would write."""
    if not config.digest:
        return False
    out = config.output.dir
    try:
        stamp = json.loads((out / STAMP).read_bytes())
    except (OSError, ValueError):
        return False
    if not isinstance(stamp, dict) or any(
        stamp.get(k) != v for k, v in _expected(config, generation).items()
    ):
        return False
    files = stamp.get("files")
    if not isinstance(files, list) or not files:
        return False
    return all_files(out, files)


def all_files(out: Path, names: Sequence[object]) -> bool:
    """Whether every one of ``names`` (paths relative to ``out``) is a file: the same answer as
    ``all((out / name).is_file() ...)``, from one listing of each directory."""
    wanted: set[str] = set()
    for name in names:
        if not isinstance(name, str):
            return False
        wanted.add(name)
    return len(existing_files(out, wanted)) == len(wanted)


def clear_stamp(config: Config) -> None:
    """Before a render: a crash halfway must not leave a stamp that vouches for old files."""
    (config.output.dir / STAMP).unlink(missing_ok=True)
