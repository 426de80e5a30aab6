"""`aggregator record [--sources ID ...] DIR`: poll for real and keep every response (#14).

A round is one tick over the chosen sources, through the daemon's own fetch path: the
scheduler's transport is a ``RecordingTransport`` wrapping the network transport, so each
response (status, the headers that matter, the body) is kept as it reaches ``fetch``. The
state a round starts from (validators, moved URLs, gone sources) is the one the earlier rounds
leave when replayed into an empty database, rebuilt in a scratch directory: round after
round, the requests sent are the ones a replay will send, 304s included. The user's database
and outputs are not touched.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from urllib.parse import urljoin

import httpx

from .config import Config
from .fetch import header_dict
from .recording import (
    KEPT_HEADERS,
    SENT_HEADERS,
    Exchange,
    Recording,
    RecordingError,
    Round,
    append_round,
    body_name,
    load_recording,
)
from .replay import replay
from .report import TickReport
from .store import Store, open_store
from .transport import CONFIGURED_URL
from .types import utc_now

log = logging.getLogger(__name__)

Network = Callable[[], httpx.AsyncBaseTransport]  # builds the real transport, inside the loop


def _error_text(exc: BaseException) -> str:
    """``Class: message``, with the nearest class ``replay`` can raise again."""
    for kind in type(exc).__mro__:
        if kind.__module__.startswith("httpx") or kind.__name__ == "Refused":
            return f"{kind.__name__}: {exc}"
    return f"TransportError: {exc}"


async def _read(response: httpx.Response, max_bytes: int) -> bytes:
    """The decoded body, at most ``max_bytes`` + 1 bytes: enough for ``fetch`` (and a replay)
    to refuse a body over the cap as it would have."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            break
    return b"".join(chunks)[: max_bytes + 1]


class RecordingTransport(httpx.AsyncBaseTransport):
    """Sends requests through the network transport (built on first use, inside the event
    loop) and keeps what comes back; the response goes on to ``fetch`` as it will be replayed
    (the kept headers, the decoded body)."""

    def __init__(
        self,
        network: Network,
        *,
        number: int,
        max_bytes: int,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._network = network
        self._inner: httpx.AsyncBaseTransport | None = None
        self.number, self.max_bytes, self.clock = number, max_bytes, clock
        self.sources: dict[str, str] = {}  # URL -> source id (redirect targets added as met)
        self.kept: list[tuple[Exchange, bytes | None]] = []

    def _exchange(
        self,
        request: httpx.Request,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        error: str | None = None,
    ) -> Exchange:
        url = str(request.url)
        configured = str(request.extensions.get(CONFIGURED_URL, ""))
        source = self.sources.get(url) or self.sources.get(configured)
        sent = {h: request.headers[h] for h in SENT_HEADERS if h in request.headers}
        return Exchange(self.number, self.clock(), source, url, sent, status, headers or {},
                        error=error)  # fmt: skip

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._inner is None:
            self._inner = self._network()
        try:
            response = await self._inner.handle_async_request(request)
            try:
                body = await _read(response, self.max_bytes) if response.status_code == 200 else b""
            finally:
                await response.aclose()
        except httpx.TransportError as exc:
            self.kept.append((self._exchange(request, error=_error_text(exc)), None))
            raise
        except asyncio.CancelledError:  # the total timeout cut it short (``fetch``'s deadline)
            error = "TimeoutError: no complete answer in time"
            self.kept.append((self._exchange(request, error=error), None))
            raise
        return self._keep(request, response, body)

    def _keep(
        self, request: httpx.Request, response: httpx.Response, body: bytes
    ) -> httpx.Response:
        headers = {k: v for k, v in header_dict(response).items() if k in KEPT_HEADERS}
        exchange = self._exchange(request, status=response.status_code, headers=headers)
        if location := headers.get("location"):
            target = urljoin(exchange.url, location)
            if exchange.source_id is not None:
                self.sources.setdefault(target, exchange.source_id)
        if response.status_code == 200:
            seq = len(self.kept) + 1
            name = body_name(self.number, seq, exchange.source_id, headers.get("content-type", ""))
            exchange = replace(exchange, body=name)
        self.kept.append((exchange, body if exchange.body else None))
        return httpx.Response(response.status_code, headers=headers, content=body, request=request)

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()


def _chosen(config: Config, sources: Sequence[str] | None) -> list[str]:
    enabled = [s.id for s in config.enabled_sources]
    if not sources:
        return enabled
    if unknown := [s for s in sources if s not in enabled]:
        raise RecordingError(
            f"not an enabled source of {config.path}: {', '.join(unknown)} "
            f"(enabled: {', '.join(enabled) or 'none'})"
        )
    return [s for s in enabled if s in set(sources)]  # config order


def _scratch(config: Config, where: Path) -> Config:
    """``config`` with its database and outputs in ``where``: a recording touches neither."""
    storage = replace(config.storage, url=f"sqlite:///{where / 'record.db'}")
    return replace(config, storage=storage, output=replace(config.output, dir=where / "public"))


@contextmanager
def _quiet() -> Iterator[None]:
    """The rebuild of earlier rounds logs nothing below WARNING: they were logged then."""
    logger = logging.getLogger("aggregator")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def record(
    config: Config,
    directory: Path,
    *,
    sources: Sequence[str] | None = None,
    now: datetime | None = None,
    network: Network | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> tuple[Round, TickReport, Recording]:
    """Poll ``sources`` (default: every enabled one) for real and append the round to the
    recording in ``directory``. ``network``: the transport to record (default: the daemon's,
    as ``[poll]`` and ``[fetch]`` configure it); ``now``: the round's time (default: now)."""
    from .scheduler import network_http

    recording = load_recording(directory)
    chosen = _chosen(config, sources)
    at = now or clock()
    if recording.rounds and at <= recording.rounds[-1].at:
        raise RecordingError(f"{directory}: round time {at} is not after the last round's")
    recorder = RecordingTransport(network or (lambda: network_http(config).transport),
                                  number=len(recording.rounds) + 1,
                                  max_bytes=config.poll.max_bytes, clock=clock)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="aggregator-record-") as tmp:
        scratch = _scratch(config, Path(tmp))
        store = open_store(scratch.storage.url)
        try:
            if recording.rounds:
                with _quiet():
                    replay(scratch, store, recording)
            report = _record_round(scratch, store, recorder, chosen, at)
        finally:
            store.close()
    polled = {o.source_id for o in report.outcomes}
    played = [s for s in chosen if s in polled]
    updated = append_round(recording, recorder.number, at, played, recorder.kept)
    return updated.rounds[-1], report, updated


def _record_round(
    config: Config, store: Store, recorder: RecordingTransport, chosen: Sequence[str],
    at: datetime,
) -> TickReport:  # fmt: skip
    from .scheduler import build_scheduler

    scheduler = build_scheduler(config, store, clock=lambda: at, transport=recorder)
    scheduler.ordered = True  # one poll at a time, in config order: as the replay will
    try:
        scheduler.start()
        recorder.sources.update(_polled_urls(config, store, chosen, at))
        return scheduler.tick(force=True, only=chosen)
    finally:
        scheduler.close()


def _polled_urls(
    config: Config, store: Store, chosen: Sequence[str], at: datetime
) -> Mapping[str, str]:
    """URL -> source: where each source is polled now (a 301 moved it), and its config URL."""
    urls = {s.url: s.id for s in config.sources if s.id in chosen}
    states = store.due_states(at, among=list(chosen), force=True)
    return urls | {state.url: source_id for source_id, state in states.items()}
