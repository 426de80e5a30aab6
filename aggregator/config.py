"""Load and validate the TOML config into frozen dataclasses; every problem is reported at once.

No I/O beyond reading the file and checking that fixtures exist; no clock.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from ipaddress import ip_network
from pathlib import Path
from typing import Any

from .clusterconfig import DEFAULT_CLUSTER, ClusterConfig, build_cluster
from .configcheck import (
    DEDUP_KEYS,
    EXPLAIN_KEYS,
    FETCH_KEYS,
    FORMATS,
    LOG_KEYS,
    OUTPUT_KEYS,
    OUTPUTS_KEYS,
    POLL_KEYS,
    SERVER_KEYS,
    SOURCE_KEYS,
    STORAGE_KEYS,
    TOP_KEYS,
    Problems,
    check_table,
    check_writable,
    is_duration,
    parse_duration,
)
from .errors import ConfigError
from .filters import NO_FILTERS, Filters, build_filters
from .netpolicy import DEFAULT_POLICY, NetPolicy
from .retention import DEFAULT_RETENTION, RetentionConfig, build_retention

__all__ = ["FORMATS", "Config", "load_config", "parse_config", "parse_duration"]
DEFAULT_FORMATS = ("atom", "rss", "json")
DEFAULT_PATH = Path("config/aggregator.toml")


@dataclass(frozen=True, slots=True)
class StorageConfig:
    url: str = "sqlite:///state/aggregator.db"
    keep_removed: bool = True  # entries of sources removed from the config stay


@dataclass(frozen=True, slots=True)
class PollConfig:
    """Scheduling and fetching defaults; durations in seconds."""

    interval_s: float = 30 * 60
    min_interval_s: float = 5 * 60
    max_interval_s: float = 24 * 3600
    jitter: float = 0.1  # up to this fraction of the wait is added, per source
    tick_s: float = 30.0  # how often the scheduler looks for due sources
    max_concurrency: int = 16
    per_host: int = 2
    # A feed is a small document: a server that cannot deliver one in 30 s is failing, and a
    # tick must not wait longer for it (Miniflux gives 20 s, rss2email 60 s).
    timeout_s: float = 30.0  # total, per request: connecting, redirects, the whole body
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 20.0  # between two reads of the body
    tick_deadline_s: float = 300.0  # no poll starts later into a tick: the rest waits for the next
    max_bytes: int = 10 * 1024 * 1024
    max_entries_per_feed: int = 1000  # a document's newest entries kept; the rest dropped
    parse_workers: int = 0  # processes that parse large ticks; 0: one per core, 1: inline


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class OutputConfig:
    dir: Path = Path("public")
    title: str = "Merged feed"
    base_url: str = "http://127.0.0.1:8080/"
    limit: int = 100
    formats: tuple[str, ...] = DEFAULT_FORMATS
    websub_hub: str | None = None  # a WebSub hub the outputs advertise and the daemon pings
    archive_page_size: int = 100  # entries per RFC 5005 archive page of each Atom output; 0: none


@dataclass(frozen=True, slots=True)
class DedupConfig:
    title_window_hours: float = 48.0
    min_title_length: int = 6


@dataclass(frozen=True, slots=True)
class ExplainConfig:
    """What `aggregator explain` and `sources show` can tell (issue #14): every poll's history
    and every verdict on an entry, kept this many days (0: none kept)."""

    keep_days: int = 7


@dataclass(frozen=True, slots=True)
class SourceConfig:
    id: str
    url: str
    title: str | None = None
    group: str | None = None
    fixture: Path | None = None
    enabled: bool = True
    interval_s: float | None = None  # else [poll] interval
    filters: Filters = NO_FILTERS  # include / exclude: what may enter the store (issue #15)
    full_text: bool = False  # fetch each new entry's page and extract the article
    content_selector: str | None = None  # CSS selector of the article (else the extractor)


@dataclass(frozen=True, slots=True)
class OutputSpec:
    name: str
    title: str
    groups: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    formats: tuple[str, ...] = DEFAULT_FORMATS
    limit: int = 100
    filters: Filters = NO_FILTERS  # include / exclude: what this output hides (issue #15)

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
    poll: PollConfig = PollConfig()
    fetch: NetPolicy = DEFAULT_POLICY  # the [fetch] table: where a redirect may take a fetch
    server: ServerConfig = ServerConfig()
    sources: tuple[SourceConfig, ...] = ()
    outputs: tuple[OutputSpec, ...] = field(default=())
    retention: RetentionConfig = DEFAULT_RETENTION
    explain: ExplainConfig = ExplainConfig()
    cluster: ClusterConfig = DEFAULT_CLUSTER
    digest: str = ""  # of the file's bytes: nodes of a cluster compare theirs (issue #17)
    log_level: str = "INFO"  # [log] level; `--log-level` overrides it (issue #16)

    def source(self, source_id: str) -> SourceConfig:
        for source in self.sources:
            if source.id == source_id:
                return source
        raise KeyError(source_id)

    @property
    def enabled_sources(self) -> tuple[SourceConfig, ...]:
        return tuple(s for s in self.sources if s.enabled)


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


def _build_sources(raw: Any, base: Path, problems: Problems) -> tuple[SourceConfig, ...]:
    if not isinstance(raw, list):
        problems.add("sources", "must be an array of tables ([[sources]])")
        return ()
    sources: list[SourceConfig] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        path = f"sources[{i}]"
        good = check_table(item, path, SOURCE_KEYS, problems, required=("id", "url"))
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
                    interval_s=parse_duration(good["interval"]) if "interval" in good else None,
                    filters=build_filters(good, path, problems),
                    full_text=good.get("full_text", False),
                    content_selector=good.get("content_selector"),
                )
            )
    return tuple(sources)


def _build_outputs(
    raw: Any, output: OutputConfig, sources: tuple[SourceConfig, ...], problems: Problems
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
        good = check_table(item, path, OUTPUTS_KEYS, problems, required=("name",))
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
        if good["name"] == "index":  # index.html is the river page of every source
            problems.add(f"{path}.name", "'index' is reserved for the river page (index.html)")
        names.add(good["name"])
        specs.append(
            OutputSpec(
                name=good["name"],
                title=good.get("title", output.title),
                groups=tuple(good.get("groups", ())),
                sources=tuple(good.get("sources", ())),
                formats=tuple(good.get("formats", output.formats)),
                limit=good.get("limit", output.limit),
                filters=build_filters(good, path, problems),
            )
        )
    return tuple(specs)


def _build_poll(raw: dict[str, Any], problems: Problems) -> PollConfig:
    seconds = {k: parse_duration(v) for k, v in raw.items() if k in _DURATION_KEYS}
    defaults = PollConfig()
    poll = PollConfig(
        interval_s=seconds.get("interval") or defaults.interval_s,
        min_interval_s=seconds.get("min_interval") or defaults.min_interval_s,
        max_interval_s=seconds.get("max_interval") or defaults.max_interval_s,
        jitter=float(raw.get("jitter", defaults.jitter)),
        tick_s=seconds.get("tick") or defaults.tick_s,
        max_concurrency=raw.get("max_concurrency", defaults.max_concurrency),
        per_host=raw.get("per_host", defaults.per_host),
        timeout_s=seconds.get("timeout") or defaults.timeout_s,
        connect_timeout_s=seconds.get("connect_timeout") or defaults.connect_timeout_s,
        read_timeout_s=seconds.get("read_timeout") or defaults.read_timeout_s,
        tick_deadline_s=seconds.get("tick_deadline") or defaults.tick_deadline_s,
        max_bytes=raw.get("max_bytes", defaults.max_bytes),
        max_entries_per_feed=raw.get("max_entries_per_feed", defaults.max_entries_per_feed),
        parse_workers=raw.get("parse_workers", defaults.parse_workers),
    )
    if not poll.min_interval_s <= poll.interval_s <= poll.max_interval_s:
        problems.add("poll.interval", "must satisfy min_interval <= interval <= max_interval")
    return poll


_DURATION_KEYS = frozenset(k for k, check in POLL_KEYS.items() if check is is_duration)


def _build_fetch(raw: dict[str, Any]) -> NetPolicy:
    return NetPolicy(
        allow_private_redirects=raw.get("allow_private_redirects", False),
        allowed_networks=tuple(ip_network(n) for n in raw.get("allowed_networks", ())),
    )


def _build_server(raw: dict[str, Any]) -> ServerConfig:
    defaults = ServerConfig()
    host, port = defaults.host, defaults.port
    if "listen" in raw:
        host, _, port_text = raw["listen"].rpartition(":")
        host, port = host.strip("[]"), int(port_text)
    return ServerConfig(host=host, port=port, enabled=raw.get("enabled", defaults.enabled))


def _check_intervals(
    sources: tuple[SourceConfig, ...], poll: PollConfig, problems: Problems
) -> None:
    for i, source in enumerate(sources):
        interval = source.interval_s
        if interval is not None and not poll.min_interval_s <= interval <= poll.max_interval_s:
            problems.add(
                f"sources[{i}].interval",
                f"must be within [poll] min_interval..max_interval "
                f"({poll.min_interval_s:g}s..{poll.max_interval_s:g}s)",
            )


def _build_output(raw: dict[str, Any], server: ServerConfig, base: Path) -> OutputConfig:
    defaults = OutputConfig()
    # Self links must name where the outputs are served: default to the server's address.
    host = f"[{server.host}]" if ":" in server.host else server.host
    base_url = raw.get("base_url", f"http://{host}:{server.port}/")
    return OutputConfig(
        dir=_resolve(base, raw.get("dir", "public")),
        title=raw.get("title", defaults.title),
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        limit=raw.get("limit", defaults.limit),
        formats=tuple(raw.get("formats", DEFAULT_FORMATS)),
        websub_hub=raw.get("websub_hub"),
        archive_page_size=raw.get("archive_page_size", defaults.archive_page_size),
    )


def parse_config(data: Mapping[str, Any], *, path: Path) -> Config:
    """Validate parsed TOML ``data`` (from the file at ``path``) into a ``Config``."""
    problems = Problems()
    base = path.parent.resolve()
    for key in data:
        if key not in TOP_KEYS:
            problems.add(key, f"unknown key (expected one of {sorted(TOP_KEYS)})")
    storage_raw = check_table(data.get("storage", {}), "storage", STORAGE_KEYS, problems)
    output_raw = check_table(data.get("output", {}), "output", OUTPUT_KEYS, problems)
    dedup_raw = check_table(data.get("dedup", {}), "dedup", DEDUP_KEYS, problems)
    explain_raw = check_table(data.get("explain", {}), "explain", EXPLAIN_KEYS, problems)
    log_raw = check_table(data.get("log", {}), "log", LOG_KEYS, problems)
    poll = _build_poll(check_table(data.get("poll", {}), "poll", POLL_KEYS, problems), problems)
    fetch = _build_fetch(check_table(data.get("fetch", {}), "fetch", FETCH_KEYS, problems))
    server = _build_server(check_table(data.get("server", {}), "server", SERVER_KEYS, problems))
    storage = StorageConfig(
        url=resolve_storage_url(storage_raw.get("url", StorageConfig().url), base),
        keep_removed=storage_raw.get("keep_removed", True),
    )
    output = _build_output(output_raw, server, base)
    check_writable(output.dir, "output.dir", problems)
    sources = _build_sources(data.get("sources", []), base, problems)
    outputs = _build_outputs(data.get("outputs"), output, sources, problems)
    _check_intervals(sources, poll, problems)
    retention = build_retention(data.get("retention", {}), problems)
    cluster = build_cluster(data.get("cluster", {}), storage.url, poll.timeout_s, problems)
    if problems.items:
        raise ConfigError(problems.items, path=str(path))
    return Config(
        path=path,
        storage=storage,
        output=output,
        dedup=DedupConfig(**dedup_raw),
        poll=poll,
        fetch=fetch,
        server=server,
        sources=sources,
        outputs=outputs,
        retention=retention,
        explain=ExplainConfig(**explain_raw),
        cluster=cluster,
        log_level=str(log_raw.get("level", "INFO")).upper(),
    )


def load_config(path: Path) -> Config:
    """Read and validate the TOML file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except FileNotFoundError as exc:
        raise ConfigError([f"config file not found: {path}"], path=str(path)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read config file: {exc}"], path=str(path)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], path=str(path)) from exc
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return replace(parse_config(data, path=path), digest=digest)
