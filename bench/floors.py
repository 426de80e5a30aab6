"""The floors: what the fastest parts available here cost for the same work (bench only).

- HTTP: GET every feed once (cold, all 200), then again with the validators (all 304), with
  aiohttp (keep-alive, 16 connections; on asyncio's loop, the floor, and on uvloop's, the
  loop the aggregator fetches on), plain httpx.AsyncClient and httpx over httpx-aiohttp.
- Parse: feedparser over the same bodies on one core, with ``sanitize_html`` and
  ``resolve_relative_uris`` off as the aggregator calls it (JSON Feed, which feedparser does
  not read, with ``json.loads``), reported whole and divided by the cores.
- Insert: SQLAlchemy Core ``executemany`` of the same rows into a fresh SQLite file, one
  transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import aiohttp
import feedparser
import httpx
import sqlalchemy as sa
import uvloop
from httpx_aiohttp import HttpxAiohttpClient
from meter import measure

CONNECTIONS = 16
Get = Callable[[str, dict[str, str]], Awaitable[tuple[int, bytes, str | None]]]


def feed_urls(port: int, n: int) -> list[str]:
    return [f"http://127.0.0.1:{port}/feed/{i}" for i in range(n)]


async def _get_all(
    get: Get, urls: list[str], etags: dict[str, str]
) -> tuple[Counter[int], dict[str, bytes], dict[str, str]]:
    """GET every URL with ``CONNECTIONS`` workers; send If-None-Match where an ETag is known."""
    statuses: Counter[int] = Counter()
    bodies: dict[str, bytes] = {}
    new_etags: dict[str, str] = {}
    todo: Iterator[str] = iter(urls)

    async def worker() -> None:
        for url in todo:
            headers = {"If-None-Match": etags[url]} if url in etags else {}
            status, body, etag = await get(url, headers)
            statuses[status] += 1
            if status == 200:
                bodies[url] = body
            if etag:
                new_etags[url] = etag

    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    return statuses, bodies, new_etags


async def _with_aiohttp(run: Callable[[Get], Awaitable[Any]]) -> Any:
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def get(url: str, headers: dict[str, str]) -> tuple[int, bytes, str | None]:
            async with session.get(url, headers=headers) as resp:
                return resp.status, await resp.read(), resp.headers.get("ETag")

        return await run(get)


async def _with_httpx(run: Callable[[Get], Awaitable[Any]], *, via_aiohttp: bool) -> Any:
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    cls = HttpxAiohttpClient if via_aiohttp else httpx.AsyncClient
    async with cls(limits=limits) as client:

        async def get(url: str, headers: dict[str, str]) -> tuple[int, bytes, str | None]:
            resp = await client.get(url, headers=headers)
            return resp.status_code, resp.content, resp.headers.get("ETag")

        return await run(get)


CLIENTS: dict[str, Callable[[Callable[[Get], Awaitable[Any]]], Awaitable[Any]]] = {
    "aiohttp": _with_aiohttp,
    "aiohttp_uvloop": _with_aiohttp,  # the same, on uvloop's event loop (as ours runs)
    "httpx": lambda run: _with_httpx(run, via_aiohttp=False),
    "httpx_aiohttp": lambda run: _with_httpx(run, via_aiohttp=True),
}


def http_floor(client: str, *, port: int, n: int, entries: int) -> dict[str, object]:
    """Cold GET of all N feeds, then the conditional GET of all N (expect all 304)."""
    urls = feed_urls(port, n)
    result: dict[str, object] = {}

    async def run(get: Get) -> None:
        with measure() as cold:
            statuses, bodies, etags = await _get_all(get, urls, {})
        cold.extra = {"statuses": dict(statuses), "entries": len(bodies) * entries, "requests": n}
        with measure() as warm:
            statuses, _, _ = await _get_all(get, urls, etags)
        warm.extra = {"statuses": dict(statuses), "entries": 0, "requests": n}
        result["cold"], result["warm"] = cold.as_dict(), warm.as_dict()

    factory = uvloop.new_event_loop if client.endswith("_uvloop") else None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(CLIENTS[client](run))
    return result


def poll_floor(*, port: int, n: int, entries: int, passes: int = 10) -> dict[str, object]:
    """aiohttp on asyncio's loop: a cold pass, then ``passes`` conditional passes (all 304),
    then ``passes`` with the server ignoring validators (all 200, the same bodies): the CPU
    per request of a bare client loop, over as many requests as the daemon's window polls."""
    urls = feed_urls(port, n)
    result: dict[str, object] = {}

    async def repeat(get: Get, etags: dict[str, str]) -> dict[str, object]:
        statuses: Counter[int] = Counter()
        with measure() as phase:
            for _ in range(passes):
                got, _, _ = await _get_all(get, urls, etags)
                statuses.update(got)
        phase.extra = {"statuses": dict(statuses), "entries": 0, "requests": n * passes}
        per = phase.as_dict()
        return per | {"passes": passes, "cpu_per_request_ms": 1000 * phase.cpu_s / (n * passes)}

    async def run(get: Get) -> None:
        _, _, etags = await _get_all(get, urls, {})
        result["polls304"] = await repeat(get, etags)
        _set_validators(port, on=False)
        try:
            result["polls200"] = await repeat(get, etags)
        finally:
            _set_validators(port, on=True)

    asyncio.run(_with_aiohttp(run))
    return result


def _set_validators(port: int, *, on: bool) -> None:
    """Make the feed server honour or ignore validators (``POST /_validators``)."""
    import urllib.request

    url = f"http://127.0.0.1:{port}/_validators?on={int(on)}"
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=60) as resp:
        resp.read()


def fetch_bodies(port: int, n: int) -> list[bytes]:
    """Every feed's body, in order (not measured: the input of the parse floor)."""
    urls = feed_urls(port, n)

    async def run(get: Get) -> dict[str, bytes]:
        _, bodies, _ = await _get_all(get, urls, {})
        return bodies

    bodies = asyncio.run(_with_aiohttp(run))
    return [bodies[u] for u in urls]


def _is_json(body: bytes) -> bool:
    return body.lstrip()[:1] == b"{"


def _ts(parsed: Any) -> datetime | None:
    return datetime(*parsed[:6], tzinfo=UTC) if parsed else None


def _rows_feedparser(source: str, doc: Any) -> list[dict[str, object]]:
    rows = []
    for e in doc.entries:
        content = e["content"][0]["value"] if "content" in e else e.get("summary", "")
        rows.append(
            _row(source, e.get("id"), e.get("title"), e.get("link"), e.get("author"), content)
            | {
                "published_at": _ts(e.get("published_parsed")),
                "categories": json.dumps([t["term"] for t in e.get("tags", [])]),
            }
        )
    return rows


def _rows_json(source: str, doc: dict[str, Any]) -> list[dict[str, object]]:
    rows = []
    for it in doc.get("items", []):
        author = (it.get("authors") or [{}])[0].get("name")
        rows.append(
            _row(source, it.get("id"), it.get("title"), it.get("url"), author, it["content_html"])
            | {
                "published_at": datetime.fromisoformat(it["date_published"]),
                "categories": json.dumps(it.get("tags", [])),
            }
        )
    return rows


def _row(
    source: str, key: str | None, title: str | None, link: str | None, author: str | None, html: str
) -> dict[str, object]:
    return {
        "source_id": source,
        "key": key,
        "title": title,
        "link": link,
        "author": author,
        "content_html": html,
        "content_hash": hashlib.sha256(html.encode()).hexdigest(),
    }


def parse_all(bodies: list[bytes]) -> tuple[list[tuple[str, Any]], int, float]:
    """Parse every body; also the entries and seconds spent in feedparser alone."""
    docs: list[tuple[str, Any]] = []
    fp_entries, fp_s = 0, 0.0
    for body in bodies:
        if _is_json(body):
            docs.append(("json", json.loads(body)))
            continue
        t0 = time.process_time()
        doc = feedparser.parse(
            BytesIO(body),
            response_headers={"content-type": "application/xml"},
            sanitize_html=False,  # as the aggregator calls it: it cleans HTML itself (nh3)
            resolve_relative_uris=False,
        )
        fp_s += time.process_time() - t0
        fp_entries += len(doc.entries)
        docs.append(("feedparser", doc))
    return docs, fp_entries, fp_s


def rows_of(docs: list[tuple[str, Any]]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for i, (kind, doc) in enumerate(docs):
        rows += _rows_json(f"f{i}", doc) if kind == "json" else _rows_feedparser(f"f{i}", doc)
    return rows


def entries_table(meta: sa.MetaData) -> sa.Table:
    """A realistic entries table: ten columns, content text, a unique key per source."""
    return sa.Table(
        "entries",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("source_id", sa.String(200), nullable=False),
        sa.Column("key", sa.String(600), nullable=False),
        sa.Column("title", sa.Text),
        sa.Column("link", sa.Text),
        sa.Column("author", sa.Text),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.Column("categories", sa.Text),
        sa.Column("content_html", sa.Text),
        sa.Column("content_hash", sa.String(64)),
        sa.UniqueConstraint("source_id", "key"),
    )


def insert_rows(path: Path, rows: list[dict[str, object]]) -> float:
    """Insert ``rows`` into a fresh SQLite file in one transaction; return the seconds taken."""
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    meta = sa.MetaData()
    table = entries_table(meta)
    meta.create_all(engine)
    try:
        t0 = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(sa.insert(table), rows)
        return time.perf_counter() - t0
    finally:
        engine.dispose()


def parse_insert_floor(*, port: int, n: int, workdir: Path) -> dict[str, object]:
    """Parse floor (one core, and divided by the cores) and insert floor of the same rows."""
    bodies = fetch_bodies(port, n)
    with measure() as parse:
        docs, fp_entries, fp_s = parse_all(bodies)
    rows = rows_of(docs)
    cores = os.cpu_count() or 1
    parse.extra = {
        "entries": len(rows),
        "bytes": sum(map(len, bodies)),
        "cores": cores,
        "feedparser_entries_per_s": fp_entries / fp_s if fp_s else 0.0,
    }
    with measure() as insert:
        insert_rows(workdir / "floor.db", rows)
    insert.extra = {"entries": len(rows)}
    per_core = parse.as_dict() | {
        "wall_s": parse.wall_s / cores,
        "cpu_s": parse.cpu_s,
        "note": f"parse wall / {cores} cores",
    }
    return {"parse": parse.as_dict(), "parse_per_core": per_core, "insert": insert.as_dict()}
