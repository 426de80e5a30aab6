"""Play a recording back instead of the network (issue #14): `once --replay`, `run --replay`.

``ReplayTransport`` is an httpx transport: ``fetch`` sends its requests to it as it sends them
to the daemon's ``AiohttpTransport``, so a recorded 304, redirect, 410 or transport error
takes the very path it took when it was recorded. It answers each request with the next
response recorded for that URL in the round now playing; a request the round never saw fails
like a refused connection. ``Replayer`` moves a scheduler through the rounds: each tick plays
the next one, with the clock at the time it was recorded, polling the sources it polled, one
at a time in config order (like an offline run), so that a recording replayed into an empty
database stores the same entries and writes the same bytes every time.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx

from .config import Config
from .recording import Exchange, Recording, RecordingError, Round
from .report import TickReport
from .store import Store
from .transport import Refused

log = logging.getLogger(__name__)


def _error(text: str, request: httpx.Request) -> Exception:
    """The exception a recorded error was: its httpx class (or ``Refused``), or the total
    timeout (``TimeoutError``, which ``fetch`` reports as it did then)."""
    name, _, message = text.partition(": ")
    if name == "TimeoutError":
        return TimeoutError(message)
    kind = Refused if name == "Refused" else getattr(httpx, name, None)
    if not (isinstance(kind, type) and issubclass(kind, httpx.TransportError)):
        kind = httpx.TransportError
    return kind(message, request=request)


class ReplayTransport(httpx.AsyncBaseTransport):
    """Answers from the round now playing (``play``): per URL, its responses in order."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.round = 0
        self._queues: dict[str, deque[Exchange]] = {}

    def play(self, number: int) -> None:
        queues: dict[str, deque[Exchange]] = defaultdict(deque)
        for exchange in self.recording.of_round(number):
            queues[exchange.url].append(exchange)
        self.round, self._queues = number, dict(queues)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        queue = self._queues.get(url)
        if not queue:
            raise httpx.ConnectError(
                f"no response recorded for {url} in round {self.round}", request=request
            )
        exchange = queue.popleft()
        sent = {h: request.headers[h] for h in ("if-none-match", "if-modified-since")
                if h in request.headers}  # fmt: skip
        if sent != dict(exchange.sent):
            log.debug("replay %s: validators %s, recorded with %s", url, sent, exchange.sent)
        if exchange.error is not None:
            raise _error(exchange.error, request)
        assert exchange.status is not None
        return httpx.Response(
            exchange.status,
            headers=dict(exchange.headers),
            content=self.recording.body(exchange),
            request=request,
        )


@dataclass
class Replayer:
    """A recording played round by round: the scheduler's transport, clock and rounds."""

    recording: Recording
    index: int = -1  # the round now playing (-1: none yet)

    def __post_init__(self) -> None:
        if not self.recording.rounds:
            raise RecordingError(f"{self.recording.directory}: no recorded round to replay")
        self._transport = ReplayTransport(self.recording)

    @property
    def transport(self) -> httpx.AsyncBaseTransport:
        return self._transport

    @property
    def current(self) -> Round | None:
        return self.recording.rounds[self.index] if self.index >= 0 else None

    @property
    def done(self) -> bool:
        return self.index + 1 >= len(self.recording.rounds)

    def clock(self) -> datetime:
        """When the round now playing was recorded (before the first: the first's time)."""
        return self.recording.rounds[max(self.index, 0)].at

    def advance(self) -> frozenset[str]:
        """Play the next round; its sources (none once every round is played)."""
        if self.done:
            self._transport.play(0)  # nothing left to answer with
            return frozenset()
        self.index += 1
        played = self.recording.rounds[self.index]
        self._transport.play(played.number)
        return frozenset(played.sources)


def replay(
    config: Config,
    store: Store,
    recording: Recording,
    *,
    rounds: int | None = None,
    on_round: Callable[[Round, TickReport], None] | None = None,
    on_progress: Callable[[], None] | None = None,
) -> list[tuple[Round, TickReport]]:
    """`aggregator once --replay DIR`: every round (or the first ``rounds``), one tick each."""
    from .scheduler import build_scheduler  # the scheduler imports this module's protocol user

    replayer = Replayer(recording)
    _warn_unknown(config, recording)
    scheduler = build_scheduler(config, store, replay=replayer, on_progress=on_progress)
    played: list[tuple[Round, TickReport]] = []
    try:
        scheduler.start()
        for _ in recording.rounds[:rounds]:
            report = scheduler.tick()
            current = replayer.current
            assert current is not None
            played.append((current, report))
            if on_round is not None:
                on_round(current, report)
    finally:
        scheduler.close()
    return played


def _warn_unknown(config: Config, recording: Recording) -> None:
    enabled = {s.id for s in config.enabled_sources}
    recorded = {s for r in recording.rounds for s in r.sources}
    if unknown := sorted(recorded - enabled):
        log.warning("replay: recorded sources not enabled in the config: %s", ", ".join(unknown))
