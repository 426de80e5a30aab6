"""A WebSub hub stand-in on 127.0.0.1 for the tests (#13): records every publish ping; can be
made slow."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


class FakeHub:
    def __init__(self, *, delay_s: float = 0.0, status: int = 202) -> None:
        self.delay_s = delay_s
        self.status = status
        self.pings: list[dict[str, list[str]]] = []
        self.content_types: list[str] = []
        self._lock = threading.Lock()
        self.released = threading.Event()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode("utf-8"))
                with hub._lock:
                    hub.pings.append(form)
                    hub.content_types.append(self.headers.get("Content-Type", ""))
                if hub.delay_s:
                    hub.released.wait(hub.delay_s)
                self.send_response(hub.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hub"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def topics(self) -> list[str]:
        with self._lock:
            return [url for ping in self.pings for url in ping.get("hub.url", [])]

    def wait_for(self, count: int, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.pings) >= count:
                    return True
            time.sleep(0.02)
        return False


@contextmanager
def running_hub(**kwargs: float) -> Iterator[FakeHub]:
    hub = FakeHub(**kwargs)  # type: ignore[arg-type]
    hub.thread.start()
    try:
        yield hub
    finally:
        hub.released.set()
        hub.httpd.shutdown()
        hub.httpd.server_close()
