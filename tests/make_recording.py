"""Regenerate the recorded seed ``seeds/recorded/newsroom`` (issue #14): ``python -m
tests.make_recording``.

A scripted web of six feeds, served from 127.0.0.1 and reached under their own host names
(an aiohttp resolver sends every name to the loopback server), changes over four rounds
six hours apart; ``aggregator record`` (the real fetch path: the daemon's aiohttp transport,
conditional GETs with the validators the earlier rounds left) keeps each round. The rounds'
times are fixed and the server dates its answers with them, so the recording comes out the
same every time. What happens, by source (``config/recorded.toml``):

- blog: round 2 gains a post, round 3 edits one (title and text), round 4 drops the oldest
  and gains two;
- moving: moves to another URL with a 301 in round 2, then answers 304 there;
- vanishing: 304 in round 2, 410 Gone from round 3 (never asked again);
- wire (Atom) and mirror (JSON Feed): the same two stories, one by link (mirror's link
  without wire's tracking parameters), one by title; mirror edits its copy in round 2, wire
  edits the original in round 3; mirror also carries a Chinese story;
- firehose: six entries, one more than the seed's cap of five: the oldest is never stored.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "recorded.toml"
OUT = ROOT / "seeds" / "recorded" / "newsroom"
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
ROUNDS = tuple(T0 + timedelta(hours=6 * i) for i in range(4))


@dataclass(frozen=True)
class Page:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/rss+xml; charset=utf-8"
    location: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def rss(title: str, items: list[tuple[str, str, str, str]]) -> Page:
    """RSS 2.0; items are (guid, title, html, published ISO)."""
    body = "".join(
        f"<item><guid>{g}</guid><title>{t}</title><link>{g}</link>"
        f"<description><![CDATA[{h}]]></description>"
        f"<pubDate>{format_datetime(_at(p), usegmt=True)}</pubDate></item>"
        for g, t, h, p in items
    )
    return Page(body=(
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}'
        f"</title><link>https://{title.lower()}.example/</link>{body}</channel></rss>\n"
    ).encode())  # fmt: skip


def atom(items: list[tuple[str, str, str, str, str]]) -> Page:
    """Atom 1.0; items are (id, title, link, html, published ISO)."""
    body = "".join(
        f'<entry><id>{i}</id><title>{t}</title><link href="{link}"/>'
        f"<published>{p}Z</published><updated>{p}Z</updated>"
        f'<content type="html"><![CDATA[{h}]]></content></entry>'
        for i, t, link, h, p in items
    )
    return Page(
        body=(
            '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            "<title>Wire</title><id>tag:wire.example.com,2026:feed</id>"
            f"<updated>2026-11-20T06:00:00Z</updated>{body}</feed>\n"
        ).encode(),
        content_type="application/atom+xml; charset=utf-8",
        headers={"Cache-Control": "max-age=3600"},
    )


def json_feed(items: list[tuple[str, str, str, str, str]]) -> Page:
    """JSON Feed 1.1; items are (id, title, url, html, published ISO)."""
    data = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Mirror",
        "home_page_url": "https://mirror.example.org/",
        "items": [
            {"id": i, "title": t, "url": u, "content_html": h, "date_published": p + "Z"}
            for i, t, u, h, p in items
        ],
    }
    text = json.dumps(data, ensure_ascii=False, indent=1) + "\n"
    return Page(body=text.encode(), content_type="application/feed+json; charset=utf-8")


# -- the world, round by round --------------------------------------------------------------------

B = "https://blog.example.org/posts/"
P1 = (B + "welcome", "Welcome to the blog", "<p>Hello, readers.</p>", "2026-11-18T09:00:00")
P2 = (B + "caching", "Notes on caching", "<p>Caches keep copies.</p>", "2026-11-19T09:00:00")
P2_EDITED = (B + "caching", "Notes on HTTP caching",
             "<p>Caches keep copies; validators tell when.</p>", P2[3])  # fmt: skip
P3 = (B + "feeds", "A third post about feeds", "<p>RSS, Atom, JSON.</p>", "2026-11-19T18:00:00")
P4 = (B + "fourth", "Gaining a fourth post", "<p>More to read.</p>", "2026-11-20T12:00:00")
P5 = (B + "conditional", "Fifth: conditional requests", "<p>304s.</p>", "2026-11-20T22:00:00")
P6 = (B + "gone", "Sixth: the 410 status", "<p>Gone for good.</p>", "2026-11-21T01:00:00")

N = "https://news.example.net/"
M1 = (N + "budget", "City council approves budget", "<p>Vote: 7-2.</p>", "2026-11-19T15:00:00")
M2 = (N + "library", "Library opens late on Thursdays", "<p>Until 21:00.</p>",
      "2026-11-19T16:00:00")  # fmt: skip
M3 = (N + "bridge", "Bridge repairs start Monday", "<p>Two lanes closed.</p>",
      "2026-11-20T11:00:00")  # fmt: skip
V1 = ("https://gone.example.com/last", "Last post before the move", "<p>Bye.</p>",
      "2026-11-19T10:00:00")  # fmt: skip

RATES = ("tag:wire.example.com,2026:rates", "Central bank holds rates steady",
         "https://wire.example.com/2026/11/rates?utm_source=rss&utm_medium=feed",
         "<p>The central bank kept its key rate at 3.25 %.</p>", "2026-11-20T06:00:00")  # fmt: skip
RATES_EDITED = (*RATES[:3], "<p>The central bank kept its key rate at 3.25 % and said it "
                "could cut in the spring.</p>", RATES[4])  # fmt: skip
STORM = ("tag:wire.example.com,2026:storm", "Storm closes mountain pass",
         "https://wire.example.com/2026/11/storm", "<p>Snow and wind.</p>",
         "2026-11-20T05:00:00")  # fmt: skip
MIRROR_RATES = ("mirror-7781", "Central bank holds rates steady",
                "https://wire.example.com/2026/11/rates",
                "<p>The central bank kept its key rate at 3.25 %.</p>",
                "2026-11-20T06:30:00")  # fmt: skip
MIRROR_RATES_EDITED = ("mirror-7781", "Central bank holds rates steady, hints at cuts",
                       MIRROR_RATES[2], "<p>The central bank kept its key rate at 3.25 %; "
                       "cuts may follow.</p>", MIRROR_RATES[4])  # fmt: skip
MIRROR_STORM = ("mirror-7782", "Storm closes mountain pass",
                "https://mirror.example.org/2026/storm-pass", "<p>The pass is shut.</p>",
                "2026-11-20T07:00:00")  # fmt: skip
RAIN = ("mirror-7790", "上海发布暴雨预警", "https://mirror.example.org/2026/shanghai-rain",
        "<p>上海中心气象台发布暴雨蓝色预警。</p>", "2026-11-20T07:30:00")  # fmt: skip
FIREHOSE = [
    (f"https://firehose.example.com/{n}", f"Firehose item {n}", f"<p>Item {n}.</p>",
     f"2026-11-19T{17 + n:02d}:00:00")
    for n in range(1, 7)
]  # fmt: skip


def world(round_: int) -> dict[tuple[str, str], Page]:
    """What each (host, path) answers in round 1..4."""
    blog = [[P3, P2, P1], [P4, P3, P2, P1], [P4, P3, P2_EDITED, P1],
            [P6, P5, P4, P3, P2_EDITED]][round_ - 1]  # fmt: skip
    moved = round_ >= 2
    pages = {
        ("blog.example.org", "/feed.xml"): rss("Blog", blog),
        ("news.example.net", "/old-feed.xml"): (
            Page(301, location="http://news.example.net/feed.xml") if moved
            else rss("News", [M2, M1])
        ),
        ("news.example.net", "/feed.xml"): rss("News", [M3, M2, M1]),
        ("gone.example.com", "/rss"): (
            rss("Vanishing", [V1]) if round_ < 3 else Page(410, b"gone", "text/plain")
        ),
        ("wire.example.com", "/atom.xml"): atom([RATES_EDITED if round_ >= 3 else RATES, STORM]),
        ("mirror.example.org", "/feed.json"): json_feed(
            [MIRROR_RATES_EDITED if round_ >= 2 else MIRROR_RATES, MIRROR_STORM, RAIN]
        ),
        ("firehose.example.com", "/feed.xml"): rss("Firehose", FIREHOSE[::-1]),
    }  # fmt: skip
    return pages


# -- the server -----------------------------------------------------------------------------------


class ScriptedWeb:
    """Serves ``world(round)`` on 127.0.0.1, dated with the round's time; honours ETags."""

    def __init__(self) -> None:
        self.round = 1
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.port: int = self.httpd.server_address[1]

    def _answer(self, host: str, path: str, etag: str | None) -> tuple[int, dict[str, str], bytes]:
        page = world(self.round).get((host.split(":")[0], path))
        date = {"Date": format_datetime(ROUNDS[self.round - 1], usegmt=True)}
        if page is None:
            return 404, date, b"not found"
        if page.location is not None:
            return page.status, date | {"Location": page.location}, b""
        if page.status != 200:
            return page.status, date | {"Content-Type": page.content_type}, page.body
        validators = {"ETag": page.etag, "Last-Modified": _modified(page)}
        headers = date | validators | page.headers
        if etag == page.etag:
            return 304, headers, b""
        return 200, headers | {"Content-Type": page.content_type}, page.body

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        web = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                host = self.headers.get("Host", "")
                status, headers, body = web._answer(host, self.path,
                                                    self.headers.get("If-None-Match"))  # fmt: skip
                self.send_response_only(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


def _modified(page: Page) -> str:
    """A Last-Modified that changes with the body (a day per version: stable across runs)."""
    days = int(hashlib.sha256(page.body).hexdigest()[:4], 16) % 300
    return format_datetime(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=days), usegmt=True)


class Loopback(AbstractResolver):
    """Every name resolves to the scripted web."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host="127.0.0.1", port=self.port, family=socket.AF_INET,
                          proto=0, flags=socket.AI_NUMERICHOST)
        ]  # fmt: skip

    async def close(self) -> None:
        pass


@contextmanager
def scripted_web() -> Iterator[ScriptedWeb]:
    web = ScriptedWeb()
    thread = threading.Thread(target=web.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)  # fmt: skip
    thread.start()
    try:
        yield web
    finally:
        web.httpd.shutdown()
        web.httpd.server_close()
        thread.join(timeout=5)


def make(out: Path = OUT, *, config_path: Path = CONFIG) -> Path:
    """Record the four rounds into ``out`` (replaced)."""
    from aggregator.config import load_config
    from aggregator.record import record
    from aggregator.transport import AiohttpTransport

    config = load_config(config_path)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with scripted_web() as web:
        network: Callable[[], AiohttpTransport] = lambda: AiohttpTransport(  # noqa: E731
            resolver=Loopback(web.port)
        )
        for number, at in enumerate(ROUNDS, start=1):
            web.round = number
            played, report, _ = record(config, out, now=at, network=network,
                                       clock=lambda at=at: at)  # fmt: skip
            print(f"round {played.number}: {report.summary()}")  # noqa: T201
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    make(parser.parse_args().out)


if __name__ == "__main__":
    main()
