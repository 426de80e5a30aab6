"""A scripted web behind ``httpx.MockTransport``: the scheduler's tests without sockets.

Routes answer like ``feedserver.FeedServer``'s (ETag/Last-Modified and 304s, redirects, error
statuses, gzip), plus what only an in-process fake can do deterministically: stay in flight
for a number of event-loop turns (``linger``, to see concurrency caps), block until a test
releases them, or raise a transport error. Requests and requests in flight are recorded.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    location: str | None = None  # for 3xx
    conditional: bool = True  # honour If-None-Match with a 304
    last_modified: str = "Wed, 25 Nov 2026 10:00:00 GMT"
    gzip: bool = False
    block: threading.Event | None = None  # answer only once this is set
    linger: int = 0  # stay in flight for this many turns of the event loop
    raises: type[httpx.TransportError] | None = None  # fail like the network would
    on_request: Callable[[], None] | None = None  # run when the request arrives
    content_type: str = "application/rss+xml; charset=utf-8"

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'


@dataclass
class Seen:
    url: str
    headers: dict[str, str]


class FakeWeb:
    """``routes`` maps URLs to routes; ``transport`` serves them to the scheduler."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.entered: dict[str, threading.Event] = {}  # set when a request for a URL arrives
        self.released = threading.Event()  # set at teardown: unblocks every blocked route
        self.transport = httpx.MockTransport(self._handle)

    @staticmethod
    def url(path: str, host: str = "feeds.test") -> str:
        return f"http://{host}{path}"

    def count(self, url: str) -> int:
        return sum(1 for r in self.requests if r.url == url)

    def arrived(self, url: str) -> threading.Event:
        return self.entered.setdefault(url, threading.Event())

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.requests.append(Seen(url, {k.lower(): v for k, v in request.headers.items()}))
        self.arrived(url).set()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._respond(request, self.routes.get(url))
        finally:
            self.in_flight -= 1

    async def _respond(self, request: httpx.Request, route: Route | None) -> httpx.Response:
        if route is None:
            return httpx.Response(404, content=b"not found")
        if route.on_request is not None:
            route.on_request()
        if route.block is not None:
            block = route.block
            await asyncio.get_running_loop().run_in_executor(None, _wait_either, block, self)
        for _ in range(route.linger):
            await asyncio.sleep(0)
        if route.raises is not None:
            raise route.raises("scripted failure", request=request)
        if route.location is not None:
            return httpx.Response(route.status, headers={"Location": route.location,
                                                         **route.headers})  # fmt: skip
        if route.status != 200:
            return httpx.Response(route.status, headers=route.headers, content=route.body)
        validators = {"ETag": route.etag, "Last-Modified": route.last_modified}
        if route.conditional and request.headers.get("If-None-Match") == route.etag:
            return httpx.Response(304, headers={**validators, **route.headers})
        headers = {"Content-Type": route.content_type, **validators, **route.headers}
        body = route.body
        if route.gzip:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        return httpx.Response(200, headers=headers, content=body)

    def close(self) -> None:
        self.released.set()
        for route in self.routes.values():
            if route.block is not None:
                route.block.set()


def _wait_either(block: threading.Event, web: FakeWeb) -> None:
    while not (block.wait(0.05) or web.released.is_set()):
        pass
