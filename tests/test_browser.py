"""The pages and feeds as a person meets them (#13): the daemon serves them on 127.0.0.1,
headless Chromium loads them (DOM checked, screenshots kept in build/test-artifacts/), and a
real feed reader (newsboat) subscribes to an output and reads its entries back."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import feedparser
import httpx
import pytest
from lxml import html

from .feedserver import FeedServer, Route, running_feed_server
from .sitekit import T0, Item, SiteKit

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("AGGREGATOR_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))
CHROMIUM = shutil.which("chromium")
NEWSBOAT = shutil.which("newsboat")
WAIT_S = 30.0
# Per the machine notes: without the background-networking flags Chromium keeps trying to
# reach Google's hosts, which this machine's closed network refuses.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--virtual-time-budget=3000",
)  # fmt: skip
SEEDS = (  # (id, group, fixture): real-world feeds, merged stories among them
    ("huxiu", "新媒体", "huxiu/"),
    ("daringfireball", "tech", "feeds/atom10-daringfireball.atom"),
    ("daringfireball-json", "tech", "feeds/jsonfeed10-daringfireball.json"),
    ("debian-news", "tech", "feeds/rss1-debian-security.rdf"),
    ("kc0011", "新媒体", "feeds/rss2-zh-kc0011-gb2312.rss"),
    ("kc0011-mirror", "新媒体", "feeds/rss2-zh-kc0011-gb18030.rss"),
    ("omnishow", "podcasts", "feeds/podcast-theomnishow.rss"),
    ("reuters-broken", "news", "feeds/rss2-truncated-invalid.xml"),
)
SUMMARIES = (
    "Eleven hours overnight, a bunk and breakfast: the line closed in 2014 is running again.",
    "No rewrite, no big bang: tests first, then one module a month, and a release every week.",
    "Sales are up for the third year; the people buying them are mostly under thirty.",
    "The answer depends on the ruler: with a shorter one, the coast gets longer. Much longer.",
    "Dry soil, then a downpour: the fruit swells faster than its skin can stretch.",
    "Cumulus, stratus, and the odd lenticular: what each one says about tomorrow's weather.",
)
PALETTE = ("#d9480f", "#1971c2", "#2f9e44", "#9c36b5", "#e67700", "#0c8599")
GALLERY = (
    "Night trains are back: a sleeper from Paris to Berlin",
    "How a small team keeps a 20-year-old C codebase healthy",
    "The quiet return of the fountain pen",
    "Measuring the coastline of Norway, again",
    "Why your tomatoes split after rain",
    "A field guide to the clouds over the North Sea",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def svg(n: int) -> bytes:
    """A thumbnail: a coloured tile with a big letter."""
    color, letter = PALETTE[n % len(PALETTE)], GALLERY[n][0]
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="240" height="240" viewBox="0 0 240 240">'
        f'<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" '
        f'stop-color="{color}"/><stop offset="1" stop-color="#222" stop-opacity=".55"/>'
        '</linearGradient></defs><rect width="240" height="240" fill="url(#g)"/>'
        f'<text x="120" y="155" font-family="sans-serif" font-size="120" fill="#fff" '
        f'text-anchor="middle" opacity=".9">{letter}</text></svg>'
    ).encode()


@dataclass
class Served:
    base: str
    out: Path
    root: Path


def write_site(root: Path, images: FeedServer, port: int) -> None:
    kit = SiteKit(root)
    now = T0 + timedelta(days=8)
    images.routes = {f"/img/{n}.svg": Route(body=svg(n), content_type="image/svg+xml")
                     for n in range(len(GALLERY))}  # fmt: skip
    kit.feed("gallery", "The Weekly Gallery", [
        Item(f"g-{n}", title, now - timedelta(hours=3 * n + 1),
             summary=SUMMARIES[n],
             thumbnail=images.url(f"/img/{n}.svg"))
        for n, title in enumerate(GALLERY)
    ])  # fmt: skip
    path = kit.write_config([("gallery", "culture")], port=port)
    seeds = "".join(
        f'[[sources]]\nid = "{sid}"\nurl = "https://feeds.example.org/{sid}"\n'
        f'group = "{group}"\nfixture = "{ROOT / "seeds" / fixture}"\n\n'
        for sid, group, fixture in SEEDS
    )
    outputs = (
        '[[outputs]]\nname = "all"\ntitle = "River of news"\n\n'
        '[[outputs]]\nname = "tech"\ntitle = "Tech"\ngroups = ["tech"]\n'
    )
    path.write_text(path.read_text(encoding="utf-8") + seeds + outputs, encoding="utf-8")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("browser")
    port = free_port()
    with running_feed_server() as images:
        write_site(root, images, port)
        log = root / "daemon.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "aggregator", "-c", str(root / "aggregator.toml"), "run",
                 "--offline"],
                stdout=out, stderr=subprocess.STDOUT, cwd=root,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        base = f"http://127.0.0.1:{port}/"
        try:
            wait_for_first_tick(base, proc, log)
            yield Served(base, root / "public", root)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0, log.read_text()


def wait_for_first_tick(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            status = httpx.get(base + "status.json", timeout=2).json()
            if status["daemon"]["last_tick_at"]:
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"no tick within {WAIT_S}s:\n{log.read_text()}")


def chromium(tmp: Path, url: str, *flags: str) -> str:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed and could not be: apt-get install -y chromium")
    profile = tmp / f"profile-{time.monotonic_ns()}"
    result = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *flags, url],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_river_in_chromium_shows_every_entry_and_working_links(
    served: Served, tmp_path: Path
) -> None:
    dom = html.fromstring(chromium(tmp_path, served.base, "--dump-dom"))
    want = [item["title"] for item in httpx.get(served.base + "all.json").json()["items"]]
    entries = dom.xpath("//li[@class='entry']")
    assert [e.xpath("string(.//h2)") for e in entries] == want
    assert 0 < len(entries) <= 100  # [output] limit, newest first
    first = entries[0]
    assert first.xpath("string(.//h2)") == GALLERY[0]
    assert first.xpath(".//a[@class='source']/text()") == ["The Weekly Gallery"]
    assert first.xpath(".//img/@src")[0].endswith("/img/0.svg")
    # The script ran: relative times ("3 hours ago") next to the absolute ones.
    rel = first.xpath("string(.//time/span[@class='rel'])")
    assert rel.endswith("ago") and first.xpath("string(.//time/@datetime)").endswith("Z")
    merged = [e for e in entries if len(e.xpath(".//a[@class='source']")) == 2]
    assert merged, "merged stories list both sources"
    assert len(merged) >= 20  # the forum and its mirror; the blog's Atom and JSON Feed
    hrefs = {a.get("href") for a in dom.xpath("//head/link[@rel='alternate']")}
    hrefs |= {a.get("href") for a in dom.xpath("//aside//a | //nav//a")}
    assert {"all.atom", "all.rss", "all.json", "tech.atom", "outputs.opml", "status"} <= hrefs
    for href in sorted(hrefs):
        response = httpx.get(served.base + href)
        assert response.status_code == 200, href
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name, flags in (
        ("river.png", ("--window-size=1280,2000",)),
        ("river-dark.png", ("--window-size=1280,2000", "--force-dark-mode")),
        ("river-phone.png", ("--window-size=390,1400",)),
    ):
        shot = ARTIFACTS / name
        shot.unlink(missing_ok=True)
        chromium(tmp_path, served.base, f"--screenshot={shot}", *flags)
        assert shot.read_bytes().startswith(b"\x89PNG"), name


def test_status_and_group_pages_in_chromium(served: Served, tmp_path: Path) -> None:
    status = html.fromstring(chromium(tmp_path, served.base + "status", "--dump-dom"))
    rows = status.xpath("//table[@class='sources']/tbody/tr/@id")
    assert rows[0] == "source-reuters-broken" and len(rows) == len(SEEDS) + 1
    assert status.xpath("string(//section[@class='health']/div[1]/p[@class='big'])") == "healthy"
    group = html.fromstring(chromium(tmp_path, served.base + "groups/tech.html", "--dump-dom"))
    sources = set(group.xpath("//li[@class='entry']//a[@class='source']/text()"))
    assert sources <= {"Daring Fireball", "Debian News", "Daring Fireball (JSON)"}
    shot = ARTIFACTS / "status.png"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    chromium(tmp_path, served.base + "status", f"--screenshot={shot}", "--window-size=1280,1100")
    assert shot.is_file()


def newsboat(tmp: Path, *args: str) -> str:
    if NEWSBOAT is None:
        pytest.skip("newsboat is not installed and could not be: apt-get install -y newsboat")
    env = {**os.environ, "HOME": str(tmp), "XDG_CONFIG_HOME": str(tmp / ".config"),
           "XDG_DATA_HOME": str(tmp / ".local")}  # fmt: skip
    result = subprocess.run(
        [NEWSBOAT, "-u", str(tmp / "urls"), "-c", str(tmp / "cache.db"), "-C", str(tmp / "config"),
         *args],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_newsboat_subscribes_to_an_output_and_reads_every_entry(
    served: Served, tmp_path: Path
) -> None:
    feed = served.base + "all.atom"
    (tmp_path / "urls").write_text(feed + "\n", encoding="utf-8")
    (tmp_path / "config").write_text("reload-threads 1\n", encoding="utf-8")
    newsboat(tmp_path, "-x", "reload")
    unread = newsboat(tmp_path, "-x", "print-unread").strip()
    atom = feedparser.parse(httpx.get(feed).content)
    with sqlite3.connect(tmp_path / "cache.db") as db:
        read = [(title, url) for title, url in db.execute(
            "SELECT title, url FROM rss_item WHERE feedurl = ? ORDER BY pubDate DESC, id",
            (feed,))]  # fmt: skip
        titles = dict(db.execute("SELECT rssurl, title FROM rss_feed"))
    assert sorted(t for t, _ in read) == sorted(e.title for e in atom.entries)
    assert {title for title, _ in read} >= set(GALLERY)
    assert titles == {feed: "River of news"}
    assert unread == f"{len(atom.entries)} unread articles"
    (ARTIFACTS / "newsboat.json").parent.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "newsboat.json").write_text(
        json.dumps({"print-unread": unread, "feeds": titles, "items": read}, ensure_ascii=False,
                   indent=2), encoding="utf-8")  # fmt: skip
