"""RFC 5005 archived feeds (#13): full pages in arrival order, written once, linked back from
the current document, valid Atom, served as immutable."""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from aggregator.config import load_config
from aggregator.scheduler import run_once
from aggregator.store import open_store, sql

from .sitekit import T0, Item, SiteKit, items

ROOT = Path(__file__).resolve().parents[1]
ATOM_RNC = ROOT / "tests" / "data" / "schemas" / "atom.rnc"
JING = shutil.which("jing")
ATOM = "{http://www.w3.org/2005/Atom}"
FH = "{http://purl.org/syndication/history/1.0}"
BASE = "http://127.0.0.1:8080/"


def run(kit: SiteKit, *, hours: int = 0) -> Path:
    config = load_config(kit.root / "aggregator.toml")
    store = open_store(config.storage.url)
    try:
        run_once(config, store, now=T0 + timedelta(days=1, hours=hours), offline=True, force=True)
    finally:
        store.close()
    return config.output.dir


def links(path: Path) -> dict[str, str]:
    root = etree.fromstring(path.read_bytes())
    return {link.get("rel"): link.get("href") for link in root.findall(f"{ATOM}link")}


def entry_ids(path: Path) -> list[str]:
    return [
        e.findtext(f"{ATOM}title") for e in etree.fromstring(path.read_bytes()).iter(f"{ATOM}entry")
    ]


@pytest.fixture
def kit(tmp_path: Path) -> SiteKit:
    kit = SiteKit(tmp_path)
    kit.feed("a", "Source A", items("a", 12))
    kit.write_config([("a", None)], output="limit = 4\narchive_page_size = 5")
    return kit


def test_full_pages_are_published_and_linked_from_the_current_document(kit: SiteKit) -> None:
    out = run(kit)
    pages = sorted(p.name for p in (out / "archive" / "all").iterdir())
    assert pages == ["1.atom", "2.atom"]  # 12 entries: two full pages, 2 still in the open one
    current = links(out / "all.atom")
    assert current["prev-archive"] == f"{BASE}archive/all/2.atom"
    assert len(entry_ids(out / "all.atom")) == 4  # the current document stays small
    two = links(out / "archive" / "all" / "2.atom")
    assert two == {
        "self": f"{BASE}archive/all/2.atom",
        "alternate": BASE,
        "current": f"{BASE}all.atom",
        "prev-archive": f"{BASE}archive/all/1.atom",
    }
    one = links(out / "archive" / "all" / "1.atom")
    assert "prev-archive" not in one and "next-archive" not in one
    # Arrival order: page 1 holds the first five stored, newest first inside.
    assert entry_ids(out / "archive" / "all" / "1.atom") == [
        f"A story number {n}" for n in (4, 3, 2, 1, 0)
    ]
    for page in ("1", "2"):
        root = etree.fromstring((out / "archive" / "all" / f"{page}.atom").read_bytes())
        assert root.find(f"{FH}archive") is not None
        assert root.findtext(f"{ATOM}id") == f"{BASE}all.atom"  # the same logical feed
    assert etree.fromstring((out / "all.atom").read_bytes()).find(f"{FH}archive") is None


def test_a_reader_pages_back_to_every_entry(kit: SiteKit) -> None:
    out = run(kit)
    seen: set[str] = set()
    url: str | None = f"{BASE}all.atom"
    while url:
        parsed = feedparser.parse((out / url.removeprefix(BASE)).read_bytes())
        assert not parsed.bozo
        seen |= {e.title for e in parsed.entries}
        url = next((link.href for link in parsed.feed.links if link.rel == "prev-archive"), None)
    # current (4 newest) + pages 1-2 (first 10 stored): every entry of this source in order
    assert seen == {f"A story number {n}" for n in range(12)}


def test_pages_are_written_once_and_never_change(kit: SiteKit) -> None:
    out = run(kit)
    page = out / "archive" / "all" / "1.atom"
    before, mtime = page.read_bytes(), page.stat().st_mtime_ns
    edited = items("a", 12)
    edited[0] = Item("a-0", "A story number 0, edited later", edited[0].at)
    kit.feed("a", "Source A", [*edited, *items("a", 4, start=12)])
    out = run(kit, hours=2)
    assert page.read_bytes() == before and page.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in (out / "archive" / "all").iterdir()) == [
        "1.atom",
        "2.atom",
        "3.atom",
    ]
    assert links(out / "all.atom")["prev-archive"] == f"{BASE}archive/all/3.atom"


def test_entries_stored_late_with_old_dates_land_at_the_end(kit: SiteKit) -> None:
    """A new source's backlog is older than everything, yet it goes on the newest pages: full
    pages never move."""
    out = run(kit)
    first = (out / "archive" / "all" / "1.atom").read_bytes()
    kit.feed("old", "Old source", items("old", 5, start=-100))
    kit.write_config([("a", None), ("old", None)], output="limit = 4\narchive_page_size = 5")
    out = run(kit, hours=1)
    assert (out / "archive" / "all" / "1.atom").read_bytes() == first
    three = entry_ids(out / "archive" / "all" / "3.atom")
    assert "A story number 10" in three and "Old story number -100" in three


def test_archives_can_be_turned_off(kit: SiteKit) -> None:
    kit.write_config([("a", None)], output="limit = 4\narchive_page_size = 0")
    out = run(kit)
    assert not (out / "archive").exists()
    assert "prev-archive" not in links(out / "all.atom")


@pytest.mark.skipif(JING is None, reason="jing absent: apt-get install -y jing (.ci/run does)")
def test_current_and_archive_documents_validate_against_rfc4287(kit: SiteKit) -> None:
    out = run(kit)
    paths = [out / "all.atom", *sorted((out / "archive" / "all").iterdir())]
    result = subprocess.run([str(JING), "-c", str(ATOM_RNC), *map(str, paths)],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_store_reads_entries_in_arrival_order(kit: SiteKit) -> None:
    run(kit)
    config = load_config(kit.root / "aggregator.toml")
    store = open_store(config.storage.url)
    try:
        assert store.count_entries(["a"]) == 12
        assert store.count_entries([]) == 0
        page = store.entries_by_arrival(["a"], offset=5, limit=5)
        assert [e.title for e in page] == [f"A story number {n}" for n in range(5, 10)]
        assert store.entries_by_arrival(["a"], offset=10, limit=5)[-1].title == "A story number 11"
        assert store.entries_by_arrival(["nope"], offset=0, limit=5) == ()
    finally:
        store.close()


def test_reads_of_every_stored_source_equal_reads_through_their_items(
    kit: SiteKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The seam: a selection holding every stored source reads the entries table unfiltered, one
    # leaving out fewer stored sources than it names reads "carried by another source"; with
    # the check off (threshold out of reach) the same reads go through the items' IN.
    kit.feed("old", "Old source", items("old", 5, start=-100))
    kit.feed("mid", "Mid source", items("mid", 3, start=-50))
    kit.write_config([("a", None), ("old", None), ("mid", None)],
                     output="limit = 4\narchive_page_size = 5")  # fmt: skip
    run(kit)
    config = load_config(kit.root / "aggregator.toml")
    store = open_store(config.storage.url)

    def reads(ids: list[str]) -> tuple[object, ...]:
        return (store.count_entries(ids), store.recent_entries(ids, limit=6),
                store.entries_by_arrival(ids, offset=3, limit=9))  # fmt: skip

    try:
        selections = (["a", "old", "mid"], ["old", "a", "mid", "ghost"], ["a", "old"],
                      ["a", "mid", "ghost"], ["a"], ["old"])  # fmt: skip
        monkeypatch.setattr(sql, "EVERYONE_CHECK_FROM", 1)
        direct = [reads(ids) for ids in selections]
        monkeypatch.setattr(sql, "EVERYONE_CHECK_FROM", 10**9)
        through_items = [reads(ids) for ids in selections]
    finally:
        store.close()
    assert direct == through_items
    assert [d[0] for d in direct] == [20, 20, 17, 15, 12, 5]  # each leaves out what it lacks


def test_pages_read_together_equal_pages_read_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first render reads missing pages in runs (issue #16) and writes them in batches;
    every page is byte for byte the page a query of its own gives, across runs of every
    length, with gaps on disk."""
    from aggregator import publish

    kit = SiteKit(tmp_path)
    kit.feed("a", "Source A", items("a", 23))
    kit.write_config([("a", None)], output="limit = 4\narchive_page_size = 2")
    out = run(kit)  # 11 full pages, read in runs
    pages = out / "archive" / "all"
    together = {p.name: p.read_bytes() for p in pages.iterdir()}
    assert len(together) == 11
    for name in ("1.atom", "4.atom", "5.atom", "11.atom"):  # gaps: runs start mid-archive
        (pages / name).unlink()
    monkeypatch.setattr(publish, "ARCHIVE_READ_PAGES", 1)  # one query per page, as before
    run(kit, hours=1)
    assert {p.name: p.read_bytes() for p in pages.iterdir()} == together
    shutil.rmtree(pages)
    monkeypatch.setattr(publish, "ARCHIVE_READ_PAGES", 3)
    run(kit, hours=2)
    assert {p.name: p.read_bytes() for p in pages.iterdir()} == together
    shutil.rmtree(pages)
    monkeypatch.setattr(publish, "ARCHIVE_READ_PAGES", 5)
    monkeypatch.setattr(publish, "ARCHIVE_WRITE_PAGES", 2)  # runs written in batches
    run(kit, hours=3)
    assert {p.name: p.read_bytes() for p in pages.iterdir()} == together


def test_runs_cut_consecutive_pages() -> None:
    from aggregator.publish import _runs

    assert _runs([1, 2, 3, 5, 6, 9], 2) == [[1, 2], [3], [5, 6], [9]]
    assert _runs([], 5) == []
