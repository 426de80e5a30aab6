"""A small offline site for the page, archive, WebSub and browser tests (#13): RSS fixtures
written to a temp dir, a config over them, and helpers to read what was published."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Item:
    guid: str
    title: str
    at: datetime
    summary: str = ""
    link: str | None = None
    thumbnail: str | None = None

    @property
    def url(self) -> str:
        return self.link or f"https://example.org/{self.guid}"


def items(prefix: str, count: int, *, start: int = 0, step_h: float = 1.0) -> list[Item]:
    """``count`` items, the later ones newer: ``<prefix>-<n>`` published ``n * step_h`` hours
    after T0."""
    return [
        Item(
            f"{prefix}-{n}",
            f"{prefix.capitalize()} story number {n}",
            T0 + timedelta(hours=n * step_h),
            summary=f"What happened in {prefix} story {n}, told in one sentence.",
        )
        for n in range(start, start + count)
    ]


def rss_document(title: str, entries: list[Item]) -> bytes:
    media = 'xmlns:media="http://search.yahoo.com/mrss/"'
    body = "".join(
        f"<item><guid>{escape(i.guid)}</guid><title>{escape(i.title)}</title>"
        f"<link>{escape(i.url)}</link><description>{escape(i.summary)}</description>"
        f"<pubDate>{format_datetime(i.at, usegmt=True)}</pubDate>"
        + (f'<media:thumbnail url="{escape(i.thumbnail)}"/>' if i.thumbnail else "")
        + "</item>"
        for i in entries
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" {media}><channel>'
        f"<title>{escape(title)}</title><link>https://example.org/{escape(title)}</link>"
        f"{body}</channel></rss>"
    ).encode()


@dataclass
class SiteKit:
    """Sources as fixture files under ``root/feeds``; ``write_config`` makes the config."""

    root: Path

    def feed(self, source_id: str, title: str, entries: list[Item]) -> Path:
        path = self.root / "feeds" / f"{source_id}.xml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rss_document(title, entries))
        return path

    def write_config(
        self,
        sources: list[tuple[str, str | None]],
        *,
        port: int = 8080,
        output: str = "",
        outputs: str = "",
        extra: str = "",
    ) -> Path:
        """``sources``: (id, group); each reads ``feeds/<id>.xml``."""
        blocks = "".join(
            f'[[sources]]\nid = "{sid}"\nurl = "https://feeds.example.org/{sid}.xml"\n'
            + (f'group = "{group}"\n' if group else "")
            + f'fixture = "feeds/{sid}.xml"\n\n'
            for sid, group in sources
        )
        path = self.root / "aggregator.toml"
        path.write_text(
            '[storage]\nurl = "sqlite:///state/db.sqlite"\n'
            f'[output]\ndir = "public"\ntitle = "River of news"\n'
            f'base_url = "http://127.0.0.1:{port}/"\n{output}\n'
            f'[server]\nlisten = "127.0.0.1:{port}"\n'
            f'[poll]\ninterval = "30m"\ntick = "30s"\n{extra}\n{blocks}{outputs}',
            encoding="utf-8",
        )
        return path
