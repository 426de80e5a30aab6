"""Edit the sources of the TOML config in place: comments, order and layout survive.

The file stays the single source of truth (issue #12). Every edit runs under an exclusive lock
(``flock`` on ``<config>.lock`` beside it), re-reads the file under that lock, changes only the
text of the ``[[sources]]`` tables it adds or removes, validates the result with the same
checks as ``aggregator check`` and then replaces the file atomically (a temp file in the same
directory, fsync, rename, fsync of the directory): two edits at once both land, or one fails
cleanly; a crash never leaves half a config.

tomlkit parses the file and renders new tables; the edit itself is a splice of the original
text at the boundaries tomlkit reports, so nothing else in the file is re-rendered. A file
tomlkit cannot reproduce byte for byte (or ``[[sources]]`` tables split by other tables) is
refused rather than rewritten.
"""

from __future__ import annotations

import fcntl
import os
import re
import stat
import tempfile
import time
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .config import Config, parse_config
from .errors import AggregatorError, ConfigError

LOCK_TIMEOUT_S = 30.0  # another edit holds the lock for milliseconds; this long means stuck
ID_MAX = 48
_HEADER = re.compile(r"[ \t]*\[\[\s*(?:sources|\"sources\"|'sources')\s*\]\][^\n]*\n")
_NOT_ID = re.compile(r"[^a-z0-9]+")

Table = Mapping[str, Any]
Plan = Callable[[Sequence[Table]], Sequence[Table]]


class EditError(AggregatorError):
    """The config could not be edited as asked; nothing was written."""

    exit_status = 2  # the command line's input: see aggregator.cli


@dataclass(frozen=True, slots=True)
class Edited:
    """An edit that was written: the new config and what changed."""

    config: Config
    added: tuple[Table, ...] = ()
    removed: tuple[str, ...] = ()


# -- ids ------------------------------------------------------------------------------------------


def slugify(text: str) -> str:
    """An id from a title: ASCII letters and digits joined by "-" ("Café Olé!" -> "cafe-ole")."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NOT_ID.sub("-", ascii_text.lower()).strip("-")[:ID_MAX].strip("-")


def host_slug(url: str) -> str:
    """An id from a URL's host, without ``www.`` and the top-level domain ("daringfireball")."""
    host = (urlsplit(url).hostname or "").removeprefix("www.")
    labels = host.split(".")
    if len(labels) > 1 and not host.replace(".", "").isdigit():
        labels = labels[:-1]
    return slugify("-".join(labels))


def unique_id(base: str, taken: Iterable[str]) -> str:
    """``base``, or ``base-2``, ``base-3`` ... whichever is not taken."""
    used = set(taken)
    base = base or "source"
    if base not in used:
        return base
    n = 2
    while f"{base[: ID_MAX - 1 - len(str(n))]}-{n}" in used:
        n += 1
    return f"{base[: ID_MAX - 1 - len(str(n))]}-{n}"


def derive_id(title: str | None, url: str, taken: Iterable[str]) -> str:
    """The default id of a new source: a slug of its title, else of its host, made unique."""
    base = slugify(title or "") or host_slug(url) or "source"
    return unique_id(base, taken)


# -- the edits ------------------------------------------------------------------------------------


def add_sources(path: Path, plan: Plan) -> Edited | None:
    """Append the ``[[sources]]`` tables ``plan`` returns, given the configured ones (read under
    the lock, so concurrent edits see each other). None when the plan adds nothing."""
    with _locked(path):
        text = _read(path)
        before = _load(text, path)
        existing = list(before.get("sources", []))
        tables = [dict(t) for t in plan(existing)]
        if not tables:
            return None
        new_text = _insert(text, tables, path)
        config = _checked(new_text, path, {**before, "sources": existing + tables})
        _replace(path, new_text)
    return Edited(config, added=tuple(tables))


def remove_source(path: Path, source_id: str) -> Edited:
    """Remove the ``[[sources]]`` table whose id is ``source_id`` (comments around it stay)."""
    with _locked(path):
        text = _read(path)
        before = _load(text, path)
        existing = list(before.get("sources", []))
        ids = [t.get("id") for t in existing]
        if source_id not in ids:
            known = ", ".join(str(i) for i in ids) or "none"
            raise EditError(f"{path}: no source with id {source_id!r} (configured: {known})")
        index = ids.index(source_id)
        new_text = _cut(text, index, path)
        rest = existing[:index] + existing[index + 1 :]
        expected = {**before, "sources": rest} if rest else _without(before, "sources")
        config = _checked(new_text, path, expected)
        _replace(path, new_text)
    return Edited(config, removed=(source_id,))


def render_table(table: Table) -> str:
    """One ``[[sources]]`` table as TOML text, keys in the given order."""
    import tomlkit  # only for edits: `check` and `sources list` never load it

    return tomlkit.dumps({"sources": [dict(table)]})


# -- splicing -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Span:
    start: int  # the header line
    own_end: int  # end of its keys: what follows (comments, blank lines) is the next one's
    end: int


def _spans(text: str, path: Path) -> list[_Span]:
    """Where each ``[[sources]]`` table is in ``text``; [] when there is none."""
    import tomlkit
    from tomlkit.items import AoT, Comment, Whitespace

    doc = tomlkit.parse(text)
    if doc.as_string() != text:
        raise _unsafe(path, "tomlkit cannot reproduce it byte for byte")
    if "sources" not in doc:
        return []
    aot = doc["sources"]
    if not isinstance(aot, AoT):
        raise _unsafe(path, "its sources are not written as [[sources]] tables")
    spans: list[_Span] = []
    pos = 0
    for table in aot.body:
        body = table.as_string()
        trail = ""
        for key, item in reversed(table.value.body):
            if key is not None or not isinstance(item, Comment | Whitespace):
                break
            trail = item.as_string() + trail
        start, body_at = _find_table(text, body, pos, first=not spans)
        if start is None or (spans and start != spans[-1].end):
            raise _unsafe(path, "its [[sources]] tables are not together (other tables between)")
        end = body_at + len(body)
        own_end = end - len(trail) if body.endswith(trail) else end
        spans.append(_Span(start, own_end, end))
        pos = end
    return spans


def _find_table(text: str, body: str, pos: int, *, first: bool) -> tuple[int | None, int]:
    """The start of the header line of the table whose body is ``body``, at or after ``pos``."""
    at = text.find(body, pos)
    while at >= 0:
        line_start = text.rfind("\n", 0, at - 1) + 1 if at else 0
        header = text[line_start:at]
        if _HEADER.fullmatch(header) and (first or line_start == pos):
            return line_start, at
        at = text.find(body, at + 1)
    return None, -1


def _insert(text: str, tables: Sequence[Table], path: Path) -> str:
    """``text`` with ``tables`` appended after the last ``[[sources]]`` table's keys."""
    newline = "\r\n" if "\r\n" in text else "\n"
    rendered = "\n".join(render_table(t) for t in tables).replace("\n", newline)
    spans = _spans(text, path)
    if not spans:
        head = text if not text or text.endswith("\n") else text + newline
        return head + (newline if head.strip() else "") + rendered
    at = spans[-1].own_end
    head = text[:at] if text[:at].endswith("\n") else text[:at] + newline
    return head + newline + rendered + text[at:]


def _cut(text: str, index: int, path: Path) -> str:
    """``text`` without the header and keys of the ``index``-th ``[[sources]]`` table."""
    span = _spans(text, path)[index]
    head, rest = text[: span.start], text[span.own_end :]
    for blank in ("\r\n", "\n"):  # keep one blank line where the table was, not two
        if head.endswith(blank * 2) and rest.startswith(blank):
            rest = rest[len(blank) :]
    return head + rest


def _unsafe(path: Path, why: str) -> EditError:
    return EditError(f"{path}: cannot edit it without changing its layout ({why}); edit it by hand")


# -- read, check, write ---------------------------------------------------------------------------


def _read(path: Path) -> str:
    try:
        with path.open(encoding="utf-8", newline="") as file:  # keep \r\n as they are
            return file.read()
    except FileNotFoundError as exc:
        raise ConfigError([f"config file not found: {path}"], path=str(path)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read config file: {exc}"], path=str(path)) from exc


def _load(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], path=str(path)) from exc


def _without(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


def _checked(new_text: str, path: Path, expected: Mapping[str, Any]) -> Config:
    """Validate the edited text as ``aggregator check`` would, and prove it says what was
    meant (the splice changed the sources as planned and nothing else)."""
    try:
        data = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as exc:
        raise EditError(f"{path}: not changed: the edit would not be valid TOML ({exc})") from exc
    if data != expected:
        raise _unsafe(path, "the edited text does not read back as intended")
    try:
        return parse_config(data, path=path)
    except ConfigError as exc:
        problems = "; ".join(exc.problems)
        raise EditError(f"{path}: not changed: the result would be invalid: {problems}") from exc


_OWNER_HINT = " (edit as the config's owner, e.g. with sudo)"


def _replace(path: Path, text: str) -> None:
    try:
        _write_atomic(path, text)
    except PermissionError as exc:
        raise EditError(f"{path}: cannot write it: {exc.strerror}{_OWNER_HINT}") from exc


def _write_atomic(path: Path, text: str) -> None:
    """Replace the file (its target, if a symlink) in one rename, keeping its mode and owner."""
    target = path.resolve()
    info = target.stat()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, stat.S_IMODE(info.st_mode))
        if os.geteuid() == 0:  # root editing a service's config: keep its owner and group
            os.chown(tmp, info.st_uid, info.st_gid)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold ``<config>.lock`` exclusively; the lock file stays (removing it would race)."""
    lock = path.resolve().with_name(path.resolve().name + ".lock")
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError as exc:
        raise EditError(
            f"cannot create the lock file {lock}: {exc.strerror or exc}{_OWNER_HINT}"
        ) from exc
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EditError(
                        f"{path}: another edit has held {lock} for {LOCK_TIMEOUT_S:g}s; "
                        "try again when it is done"
                    ) from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)
