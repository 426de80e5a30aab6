"""A recording of real fetches (issue #14): a manifest and the bodies, under one directory.

``DIR/manifest.json`` lists the rounds (``Round``: when each was polled, which sources it
polled) and every response in the order it came (``Exchange``: its round, when it was
fetched, the source, the URL, the validators the request sent, the status, the headers that
matter and the body's file under ``DIR/bodies/``, or instead the error of a request that got
no response). ``aggregator record`` appends a round; ``--replay`` plays them back. Files only:
no network, no clock.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import AggregatorError
from .types import as_utc

FORMAT = "aggregator-recording"
VERSION = 1
MANIFEST = "manifest.json"
BODIES = "bodies"
# Response headers that change what a poll does (validators, freshness, redirects, retries,
# the body's type and charset). Content-Encoding and lengths are not kept: bodies are stored
# decoded.
KEPT_HEADERS = (
    "content-type", "etag", "last-modified", "cache-control", "expires", "date", "age",
    "location", "retry-after", "content-location",
)  # fmt: skip
SENT_HEADERS = ("if-none-match", "if-modified-since")  # the request's validators
_SUFFIXES = (("json", ".json"), ("markdown", ".md"), ("html", ".html"), ("xml", ".xml"),
             ("rss", ".xml"), ("atom", ".xml"), ("text", ".txt"))  # fmt: skip


class RecordingError(AggregatorError):
    """A recording that cannot be read or extended as asked (exit status 2)."""

    exit_status = 2


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and what came back, in the order responses came."""

    round: int
    fetched_at: datetime
    source_id: str | None
    url: str
    sent: Mapping[str, str] = field(default_factory=dict)  # If-None-Match, If-Modified-Since
    status: int | None = None  # None: no response (``error``)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None  # the body's file, relative to the recording's directory
    error: str | None = None  # "ConnectError: ...", "TimeoutError: ..."

    def __post_init__(self) -> None:
        object.__setattr__(self, "fetched_at", as_utc(self.fetched_at))


@dataclass(frozen=True, slots=True)
class Round:
    """One `aggregator record`: when the sources were polled, and which."""

    number: int
    at: datetime
    sources: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", as_utc(self.at))


@dataclass(frozen=True, slots=True)
class Recording:
    directory: Path
    rounds: tuple[Round, ...] = ()
    exchanges: tuple[Exchange, ...] = ()

    def of_round(self, number: int) -> tuple[Exchange, ...]:
        return tuple(e for e in self.exchanges if e.round == number)

    def body(self, exchange: Exchange) -> bytes:
        if exchange.body is None:
            return b""
        try:
            return (self.directory / exchange.body).read_bytes()
        except OSError as exc:
            raise RecordingError(f"{self.directory}: cannot read {exchange.body}: {exc}") from exc


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _when(value: Any, where: str) -> datetime:
    try:
        parsed = as_utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except ValueError as exc:
        raise RecordingError(f"{where}: not a time: {value!r}") from exc
    assert parsed is not None
    return parsed


def load_recording(directory: Path) -> Recording:
    """Read ``directory``'s manifest; an empty recording when there is none yet."""
    path = directory / MANIFEST
    if not path.exists():
        return Recording(directory)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordingError(f"{path}: cannot read the manifest: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RecordingError(f'{path}: not a recording (no "format": "{FORMAT}")')
    if data.get("version") != VERSION:
        raise RecordingError(f"{path}: version {data.get('version')!r}, expected {VERSION}")
    try:
        rounds = tuple(
            Round(r["round"], _when(r["at"], f"{path}: round"), tuple(r["sources"]))
            for r in data["rounds"]
        )
        exchanges = tuple(_exchange(e, path) for e in data["responses"])
    except (KeyError, TypeError) as exc:
        raise RecordingError(f"{path}: malformed manifest: {exc!r}") from exc
    return Recording(directory, rounds, exchanges)


def _exchange(item: Mapping[str, Any], path: Path) -> Exchange:
    return Exchange(
        round=item["round"], fetched_at=_when(item["fetched_at"], f"{path}: response"),
        source_id=item.get("source"), url=item["url"], sent=dict(item.get("sent") or {}),
        status=item.get("status"), headers=dict(item.get("headers") or {}),
        body=item.get("body"), error=item.get("error"),
    )  # fmt: skip


def _exchange_json(e: Exchange) -> dict[str, Any]:
    out: dict[str, Any] = {
        "round": e.round, "fetched_at": _iso(e.fetched_at), "source": e.source_id,
        "method": "GET", "url": e.url, "sent": dict(e.sent),
    }  # fmt: skip
    if e.error is not None:
        return out | {"error": e.error}
    return out | {"status": e.status, "headers": dict(e.headers), "body": e.body}


def body_name(number: int, seq: int, source_id: str | None, content_type: str) -> str:
    """Where a body is kept: ``bodies/r01-003-source.xml`` (the suffix from its type)."""
    kind = content_type.lower()
    suffix = next((s for word, s in _SUFFIXES if word in kind), ".bin")
    return f"{BODIES}/r{number:02d}-{seq:03d}-{source_id or 'unknown'}{suffix}"


def append_round(
    recording: Recording, number: int, at: datetime, sources: Sequence[str],
    exchanges: Sequence[tuple[Exchange, bytes | None]],
) -> Recording:  # fmt: skip
    """Write a round's bodies, then the manifest with the round added (atomically: an
    interrupted `record` leaves the previous manifest, and at worst unlisted bodies)."""
    directory = recording.directory
    (directory / BODIES).mkdir(parents=True, exist_ok=True)
    for exchange, body in exchanges:
        if exchange.body is not None and body is not None:
            (directory / exchange.body).write_bytes(body)
    updated = Recording(
        directory,
        (*recording.rounds, Round(number, at, tuple(sources))),
        (*recording.exchanges, *(e for e, _ in exchanges)),
    )
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "rounds": [
            {"round": r.number, "at": _iso(r.at), "sources": list(r.sources)}
            for r in updated.rounds
        ],
        "responses": [_exchange_json(e) for e in updated.exchanges],
    }
    _write_atomic(directory / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1) + "\n")
    return updated


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
