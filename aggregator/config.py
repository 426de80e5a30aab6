"""Load and validate the TOML config into frozen dataclasses; every problem is reported at once.

No I/O beyond reading the file and checking that fixtures exist; no clock.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError

ID_RE = re.compile(r"^[a-z0-9_-]+$")
FORMATS = ("atom", "rss", "json", "markdown")
DEFAULT_FORMATS = ("atom", "rss", "json")
DEFAULT_PATH = Path("config/aggregator.toml")


@dataclass(frozen=True, slots=True)
class StorageConfig:
    url: str = "sqlite:///state/aggregator.db"


@dataclass(frozen=True, slots=True)
class OutputConfig:
    dir: Path = Path("public")
    title: str = "Merged feed"
    base_url: str = "http://127.0.0.1:8080/"
    limit: int = 100
    formats: tuple[str, ...] = DEFAULT_FORMATS


@dataclass(frozen=True, slots=True)
class DedupConfig:
    title_window_hours: float = 48.0
    min_title_length: int = 6


@dataclass(frozen=True, slots=True)
class SourceConfig:
    id: str
    url: str
    title: str | None = None
    group: str | None = None
    fixture: Path | None = None
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class OutputSpec:
    name: str
    title: str
    groups: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    formats: tuple[str, ...] = DEFAULT_FORMATS
    limit: int = 100

    def selects(self, source: SourceConfig) -> bool:
        """True when this output includes ``source`` (no filter means every source)."""
        if not self.groups and not self.sources:
            return True
        return source.id in self.sources or (
            source.group is not None and source.group in self.groups
        )


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    storage: StorageConfig = StorageConfig()
    output: OutputConfig = OutputConfig()
    dedup: DedupConfig = DedupConfig()
    sources: tuple[SourceConfig, ...] = ()
    outputs: tuple[OutputSpec, ...] = field(default=())

    def source(self, source_id: str) -> SourceConfig:
        for source in self.sources:
            if source.id == source_id:
                return source
        raise KeyError(source_id)

    @property
    def enabled_sources(self) -> tuple[SourceConfig, ...]:
        return tuple(s for s in self.sources if s.enabled)


# -- validation helpers ---------------------------------------------------------------------------


class _Problems:
    """Collects problems with their key paths."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}")


Check = Callable[[Any], str | None]  # returns an error message, or None when fine


def _is_str(v: Any) -> str | None:
    return None if isinstance(v, str) and v.strip() else "must be a non-empty string"


def _is_pos_int(v: Any) -> str | None:
    ok = isinstance(v, int) and not isinstance(v, bool) and v > 0
    return None if ok else "must be a positive integer"


def _is_pos_num(v: Any) -> str | None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and v > 0
    return None if ok else "must be a positive number"


def _is_bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _is_id(v: Any) -> str | None:
    ok = isinstance(v, str) and ID_RE.match(v)
    return None if ok else "must match [a-z0-9_-]+"


def _is_http_url(v: Any) -> str | None:
    if not isinstance(v, str):
        return "must be a string URL"
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"must be an http(s) URL, got {v!r}"
    return None


def _is_str_list(v: Any) -> str | None:
    ok = isinstance(v, list) and all(isinstance(x, str) and x for x in v)
    return None if ok else "must be a list of non-empty strings"


def _is_formats(v: Any) -> str | None:
    if _is_str_list(v) or not v:
        return f"must be a non-empty list of formats from {list(FORMATS)}"
    bad = [x for x in v if x not in FORMATS]
    return f"unknown formats {bad}; choose from {list(FORMATS)}" if bad else None


def _is_storage_url(v: Any) -> str | None:
    if _is_str(v):
        return "must be an SQLAlchemy URL string"
    if "://" not in v:
        return f"must be an SQLAlchemy URL like sqlite:///path.db, got {v!r}"
    return None


def _table(
    raw: Any,
    path: str,
    spec: Mapping[str, Check],
    problems: _Problems,
    required: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Check one TOML table against ``spec``; return the keys whose values passed."""
    if not isinstance(raw, dict):
        problems.add(path, "must be a table")
        return {}
    good: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in spec:
            problems.add(f"{path}.{key}", f"unknown key (expected one of {sorted(spec)})")
            continue
        message = spec[key](value)
        if message:
            problems.add(f"{path}.{key}", message)
        else:
            good[key] = value
    for key in required:
        if key not in raw:
            problems.add(f"{path}.{key}", "is required")
    return good


_TOP = ("storage", "output", "dedup", "sources", "outputs")
_STORAGE: dict[str, Check] = {"url": _is_storage_url}
_OUTPUT: dict[str, Check] = {
    "dir": _is_str,
    "title": _is_str,
    "base_url": _is_http_url,
    "limit": _is_pos_int,
    "formats": _is_formats,
}
_DEDUP: dict[str, Check] = {"title_window_hours": _is_pos_num, "min_title_length": _is_pos_int}
_SOURCE: dict[str, Check] = {
    "id": _is_id,
    "url": _is_http_url,
    "title": _is_str,
    "group": _is_str,
    "fixture": _is_str,
    "enabled": _is_bool,
}
_OUTPUTS: dict[str, Check] = {
    "name": _is_id,
    "title": _is_str,
    "groups": _is_str_list,
    "sources": _is_str_list,
    "formats": _is_formats,
    "limit": _is_pos_int,
}


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def resolve_storage_url(url: str, base: Path) -> str:
    """Make a relative SQLite path absolute against the config file's directory."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url.startswith(prefix + "/") or url == "sqlite:///:memory:":
        return url
    rest = url[len(prefix) :]
    return prefix + str(_resolve(base, rest))


def _build_sources(raw: Any, base: Path, problems: _Problems) -> tuple[SourceConfig, ...]:
    if not isinstance(raw, list):
        problems.add("sources", "must be an array of tables ([[sources]])")
        return ()
    sources: list[SourceConfig] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        path = f"sources[{i}]"
        good = _table(item, path, _SOURCE, problems, required=("id", "url"))
        if "id" in good:
            if good["id"] in seen:
                problems.add(
                    f"{path}.id", f"duplicate id {good['id']!r} (also sources[{seen[good['id']]}])"
                )
            seen.setdefault(good["id"], i)
        fixture = _resolve(base, good["fixture"]) if "fixture" in good else None
        if fixture is not None and not fixture.exists():
            problems.add(f"{path}.fixture", f"no such file or directory: {fixture}")
        if "id" in good and "url" in good:
            sources.append(
                SourceConfig(
                    id=good["id"],
                    url=good["url"],
                    title=good.get("title"),
                    group=good.get("group"),
                    fixture=fixture,
                    enabled=good.get("enabled", True),
                )
            )
    return tuple(sources)


def _build_outputs(
    raw: Any, output: OutputConfig, sources: tuple[SourceConfig, ...], problems: _Problems
) -> tuple[OutputSpec, ...]:
    if raw is None:
        return (
            OutputSpec(name="all", title=output.title, formats=output.formats, limit=output.limit),
        )
    if not isinstance(raw, list):
        problems.add("outputs", "must be an array of tables ([[outputs]])")
        return ()
    ids = {s.id for s in sources}
    groups = {s.group for s in sources if s.group}
    specs: list[OutputSpec] = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        path = f"outputs[{i}]"
        good = _table(item, path, _OUTPUTS, problems, required=("name",))
        for name in good.get("sources", []):
            if name not in ids:
                problems.add(f"{path}.sources", f"unknown source id {name!r}")
        for name in good.get("groups", []):
            if name not in groups:
                problems.add(f"{path}.groups", f"no source has group {name!r}")
        if "name" not in good:
            continue
        if good["name"] in names:
            problems.add(f"{path}.name", f"duplicate output name {good['name']!r}")
        names.add(good["name"])
        specs.append(
            OutputSpec(
                name=good["name"],
                title=good.get("title", output.title),
                groups=tuple(good.get("groups", ())),
                sources=tuple(good.get("sources", ())),
                formats=tuple(good.get("formats", output.formats)),
                limit=good.get("limit", output.limit),
            )
        )
    return tuple(specs)


def _check_writable(directory: Path, problems: _Problems) -> None:
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        problems.add("output.dir", f"not a writable directory: {directory}")


def parse_config(data: Mapping[str, Any], *, path: Path) -> Config:
    """Validate parsed TOML ``data`` (from the file at ``path``) into a ``Config``."""
    problems = _Problems()
    base = path.parent.resolve()
    for key in data:
        if key not in _TOP:
            problems.add(key, f"unknown key (expected one of {sorted(_TOP)})")
    storage_raw = _table(data.get("storage", {}), "storage", _STORAGE, problems)
    output_raw = _table(data.get("output", {}), "output", _OUTPUT, problems)
    dedup_raw = _table(data.get("dedup", {}), "dedup", _DEDUP, problems)
    defaults = OutputConfig()
    storage = StorageConfig(
        url=resolve_storage_url(storage_raw.get("url", StorageConfig().url), base)
    )
    base_url = output_raw.get("base_url", defaults.base_url)
    output = OutputConfig(
        dir=_resolve(base, output_raw.get("dir", "public")),
        title=output_raw.get("title", defaults.title),
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        limit=output_raw.get("limit", defaults.limit),
        formats=tuple(output_raw.get("formats", DEFAULT_FORMATS)),
    )
    _check_writable(output.dir, problems)
    sources = _build_sources(data.get("sources", []), base, problems)
    outputs = _build_outputs(data.get("outputs"), output, sources, problems)
    if problems.items:
        raise ConfigError(problems.items, path=str(path))
    return Config(
        path=path,
        storage=storage,
        output=output,
        dedup=DedupConfig(**dedup_raw),
        sources=sources,
        outputs=outputs,
    )


def load_config(path: Path) -> Config:
    """Read and validate the TOML file at ``path``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError([f"config file not found: {path}"], path=str(path)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read config file: {exc}"], path=str(path)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], path=str(path)) from exc
    return parse_config(data, path=path)
