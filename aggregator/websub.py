"""WebSub publishing (W3C WebSub, section 7): tell the hub which outputs changed.

The tick only queues URLs (``HubPinger.publish`` never waits); one background thread sends
``hub.mode=publish`` + ``hub.url=<topic>`` as a form POST, one topic per request, each with a
short timeout. A hub that is down or slow costs that thread a few seconds, never a tick: while
it waits, new URLs for the same topic collapse into one pending ping.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence

import httpx

from . import USER_AGENT
from .render import RenderReport

log = logging.getLogger(__name__)

PING_TIMEOUT_S = 5.0
FEED_SUFFIXES = (".atom", ".rss", ".json")


def changed_topics(base_url: str, renders: Sequence[RenderReport]) -> tuple[str, ...]:
    """The public URLs (the topics) of the feeds ``renders`` wrote; never archive pages, which
    do not change."""
    paths = sorted(
        {
            path
            for report in renders
            for path in report.written
            if path.endswith(FEED_SUFFIXES) and not path.startswith("archive/")
        }
    )
    return tuple(base_url + path for path in paths)  # as the feeds' rel="self" says it


class HubPinger:
    """Pings one hub from a background thread; ``publish`` returns at once."""

    def __init__(
        self,
        hub: str,
        *,
        timeout_s: float = PING_TIMEOUT_S,
        client: Callable[[], httpx.Client] | None = None,
    ) -> None:
        self.hub = hub
        self.timeout_s = timeout_s
        self._client_factory = client or self._default_client
        self._pending: dict[str, None] = {}  # insertion-ordered set of topics
        self._wake = threading.Condition()
        self._closed = False
        self._busy = False
        self.sent = 0  # pings the hub accepted (2xx), for tests and logs
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="websub", daemon=True)
        self._thread.start()

    def _default_client(self) -> httpx.Client:
        return httpx.Client(timeout=self.timeout_s, headers={"User-Agent": USER_AGENT})

    def publish(self, topics: Iterable[str]) -> None:
        """Queue ``topics`` for a ping; never blocks on the network."""
        with self._wake:
            for topic in topics:
                self._pending[topic] = None
            self._wake.notify_all()

    def close(self, timeout_s: float = 1.0) -> None:
        """Stop after the ping in flight (pending ones are dropped); wait up to ``timeout_s``."""
        with self._wake:
            self._closed = True
            self._pending.clear()
            self._wake.notify()
        self._thread.join(timeout_s)

    def wait_idle(self, timeout_s: float) -> bool:
        """True once nothing is pending or in flight, False after ``timeout_s``."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._pending and not self._busy, timeout_s)

    def _run(self) -> None:
        with self._client_factory() as client:
            while True:
                with self._wake:
                    while not self._pending and not self._closed:
                        self._wake.wait()
                    if self._closed:
                        return
                    topic = next(iter(self._pending))
                    del self._pending[topic]
                    self._busy = True
                try:
                    self._ping(client, topic)
                finally:
                    with self._wake:
                        self._busy = False
                        self._wake.notify_all()

    def _ping(self, client: httpx.Client, topic: str) -> None:
        form = {"hub.mode": "publish", "hub.url": topic}
        try:
            response = client.post(self.hub, data=form)
        except httpx.HTTPError as exc:
            self.failed += 1
            log.warning("websub: hub %s unreachable for %s: %s", self.hub, topic, exc)
            return
        if response.is_success:
            self.sent += 1
            log.debug("websub: hub %s took %s (HTTP %d)", self.hub, topic, response.status_code)
        else:
            self.failed += 1
            log.warning("websub: hub %s refused %s: HTTP %d", self.hub, topic,
                        response.status_code)  # fmt: skip
