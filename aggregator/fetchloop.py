"""The fetch loop: an event loop in a thread of its own, the one HTTP client on it, and the
order in which a tick's sources start (hosts interleaved). Knows nothing of what a poll does.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from .config import SourceConfig
from .fetch import Http


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop where it is installed (a dependency on Linux and macOS), else
    asyncio's: its timers, callbacks and socket I/O cost less per request."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - e.g. Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class FetchLoop:
    """An event loop in a thread of its own, with the one shared HTTP client on it."""

    def __init__(self, make_http: Callable[[], Http] | None) -> None:
        self.loop = new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fetch-loop", daemon=True)
        self.thread.start()
        self._make_http = make_http
        self.http: Http | None = None

    async def client(self) -> Http | None:
        """The shared client, made on first use inside the loop (aiohttp wants that)."""
        if self.http is None and self._make_http is not None:
            self.http = self._make_http()
        return self.http

    def close(self) -> None:
        if self.http is not None:
            asyncio.run_coroutine_threadsafe(self.http.aclose(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


def interleave_by_host(items: Sequence[tuple[str, SourceConfig]]) -> list[SourceConfig]:
    """Round-robin over hosts, so the workers are not all queued behind one host's cap."""
    queues: dict[str, deque[SourceConfig]] = defaultdict(deque)
    for host, source in items:
        queues[host].append(source)
    out: list[SourceConfig] = []
    while queues:
        for host in list(queues):
            out.append(queues[host].popleft())
            if not queues[host]:
                del queues[host]
    return out


def host_of(url: str) -> str:
    return urlsplit(url).netloc.lower()
