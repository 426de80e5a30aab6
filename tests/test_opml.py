"""OPML: the files five feed readers export, import-opml into the config, export-opml, and the
round trip (issue #12)."""

from __future__ import annotations

import shutil
import tomllib
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from lxml import etree  # type: ignore[import-untyped]

from aggregator.cli import main
from aggregator.config import load_config
from aggregator.opml import NAMESPACE, OpmlError, OpmlFeed, read_opml, write_opml

from .conftest import ROOT

OPML = ROOT / "tests" / "data" / "opml"
NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)


def feeds_of(name: str) -> list[tuple[str, str | None, str | None, str | None]]:
    opml = read_opml((OPML / name).read_bytes())
    return [(f.url, f.title, f.group, f.html_url) for f in opml.feeds]


def test_miniflux_export() -> None:
    assert feeds_of("miniflux.opml") == [
        ("https://lwn.net/headlines/rss", "LWN.net", "Linux", "https://lwn.net"),
        ("https://daringfireball.net/feeds/main", "Daring Fireball", "Tech",
         "https://daringfireball.net/"),
        ("https://miniflux.app/feed.xml", "Miniflux", "Tech", "https://miniflux.app/"),
    ]  # fmt: skip


def test_freshrss_export_skips_its_web_scraping_sources() -> None:
    opml = read_opml((OPML / "freshrss.opml").read_bytes())
    assert [(f.title, f.group) for f in opml.feeds] == [
        ("FreshRSS releases", "Uncategorized"),
        ("arXiv cs.IR", "Science"),
    ]
    assert [(s.what, s.reason) for s in opml.skipped] == [
        ("Town news (scraped)", "type 'HTML+XPath' is not a feed")
    ]


def test_newsboat_export_has_titles_without_text() -> None:
    assert feeds_of("newsboat.opml") == [
        ("https://lwn.net/headlines/rss", "LWN.net", None, "https://lwn.net"),
        ("https://xkcd.com/atom.xml", "xkcd.com", None, "https://xkcd.com/"),
        ("exec:~/bin/weather-feed.sh", "local weather (script)", None, None),
    ]


def test_feedly_and_inoreader_exports() -> None:
    assert [g for _, _, g, _ in feeds_of("feedly.opml")] == ["Tech", "Tech", "News"]
    inoreader = feeds_of("inoreader.opml")
    assert inoreader[1][1] == "Simon Willison's Weblog"
    assert inoreader[2][:3] == (
        "https://www.ruanyifeng.com/blog/atom.xml",
        "阮一峰的网络日志",
        "中文",
    )


def test_nested_folders_become_one_group_and_attribute_case_does_not_matter() -> None:
    data = b"""<?xml version="1.0"?>
    <opml version="1.1"><head/><body>
      <outline text="Tech"><outline title="Python">
        <outline text="PSF" xmlurl="https://pyfound.blogspot.com/feeds/posts/default"/>
      </outline></outline>
      <outline text="a note, not a feed"/>
    </body></opml>"""
    opml = read_opml(data)
    assert opml.feeds == (
        OpmlFeed("https://pyfound.blogspot.com/feeds/posts/default", "PSF", None, "Tech/Python"),
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<opml><body><outline", "not well-formed XML"),
        (b"<rss version='2.0'><channel/></rss>", "not OPML: the root element is <rss>"),
        (b"<opml version='2.0'><head/></opml>", "no <body>"),
    ],
)
def test_not_opml(data: bytes, message: str) -> None:
    with pytest.raises(OpmlError, match=message):
        read_opml(data)


def test_no_external_entity_is_read_and_no_entity_bomb_goes_off() -> None:
    leak = b"""<?xml version="1.0"?>
    <!DOCTYPE opml [<!ENTITY x SYSTEM "file:///etc/passwd">]>
    <opml version="2.0"><body><outline text="&x;" xmlUrl="https://a.example/f"/></body></opml>"""
    with pytest.raises(OpmlError, match="external entity"):
        read_opml(leak)
    lol = '<!ENTITY l0 "lol">' + "".join(
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10)
    )
    bomb = f"""<!DOCTYPE opml [{lol}]><opml version="2.0"><body>
    <outline text="&l9;" xmlUrl="https://a.example/f"/></body></opml>""".encode()
    with pytest.raises(OpmlError, match="amplification"):
        read_opml(bomb)


def test_export_is_opml_2_with_groups_as_nested_outlines() -> None:
    feeds = [
        OpmlFeed("https://a.example/feed", "A & B", "https://a.example/", "tech/python", "a-b"),
        OpmlFeed("https://b.example/feed", None, None, None),
        OpmlFeed("https://c.example/feed", "C", None, "tech"),
    ]
    data = write_opml(feeds, title="Merged feed: sources", now=NOW)
    root = etree.fromstring(data)
    assert root.tag == "opml" and root.get("version") == "2.0"
    assert root.findtext("head/title") == "Merged feed: sources"
    assert parsedate_to_datetime(root.findtext("head/dateCreated")) == NOW  # RFC 822
    tech = root.find("body/outline[@text='tech']")
    python = tech.find("outline[@text='python']")
    a = python.find("outline")
    assert dict(a.attrib) == {"type": "rss", "text": "A & B", "title": "A & B",
                              "xmlUrl": "https://a.example/feed",
                              "htmlUrl": "https://a.example/",
                              f"{{{NAMESPACE}}}id": "a-b"}  # fmt: skip
    assert read_opml(data).feeds[0].id == "a-b"
    assert tech.find("outline[@xmlUrl='https://c.example/feed']") is not None
    b = root.find("body/outline[@xmlUrl='https://b.example/feed']")
    assert b.get("text") == "https://b.example/feed" and b.get("htmlUrl") is None
    for outline in root.iter("outline"):
        assert outline.get("text")  # OPML 2.0: text is required on every outline
    assert write_opml(feeds, title="Merged feed: sources", now=NOW) == data  # deterministic


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "seeds", tmp_path / "seeds")
    shutil.copytree(ROOT / "config", tmp_path / "config")
    return tmp_path / "config" / "aggregator.toml"


def test_import_every_reader_skipping_what_is_already_there(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = cfg.read_text()
    configured = len(load_config(cfg).sources)
    for name in ("miniflux", "freshrss", "newsboat", "feedly", "inoreader"):
        assert main(["-c", str(cfg), "import-opml", str(OPML / f"{name}.opml")]) == 0
    out = capsys.readouterr().out
    config = load_config(cfg)
    added = config.sources[configured:]
    assert [s.id for s in added] == [
        "lwn-net", "miniflux",  # Daring Fireball: already configured
        "freshrss-releases", "arxiv-cs-ir",
        "xkcd-com",  # LWN.net: imported from Miniflux already; exec: is not http(s)
        "the-verge", "bbc-news-home",  # Daring Fireball again, as http://
        "julia-evans", "simon-willison-s-weblog", "ruanyifeng",
    ]  # fmt: skip
    assert config.source("ruanyifeng").group == "中文"
    assert config.source("ruanyifeng").title == "阮一峰的网络日志"
    assert config.source("xkcd-com").group is None
    assert "miniflux.opml: 2 added, 1 skipped" in out
    assert "skipped  Daring Fireball: already present (configured as 'daringfireball')" in out
    assert "skipped  Town news (scraped): type 'HTML+XPath' is not a feed" in out
    assert "skipped  local weather (script): not an http(s) URL: exec:" in out
    assert "skipped  LWN.net: already present (configured as 'lwn-net')" in out
    assert "systemctl reload aggregator" in out
    assert cfg.read_text().startswith(before)  # appended after the last source: nothing moved


def test_import_into_one_group_and_twice_adds_nothing(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["-c", str(cfg), "import-opml", str(OPML / "feedly.opml"), "--group", "feedly"]) == 0
    )
    assert {
        s.group for s in load_config(cfg).sources if s.id in ("the-verge", "bbc-news-home")
    } == {"feedly"}
    text = cfg.read_text()
    capsys.readouterr()
    assert main(["-c", str(cfg), "import-opml", str(OPML / "feedly.opml")]) == 0
    assert "0 added, 3 skipped" in capsys.readouterr().out
    assert cfg.read_text() == text


def test_import_a_file_that_is_not_opml_fails_in_one_line(
    cfg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "subs.opml"
    bad.write_text("<html><body>oops</body></html>")
    assert main(["-c", str(cfg), "import-opml", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: not OPML: the root element is <html>, not <opml>"
    assert main(["-c", str(cfg), "import-opml", str(tmp_path / "missing.opml")]) == 1
    assert "missing.opml: No such file or directory" in capsys.readouterr().err


def test_round_trip_config_to_opml_to_config(
    cfg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "subs.opml"
    assert main(["-c", str(cfg), "export-opml", "--output", str(out)]) == 0
    original = load_config(cfg)
    fresh = tmp_path / "fresh" / "aggregator.toml"
    fresh.parent.mkdir()
    fresh.write_text('[storage]\nurl = "sqlite:///state.db"\n')
    assert main(["-c", str(fresh), "import-opml", str(out)]) == 0
    imported = {s.id: s for s in load_config(fresh).sources}
    assert sorted(imported) == sorted(s.id for s in original.sources)  # ids kept (aggregator:id)
    for source in original.sources:
        back = imported[source.id]
        assert (back.url, back.group) == (source.url, source.group)
        # The title: the configured one, else (never polled yet) the id.
        assert back.title == (source.title or source.id)
    capsys.readouterr()
    assert main(["-c", str(fresh), "export-opml"]) == 0  # to standard output
    again = capsys.readouterr().out.encode()
    first, second = (read_opml(d).feeds for d in (out.read_bytes(), again))
    assert [(f.url, f.title, f.group) for f in first] == [(f.url, f.title, f.group) for f in second]


def test_export_after_polling_has_feed_titles_and_site_links(
    cfg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-c", str(cfg), "--log-level", "ERROR", "once", "--offline"]) == 0
    capsys.readouterr()
    assert main(["-c", str(cfg), "export-opml"]) == 0
    feeds = {f.url: f for f in read_opml(capsys.readouterr().out.encode()).feeds}
    fireball = feeds["https://daringfireball.net/feeds/main"]
    assert fireball.title == "Daring Fireball"
    assert fireball.html_url == "https://daringfireball.net/"
    assert fireball.group == "tech"
    assert tomllib.loads(cfg.read_text())  # export never touches the config
