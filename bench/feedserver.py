"""BENCH TOOL: a synthetic feed server on 127.0.0.1 for the benchmark (not part of the daemon).

    python bench/feedserver.py --port 0 --feeds N --entries 20 --entry-bytes 1500 --seed 1 \
        --max-seconds 3600 [--gzip] [--latency-ms X] [--ignore-validators]

Prints its bound port on the first stdout line, then serves:
- ``GET /feed/{i}``: feed ``i`` as RSS 2.0 (i % 3 == 0), Atom 1.0 (1) or JSON Feed 1.1 (2),
  deterministic from (seed, i, the entries it has gained); strong ETag + Last-Modified, 304 on
  ``If-None-Match`` / ``If-Modified-Since`` (unless validators are ignored: then every answer
  is a 200 with the same body, as from a server without conditional GET); gzip when ``--gzip``
  and the client accepts it.
- ``POST /_churn?fraction=0.05&round=R[&entries=2]``: a deterministic ``fraction`` of the feeds
  (chosen from seed and R) gain ``entries`` new entries; each document keeps only its newest
  ``--entries``, so older ones drop off the end as in a real feed.
- ``POST /_validators?on=0|1``: ignore (0) or honour (1, the default) the request's validators.
- ``POST /_reset``: back to the initial world (round 0), validators honoured unless
  ``--ignore-validators``, request counts cleared.
- ``GET /_stats[?reset=1]``: request counts by status, as JSON.

Bounded: exits after ``--max-seconds`` and as soon as its parent process dies. 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import os
import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from html import escape

from aiohttp import web

BASE_AT = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(hours=6)  # between consecutive entries of one feed
_TEXT = """feed aggregator daemon entry source poll store render index cache header loop queue
worker thread socket buffer parser schema table column latency throughput memory network server
client request response status token stream record window budget review release version module
package library kernel driver signal vector matrix garden river mountain harbour village market
bridge winter summer autumn morning"""
WORDS = tuple(_TEXT.split())
CATEGORIES = ("python", "feeds", "web", "databases", "performance", "notes", "release", "ops")
AUTHORS = ("Ada Lovelace", "Grace Hopper", "Alan Turing", "Barbara Liskov", "Ken Thompson")
KINDS = ("rss", "atom", "json")
CONTENT_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class Item:
    """One synthetic entry, as every format shows it."""

    guid: str
    title: str
    link: str
    html: str
    at: datetime
    author: str
    categories: tuple[str, ...]


def _sentences(seed: int, count: int = 2048) -> tuple[str, ...]:
    rng = random.Random(f"sentences:{seed}")
    out = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 18))]
        out.append(" ".join(words).capitalize() + ".")
    return tuple(out)


def make_item(seed: int, feed: int, k: int, *, size: int, sentences: tuple[str, ...]) -> Item:
    """Entry ``k`` of feed ``feed``: the same bytes for the same (seed, feed, k), always."""
    rng = random.Random(f"{seed}:{feed}:{k}")
    link = f"https://blog{feed}.bench.invalid/{2026 + k // 1000}/post-{k}.html"
    head = " ".join(rng.choice(WORDS) for _ in range(5))
    paragraphs: list[str] = []
    body_len = 0
    while body_len < size:
        para = " ".join(rng.choice(sentences) for _ in range(3))
        paragraphs.append(f"<p>{escape(para)}</p>")
        body_len += len(para) + 7
        if len(paragraphs) == 1:
            img = f"https://img.bench.invalid/f{feed}/e{k}.jpg"
            paragraphs.append(f'<p><img src="{img}" alt="{head}" width="640" height="360"></p>')
    paragraphs.append(f'<p>Read more on <a href="{link}">the blog</a>.</p>')
    return Item(
        guid=f"tag:bench.invalid,2026:feed-{feed}/entry-{k}",
        title=f"Feed {feed} post {k}: {head}",
        link=link,
        html="".join(paragraphs),
        at=BASE_AT + timedelta(minutes=feed % 1440) + k * STEP,
        author=rng.choice(AUTHORS),
        categories=tuple(rng.sample(CATEGORIES, 2)),
    )


def render_rss(feed: int, items: list[Item]) -> str:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        f"<title>Bench feed {feed}</title><link>https://blog{feed}.bench.invalid/</link>"
        f"<description>Synthetic RSS 2.0 feed {feed}</description>"
        f"<lastBuildDate>{format_datetime(items[0].at)}</lastBuildDate>"
    ]
    for it in items:
        cats = "".join(f"<category>{c}</category>" for c in it.categories)
        parts.append(
            f"<item><title>{escape(it.title)}</title><link>{it.link}</link>"
            f'<guid isPermaLink="false">{it.guid}</guid><pubDate>{format_datetime(it.at)}</pubDate>'
            f"<dc:creator>{it.author}</dc:creator>{cats}"
            f"<description>{escape(it.html)}</description></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts)


def render_atom(feed: int, items: list[Item]) -> str:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>Bench feed {feed}</title><id>tag:bench.invalid,2026:feed-{feed}</id>"
        f'<link href="https://blog{feed}.bench.invalid/"/>'
        f"<updated>{items[0].at.isoformat()}</updated>"
    ]
    for it in items:
        cats = "".join(f'<category term="{c}"/>' for c in it.categories)
        parts.append(
            f"<entry><title>{escape(it.title)}</title><id>{it.guid}</id>"
            f'<link rel="alternate" href="{it.link}"/><published>{it.at.isoformat()}</published>'
            f"<updated>{it.at.isoformat()}</updated><author><name>{it.author}</name></author>"
            f'{cats}<content type="html">{escape(it.html)}</content></entry>'
        )
    parts.append("</feed>")
    return "".join(parts)


def render_json(feed: int, items: list[Item]) -> str:
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": f"Bench feed {feed}",
        "home_page_url": f"https://blog{feed}.bench.invalid/",
        "items": [
            {
                "id": it.guid,
                "url": it.link,
                "title": it.title,
                "content_html": it.html,
                "date_published": it.at.isoformat(),
                "authors": [{"name": it.author}],
                "tags": list(it.categories),
            }
            for it in items
        ],
    }
    return json.dumps(doc, ensure_ascii=False)


RENDERERS = {"rss": render_rss, "atom": render_atom, "json": render_json}


@dataclass(frozen=True, slots=True)
class Doc:
    """One feed's current representation, ready to send."""

    body: bytes
    etag: str
    last_modified: datetime
    kind: str
    gz: bytes | None = None


@dataclass
class World:
    """The server's state: which feeds gained how many entries, and their cached documents."""

    feeds: int
    entries: int
    entry_bytes: int
    seed: int
    use_gzip: bool = False
    ignore_validators: bool = False  # the start-up setting; ``validators`` is the current one
    validators: bool = True
    gained: dict[int, int] = field(default_factory=dict)
    docs: dict[int, Doc] = field(default_factory=dict)
    counts: Counter[int] = field(default_factory=Counter)
    sentences: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.sentences = _sentences(self.seed)
        self.validators = not self.ignore_validators

    def build(self, feed: int) -> Doc:
        total = self.entries + self.gained.get(feed, 0)
        items = [
            make_item(self.seed, feed, k, size=self.entry_bytes, sentences=self.sentences)
            for k in range(total - 1, total - self.entries - 1, -1)
        ]
        kind = KINDS[feed % 3]
        body = RENDERERS[kind](feed, items).encode("utf-8")
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        gz = gzip.compress(body, compresslevel=6, mtime=0) if self.use_gzip else None
        return Doc(body, etag, items[0].at, kind, gz)

    def doc(self, feed: int) -> Doc:
        got = self.docs.get(feed)
        if got is None:
            got = self.docs[feed] = self.build(feed)
        return got

    def warm(self) -> None:
        for feed in range(self.feeds):
            self.doc(feed)

    def churn(self, fraction: float, round_: int, new_entries: int) -> list[int]:
        rng = random.Random(f"churn:{self.seed}:{round_}")
        chosen = sorted(rng.sample(range(self.feeds), round(self.feeds * fraction)))
        for feed in chosen:
            self.gained[feed] = self.gained.get(feed, 0) + new_entries
            self.docs[feed] = self.build(feed)
        return chosen

    def reset(self) -> None:
        for feed in list(self.gained):
            self.docs.pop(feed, None)
        self.gained.clear()
        self.counts.clear()
        self.validators = not self.ignore_validators
        self.warm()


def _not_modified(request: web.Request, doc: Doc) -> bool:
    """RFC 9110 13.1: If-None-Match wins; If-Modified-Since only without it."""
    inm = request.headers.get("If-None-Match")
    if inm is not None:
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return "*" in tags or doc.etag in tags or doc.etag[:-1] + '-gz"' in tags
    ims = request.headers.get("If-Modified-Since")
    if ims:
        try:
            return parsedate_to_datetime(ims) >= doc.last_modified
        except (TypeError, ValueError):
            return False
    return False


def make_app(world: World, *, latency_s: float) -> web.Application:
    async def feed(request: web.Request) -> web.Response:
        if latency_s:
            await asyncio.sleep(latency_s)
        try:
            i = int(request.match_info["i"])
        except ValueError:
            i = -1
        if not 0 <= i < world.feeds:
            world.counts[404] += 1
            return web.Response(status=404)
        doc = world.doc(i)
        gz = doc.gz is not None and "gzip" in request.headers.get("Accept-Encoding", "")
        etag = doc.etag[:-1] + '-gz"' if gz else doc.etag
        headers = {"ETag": etag, "Last-Modified": format_datetime(doc.last_modified, usegmt=True)}
        if world.validators and _not_modified(request, doc):
            world.counts[304] += 1
            return web.Response(status=304, headers=headers)
        world.counts[200] += 1
        headers["Content-Type"] = CONTENT_TYPES[doc.kind]
        if gz:
            headers["Content-Encoding"] = "gzip"
            headers["Vary"] = "Accept-Encoding"
        return web.Response(body=doc.gz if gz else doc.body, headers=headers)

    async def churn(request: web.Request) -> web.Response:
        q = request.query
        chosen = world.churn(
            float(q.get("fraction", "0.05")), int(q.get("round", "1")), int(q.get("entries", "2"))
        )
        return web.json_response({"changed": len(chosen), "feeds": chosen})

    async def validators(request: web.Request) -> web.Response:
        world.validators = request.query.get("on", "1") != "0"
        return web.json_response({"validators": world.validators})

    async def reset(request: web.Request) -> web.Response:
        world.reset()
        return web.json_response({"reset": True})

    async def stats(request: web.Request) -> web.Response:
        out = {"status": {str(k): v for k, v in sorted(world.counts.items())}}
        out["requests"] = {"total": sum(world.counts.values())}
        if request.query.get("reset"):
            world.counts.clear()
        return web.json_response(out)

    app = web.Application()
    app.router.add_get("/feed/{i}", feed)
    app.router.add_post("/_churn", churn)
    app.router.add_post("/_validators", validators)
    app.router.add_post("/_reset", reset)
    app.router.add_get("/_stats", stats)
    return app


async def _until_done(max_seconds: float) -> None:
    """Return after ``max_seconds``, or as soon as the parent process is gone."""
    parent = os.getppid()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_seconds
    while loop.time() < deadline and os.getppid() == parent:
        await asyncio.sleep(min(0.5, max(0.0, deadline - loop.time())))


async def serve(args: argparse.Namespace) -> None:
    world = World(
        args.feeds,
        args.entries,
        args.entry_bytes,
        args.seed,
        use_gzip=args.gzip,
        ignore_validators=args.ignore_validators,
    )
    world.warm()  # build every document before the first request, so fetches measure the client
    runner = web.AppRunner(make_app(world, latency_s=args.latency_ms / 1000), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    print(port, flush=True)
    try:
        await _until_done(args.max_seconds)
    finally:
        await runner.cleanup()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--feeds", type=int, default=1000)
    p.add_argument("--entries", type=int, default=20)
    p.add_argument("--entry-bytes", type=int, default=1500)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-seconds", type=float, default=3600)
    p.add_argument("--gzip", action="store_true")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument(
        "--ignore-validators", action="store_true", help="answer every GET with 200, never 304"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
