"""Value checks for the config: each returns an error message, or None when the value is fine.

Pure: no I/O. ``config`` combines them into one pass that reports every problem at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from ipaddress import ip_network
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ID_RE = re.compile(r"^[a-z0-9_-]+$")
FORMATS = ("atom", "rss", "json", "markdown")


class Problems:
    """Collects problems with their key paths."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}")


Check = Callable[[Any], str | None]  # returns an error message, or None when fine


def is_str(v: Any) -> str | None:
    return None if isinstance(v, str) and v.strip() else "must be a non-empty string"


def is_pos_int(v: Any) -> str | None:
    ok = isinstance(v, int) and not isinstance(v, bool) and v > 0
    return None if ok else "must be a positive integer"


def is_non_negative_int(v: Any) -> str | None:
    ok = isinstance(v, int) and not isinstance(v, bool) and v >= 0
    return None if ok else "must be a whole number, 0 or more"


def is_pos_num(v: Any) -> str | None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and v > 0
    return None if ok else "must be a positive number"


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def is_log_level(v: Any) -> str | None:
    ok = isinstance(v, str) and v.upper() in LOG_LEVELS
    return None if ok else f"must be one of {', '.join(LOG_LEVELS)}"


def is_bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def is_id(v: Any) -> str | None:
    ok = isinstance(v, str) and ID_RE.match(v)
    return None if ok else "must match [a-z0-9_-]+"


def is_http_url(v: Any) -> str | None:
    if not isinstance(v, str):
        return "must be a string URL"
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"must be an http(s) URL, got {v!r}"
    return None


def is_str_list(v: Any) -> str | None:
    ok = isinstance(v, list) and all(isinstance(x, str) and x for x in v)
    return None if ok else "must be a list of non-empty strings"


def is_formats(v: Any) -> str | None:
    if is_str_list(v) or not v:
        return f"must be a non-empty list of formats from {list(FORMATS)}"
    bad = [x for x in v if x not in FORMATS]
    return f"unknown formats {bad}; choose from {list(FORMATS)}" if bad else None


def is_networks(v: Any) -> str | None:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        return 'must be a list of networks like "10.1.2.0/24" or "fd12:3456::/48"'
    bad: list[str] = []
    for text in v:
        try:
            ip_network(text)
        except ValueError as exc:  # says what is wrong: "10.1.2.3/24 has host bits set"
            bad.append(str(exc))
    return "; ".join(bad) or None


def is_storage_url(v: Any) -> str | None:
    if is_str(v):
        return "must be an SQLAlchemy URL string"
    if "://" not in v:
        return f"must be an SQLAlchemy URL like sqlite:///path.db, got {v!r}"
    return None


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float | None:
    """Seconds from a number of seconds or a string like "90s", "30m", "1h30m", "1d"."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value > 0 else None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().lower().replace(" ", "")
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    total = sum(float(n) * _UNIT_S[u] for n, u in parts)
    return total if total > 0 else None


def is_css_selector(v: Any) -> str | None:
    """A CSS selector soupsieve compiles (imported only when a config has one)."""
    if is_str(v):
        return 'must be a CSS selector, e.g. "article .post-body"'
    import soupsieve

    try:
        soupsieve.compile(v)
    except soupsieve.SelectorSyntaxError as exc:
        return f"invalid CSS selector {v!r}: {str(exc).splitlines()[0]}"
    return None


def is_duration(v: Any) -> str | None:
    ok = parse_duration(v) is not None
    return None if ok else 'must be a positive duration: seconds, or like "90s", "30m", "1h", "1d"'


def is_fraction(v: Any) -> str | None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1
    return None if ok else "must be a number from 0 to 1"


def is_listen(v: Any) -> str | None:
    if not isinstance(v, str) or ":" not in v:
        return 'must be "host:port", e.g. "127.0.0.1:8080"'
    host, _, port = v.rpartition(":")
    if not host.strip("[]") or not port.isdigit() or not 0 <= int(port) <= 65535:
        return f'must be "host:port" with a port from 0 to 65535, got {v!r}'
    return None


def check_table(
    raw: Any,
    path: str,
    spec: Mapping[str, Check],
    problems: Problems,
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


def check_writable(directory: Path, key: str, problems: Problems) -> None:
    """``directory`` is, or can be created as, a directory this process may write in."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        problems.add(key, f"not a writable directory: {directory}")


# -- the keys of each table, and how each is checked ---------------------------------------------

TOP_KEYS = (
    "storage", "output", "dedup", "poll", "fetch", "server", "sources", "outputs", "retention",
    "explain", "cluster", "log",
)  # fmt: skip
LOG_KEYS: dict[str, Check] = {"level": is_log_level}
EXPLAIN_KEYS: dict[str, Check] = {"keep_days": is_non_negative_int}
CLUSTER_KEYS: dict[str, Check] = {"enabled": is_bool, "lease": is_duration, "batch": is_pos_int}
STORAGE_KEYS: dict[str, Check] = {"url": is_storage_url, "keep_removed": is_bool}
POLL_KEYS: dict[str, Check] = {
    "interval": is_duration,
    "min_interval": is_duration,
    "max_interval": is_duration,
    "jitter": is_fraction,
    "tick": is_duration,
    "max_concurrency": is_pos_int,
    "per_host": is_pos_int,
    "timeout": is_duration,
    "tick_deadline": is_duration,
    "connect_timeout": is_duration,
    "read_timeout": is_duration,
    "max_bytes": is_pos_int,
    "max_entries_per_feed": is_pos_int,
    "parse_workers": is_non_negative_int,
}
FETCH_KEYS: dict[str, Check] = {"allow_private_redirects": is_bool, "allowed_networks": is_networks}
SERVER_KEYS: dict[str, Check] = {"listen": is_listen, "enabled": is_bool}
OUTPUT_KEYS: dict[str, Check] = {
    "dir": is_str,
    "title": is_str,
    "base_url": is_http_url,
    "limit": is_pos_int,
    "formats": is_formats,
    "websub_hub": is_http_url,
    "archive_page_size": is_non_negative_int,
}
DEDUP_KEYS: dict[str, Check] = {"title_window_hours": is_pos_num, "min_title_length": is_pos_int}
SOURCE_KEYS: dict[str, Check] = {
    "id": is_id,
    "url": is_http_url,
    "title": is_str,
    "group": is_str,
    "fixture": is_str,
    "enabled": is_bool,
    "interval": is_duration,
    "include": is_str_list,
    "exclude": is_str_list,
    "full_text": is_bool,
    "content_selector": is_css_selector,
}
OUTPUTS_KEYS: dict[str, Check] = {
    "name": is_id,
    "title": is_str,
    "groups": is_str_list,
    "sources": is_str_list,
    "formats": is_formats,
    "limit": is_pos_int,
    "include": is_str_list,
    "exclude": is_str_list,
}
