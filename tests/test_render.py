"""Tests for aggregator.render: re-parse, schema, golden bytes, determinism, atomic writes."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import feedparser
import pytest
import yaml
from lxml import etree

from aggregator.errors import RenderError
from aggregator.render import (
    FORMATS,
    RenderReport,
    render_atom,
    render_jsonfeed,
    render_markdown,
    render_output,
    render_rss,
    sync_dir,
    write_atomic,
    write_file,
    write_files,
)
from aggregator.render.markdown import first_image, post_name, render_post
from aggregator.types import Channel, Enclosure, Provenance, StoredEntry

ROOT = Path(__file__).resolve().parents[1]
GOLDEN_DIR = ROOT / "tests" / "data" / "render"
ATOM_RNC = ROOT / "tests" / "data" / "schemas" / "atom.rnc"
RSS_XSD = ROOT / "tests" / "data" / "schemas" / "rss-2_0.xsd"
SEED = ROOT / "seeds" / "huxiu" / "huxiu-2021-03-22-industrial-internet.md"
JING = Path("/usr/bin/jing")
REGEN_HINT = "golden mismatch: run `.venv/bin/python tests/regen_render_golden.py`, review the diff"

SEED_TITLE = "2021年，工业互联网创业机会一定在这里"
CHANNEL = Channel(
    name="news",
    title="新闻 · Merged news",
    base_url="https://feeds.example.org/",
    subtitle="Everything the sources published, deduplicated",
)
HUXIU = Provenance(
    source_id="huxiu",
    source_title="虎嗅 - 首页资讯",
    source_url="https://rss.huxiu.com/",
    feed_link="https://www.huxiu.com/",
    link="https://www.huxiu.com/article/419571.html",
    guid="419571",
)
MIRROR = Provenance(
    source_id="mirror",
    source_title="Tech mirror",
    source_url="https://mirror.example.net/feed.xml",
    feed_link=None,
    link="https://mirror.example.net/p/419571",
    guid=None,
)
PODCAST = Provenance(
    source_id="omni",
    source_title="The Omni Show: a podcast",  # ': ' forces YAML quoting in the Markdown export
    source_url="https://omni.example.com/podcast.rss",
    feed_link="https://omni.example.com/",
    link=None,
    guid="ep-42",
)
BLOG = Provenance("blog", "Blog", "https://blog.example.com/atom.xml", None, None, None)


def _at(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2021, 3, day, hour, minute, tzinfo=UTC)


def _entry(uid: str, title: str, **fields: Any) -> StoredEntry:
    values: dict[str, Any] = {
        "link": f"https://example.org/{uid}",
        "author": None,
        "published_at": _at(1),
        "updated_at": _at(1),
        "content_html": "<p>Body</p>",
        "summary": "",
        "thumbnail": None,
        "categories": (),
        "enclosures": (),
        "group": None,
        "sources": (BLOG,),
    }
    values.update(fields)
    return StoredEntry(uid=f"urn:uuid:{uid}", title=title, **values)


ENTRIES = (  # newest first, as the store hands them over
    _entry(
        "00000000-0000-4000-8000-000000000001",
        SEED_TITLE,
        link="https://www.huxiu.com/article/419571.html",
        published_at=_at(22, 4, 4),
        updated_at=_at(22, 6),
        content_html='<p>工业互联网</p><img src="https://img.example.cn/a.jpg?w=1&amp;h=2">',
        summary="工业互联网必须榜上有名。",
        categories=("工业互联网", "创业"),
        group="新媒体",
        sources=(HUXIU, MIRROR),
    ),
    _entry(
        "00000000-0000-4000-8000-000000000002",
        "Episode 42: enclosures",
        author="Jane Doe",
        published_at=_at(21, 12),
        updated_at=_at(21, 12),
        thumbnail="https://omni.example.com/art/42.png",
        categories=("Podcast",),
        enclosures=(
            Enclosure("https://omni.example.com/42.mp3", "audio/mpeg", 12345678),
            Enclosure("https://omni.example.com/42.ogg"),
        ),
        group="2021",  # looks like a number: must be quoted in YAML
        sources=(PODCAST,),
    ),
    _entry(
        "00000000-0000-4000-8000-000000000003",
        "He said \"don't\": 'quote' # not a comment",
        author="O'Brien & Sons",
        published_at=_at(20, 8, 30),
        updated_at=_at(21, 9),
        content_html=(
            "<p>Fish &amp; chips &lt;3 &quot;q&quot; &#169;</p><p>5 &lt; 6 &amp;&amp; 7</p>"
        ),
        summary="Fish & chips <3",
    ),
    _entry(
        "00000000-0000-4000-8000-000000000004",
        "Bell\x07 and\x0b tab\tcontrol",
        link=None,
        published_at=_at(19),
        updated_at=_at(19),
        content_html="",
    ),
)
CLEAN_TITLES = [
    entry.title.replace("\x07", "").replace("\x0b", "") for entry in ENTRIES
]  # the control characters are dropped from every output


def _parse(data: bytes) -> Any:
    result = feedparser.parse(BytesIO(data))
    assert not result.bozo, result.get("bozo_exception")
    return result


def _front_matter(post: bytes) -> dict[str, Any]:
    match = re.match(r"\n---\n(.*?\n)---\n", post.decode("utf-8"), re.DOTALL)
    assert match is not None, post[:200]
    loaded = yaml.safe_load(match.group(1))
    assert isinstance(loaded, dict)
    return loaded


def _jing(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(JING), "-c", str(ATOM_RNC), str(path)], capture_output=True, text=True, check=False
    )


# --- Atom ----------------------------------------------------------------------------------


def test_atom_round_trips_through_feedparser() -> None:
    parsed = _parse(render_atom(CHANNEL, ENTRIES))
    assert parsed.version == "atom10"
    assert parsed.feed.title == CHANNEL.title
    assert parsed.feed.id == "https://feeds.example.org/news.atom"
    assert parsed.feed.updated == "2021-03-22T06:00:00Z"
    assert [e.id for e in parsed.entries] == [e.uid for e in ENTRIES]
    assert [e.title for e in parsed.entries] == CLEAN_TITLES
    assert [e.get("link") for e in parsed.entries[:3]] == [e.link for e in ENTRIES[:3]]
    assert [e.published for e in parsed.entries] == [
        "2021-03-22T04:04:00Z",
        "2021-03-21T12:00:00Z",
        "2021-03-20T08:30:00Z",
        "2021-03-19T00:00:00Z",
    ]
    first, episode, quoted, bare = parsed.entries
    assert [t.term for t in first.tags] == ["工业互联网", "创业"]
    assert first.author == "虎嗅 - 首页资讯"  # no author: the primary source's title
    assert first.source.title == "虎嗅 - 首页资讯"
    assert first.source.id == "https://rss.huxiu.com/"
    assert first.summary == "工业互联网必须榜上有名。"
    assert [(x.href, x.get("type"), x.get("length")) for x in episode.enclosures] == [
        ("https://omni.example.com/42.mp3", "audio/mpeg", "12345678"),
        ("https://omni.example.com/42.ogg", "text/html", None),  # feedparser's default type
    ]
    assert episode.media_thumbnail == [{"url": "https://omni.example.com/art/42.png"}]
    assert episode.author == "Jane Doe"
    assert quoted.content[0].type == "text/html"
    assert "Fish &amp; chips &lt;3" in quoted.content[0].value
    assert not [link for link in bare.get("links", []) if link.rel == "alternate"]


def test_atom_keeps_the_schematron_rules_jing_ignores() -> None:
    """RFC 4287: every entry needs an author and a rel=alternate link or a content element."""
    data = render_atom(CHANNEL, ENTRIES)
    entries = data.split(b"<entry>")[1:]
    assert len(entries) == len(ENTRIES)
    for chunk in entries:
        assert b"<author>" in chunk
        assert b'rel="alternate"' in chunk or b'<content type="html"' in chunk


@pytest.mark.slow  # runs a subprocess
@pytest.mark.skipif(not JING.exists(), reason="/usr/bin/jing absent: apt-get install -y jing")
@pytest.mark.parametrize("entries", [ENTRIES, ()], ids=["entries", "empty"])
def test_atom_validates_against_rfc4287_schema(
    tmp_path: Path, entries: tuple[StoredEntry, ...]
) -> None:
    path = tmp_path / "news.atom"
    path.write_bytes(render_atom(CHANNEL, entries))
    result = _jing(path)
    errors = [line for line in result.stderr.splitlines() if "[warning]" not in line]
    assert result.returncode == 0, result.stdout + "\n".join(errors)


# --- RSS -----------------------------------------------------------------------------------


def test_rss_round_trips_through_feedparser() -> None:
    parsed = _parse(render_rss(CHANNEL, ENTRIES))
    assert parsed.version == "rss20"
    assert parsed.feed.title == CHANNEL.title
    assert parsed.feed.link == CHANNEL.base_url
    assert parsed.feed.subtitle == CHANNEL.subtitle
    assert [e.id for e in parsed.entries] == [e.uid for e in ENTRIES]
    assert not any(e.guidislink for e in parsed.entries)
    assert [e.title for e in parsed.entries] == CLEAN_TITLES
    assert [e.published for e in parsed.entries][:2] == [
        "Mon, 22 Mar 2021 04:04:00 GMT",
        "Sun, 21 Mar 2021 12:00:00 GMT",
    ]
    first, episode, quoted, _ = parsed.entries
    assert first.author == "虎嗅 - 首页资讯"
    assert first.source == {"href": "https://rss.huxiu.com/", "title": "虎嗅 - 首页资讯"}
    assert [t.term for t in first.tags] == ["工业互联网", "创业"]
    assert [(x.href, x.type, x.length) for x in episode.enclosures] == [
        ("https://omni.example.com/42.mp3", "audio/mpeg", "12345678")
    ]  # RSS carries one enclosure per item
    assert quoted.author == "O'Brien & Sons"
    assert "Fish &amp; chips &lt;3" in quoted.description


def test_rss_validates_against_the_rss2_xsd() -> None:
    """The XSD is unofficial and needs at least one item, so only the full feed is checked."""
    schema = etree.XMLSchema(etree.parse(str(RSS_XSD)))
    document = etree.fromstring(render_rss(CHANNEL, ENTRIES))
    assert schema.validate(document), schema.error_log


def test_rss_last_build_date_is_the_newest_update() -> None:
    assert b"<lastBuildDate>Mon, 22 Mar 2021 06:00:00 GMT</lastBuildDate>" in render_rss(
        CHANNEL, ENTRIES
    )


# --- JSON Feed -----------------------------------------------------------------------------


def test_jsonfeed_round_trips() -> None:
    data = render_jsonfeed(CHANNEL, ENTRIES)
    assert data.endswith(b"}\n")
    feed = json.loads(data)
    assert list(feed) == ["version", "title", "home_page_url", "feed_url", "description", "items"]
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["feed_url"] == "https://feeds.example.org/news.json"
    items = feed["items"]
    assert [i["id"] for i in items] == [e.uid for e in ENTRIES]
    assert [i["title"] for i in items] == CLEAN_TITLES
    assert [i.get("url") for i in items] == [e.link for e in ENTRIES]
    assert items[0]["date_published"] == "2021-03-22T04:04:00Z"
    assert items[0]["date_modified"] == "2021-03-22T06:00:00Z"
    assert items[0]["tags"] == ["工业互联网", "创业"]
    assert items[0]["authors"] == [{"name": "虎嗅 - 首页资讯"}]
    assert [s["id"] for s in items[0]["_aggregator"]["sources"]] == ["huxiu", "mirror"]
    assert items[1]["image"] == "https://omni.example.com/art/42.png"
    assert items[1]["attachments"] == [
        {
            "url": "https://omni.example.com/42.mp3",
            "mime_type": "audio/mpeg",
            "size_in_bytes": 12345678,
        },
        {"url": "https://omni.example.com/42.ogg", "mime_type": "application/octet-stream"},
    ]
    assert items[2]["content_html"] == ENTRIES[2].content_html
    assert "工业互联网" in data.decode("utf-8")  # ensure_ascii=False


# --- all formats -----------------------------------------------------------------------------


def test_empty_entry_list_renders_valid_documents() -> None:
    atom = _parse(render_atom(CHANNEL, ()))
    assert atom.entries == []
    assert atom.feed.updated == "1970-01-01T00:00:00Z"  # never the clock
    rss = render_rss(CHANNEL, ())
    assert _parse(rss).entries == []
    assert b"lastBuildDate" not in rss
    assert json.loads(render_jsonfeed(CHANNEL, ()))["items"] == []
    assert render_markdown(CHANNEL, ()) == {}


def test_bare_channel_and_sourceless_entry_fall_back_sensibly() -> None:
    channel = Channel(name="bare", title="Bare", base_url="https://x.example/")
    orphan = _entry("orphan", "Orphan", sources=())
    atom = _parse(render_atom(channel, [orphan]))
    assert "subtitle" not in atom.feed
    assert atom.entries[0].author == "Bare"  # Atom needs an author: the channel title
    assert "source" not in atom.entries[0]
    rss = _parse(render_rss(channel, [orphan]))
    assert rss.feed.subtitle == "Bare"  # <description> is required: the title
    feed = json.loads(render_jsonfeed(channel, [orphan]))
    assert "description" not in feed
    assert feed["items"][0]["_aggregator"] == {"sources": []}
    front = _front_matter(render_post(channel, orphan))
    assert front["author"] == "Bare"
    assert front["categories"] == ["Bare"]


def test_rendering_is_deterministic() -> None:
    copies = [dataclasses.replace(entry) for entry in ENTRIES]  # equal values, new objects
    for render in (render_atom, render_rss, render_jsonfeed):
        assert render(CHANNEL, ENTRIES) == render(CHANNEL, ENTRIES)
        assert render(CHANNEL, copies) == render(CHANNEL, ENTRIES)
    assert render_markdown(CHANNEL, copies) == render_markdown(CHANNEL, ENTRIES)


def test_output_does_not_depend_on_format_or_file_order(tmp_path: Path) -> None:
    one = render_output(CHANNEL, ENTRIES, FORMATS, tmp_path / "a")
    two = render_output(CHANNEL, ENTRIES, reversed(FORMATS), tmp_path / "b")
    assert one == two
    posts = render_markdown(CHANNEL, ENTRIES)
    backwards = dict(reversed(posts.items()))
    assert sync_dir(tmp_path / "c", backwards) == sync_dir(tmp_path / "d", posts)
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")


@pytest.mark.parametrize("fmt", FORMATS)
def test_golden_bytes(fmt: str) -> None:
    expected = _tree(GOLDEN_DIR)
    if fmt == "markdown":
        actual = {
            f"markdown/news/{name}": data
            for name, data in render_markdown(CHANNEL, ENTRIES).items()
        }
        expected = {k: v for k, v in expected.items() if k.startswith("markdown/")}
        assert actual == expected, REGEN_HINT
        return
    render = {"atom": render_atom, "rss": render_rss, "json": render_jsonfeed}[fmt]
    name = {"atom": "news.atom", "rss": "news.rss", "json": "news.json"}[fmt]
    assert render(CHANNEL, ENTRIES) == expected.get(name), REGEN_HINT


def _tree(directory: Path) -> dict[str, bytes]:
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


# --- Markdown (Hexo) -------------------------------------------------------------------------


def _seed_entry(*, thumbnail: str | None) -> StoredEntry:
    content = SEED.read_text(encoding="utf-8").split("\n")[13].removesuffix("  ")
    return _entry(
        "seed",
        SEED_TITLE,
        published_at=_at(22, 4, 4),
        updated_at=_at(22, 4, 4),
        content_html=content,
        thumbnail=thumbnail,
        group="新媒体",
        sources=(HUXIU,),
    )


@pytest.mark.parametrize("thumbnail", ["given", "from-content"])
def test_markdown_reproduces_the_seed_byte_for_byte(thumbnail: str) -> None:
    seed = SEED.read_bytes()
    thumb = _front_matter(seed)["thumbnail"] if thumbnail == "given" else None
    assert render_post(CHANNEL, _seed_entry(thumbnail=thumb)) == seed


def test_markdown_front_matter_matches_the_seed_values_and_key_order() -> None:
    expected = _front_matter(SEED.read_bytes())
    actual = _front_matter(render_post(CHANNEL, _seed_entry(thumbnail=None)))
    assert actual == expected
    assert list(actual) == ["title", "categories", "author", "comments", "date", "thumbnail"]
    assert list(actual) == list(expected)


def _shape(line: str) -> str:
    """A line with its values masked: keeps keys, quoting, indentation and trailing spaces."""
    line = re.sub(r"'(?:[^']|'')*'", "'…'", line)
    return re.sub(r"(: |- )[^' ].*$", r"\1…", line)


def test_markdown_has_the_seed_shape_line_by_line() -> None:
    seed = SEED.read_text(encoding="utf-8").split("\n")
    post = render_post(CHANNEL, ENTRIES[0]).decode("utf-8").split("\n")
    assert [_shape(line) for line in post[:8]] == [_shape(line) for line in seed[:8]]
    assert seed[:2] == post[:2] == ["", "---"]
    assert post[3] == "categories: "
    assert post[-4:-2] == ["<div>   ", ENTRIES[0].content_html + "  "]
    assert post[-2:] == seed[-2:] == ["</div>", " " * 12]


def test_markdown_front_matter_round_trips_every_entry() -> None:
    posts = render_markdown(CHANNEL, ENTRIES)
    assert list(posts) == [post_name(e) for e in ENTRIES]
    for entry, title in zip(ENTRIES, CLEAN_TITLES, strict=True):
        front = _front_matter(posts[post_name(entry)])
        group = [entry.group] if entry.group else []
        assert front["title"] == title
        assert front["categories"] == [*group, entry.sources[0].source_title]
        assert front["author"] == entry.sources[0].source_title
        assert front["comments"] is False
    assert _front_matter(posts[post_name(ENTRIES[0])])["thumbnail"] == (
        "https://img.example.cn/a.jpg?w=1&h=2"  # the first <img>, entities decoded
    )
    assert _front_matter(posts[post_name(ENTRIES[1])])["thumbnail"] == ENTRIES[1].thumbnail
    assert "thumbnail" not in _front_matter(posts[post_name(ENTRIES[2])])


TRICKY = [
    "true", "no", "null", "~", "1.5", "0x1F", "2021-03-22", "a: b", "a #b", "a:", "- x", "[x",
    "{x", "'q'", '"q"', "&anchor", "*alias", "!tag", "|", ">", "%pct", "@at", "`tick", "?q",
    "  lead", "trail ", "multi\nline", "tab\there", "nel\x85x", "c1\x9fx", "ls\u2028x",
    "bom\ufeffx", "back\\slash", "---", "...", "",
]  # fmt: skip


@pytest.mark.parametrize("value", TRICKY)
def test_markdown_yaml_values_load_back_exactly(value: str) -> None:
    source = Provenance("s", value, "https://s.example/feed", None, None, None)
    entry = _entry("tricky", value, group=value or None, sources=(source,), thumbnail=value)
    front = _front_matter(render_post(CHANNEL, entry))
    assert front["title"] == value
    assert front["author"] == value
    assert front["categories"] == ([value, value] if value else [value])
    assert front.get("thumbnail", "") == value


def test_markdown_file_names_are_date_and_uid_hash() -> None:
    name = post_name(ENTRIES[0])
    assert re.fullmatch(r"2021-03-22-[0-9a-f]{12}\.md", name)
    assert len({post_name(e) for e in ENTRIES}) == len(ENTRIES)


def test_first_image_skips_lazy_loading_attributes() -> None:
    html = '<img class="lazy" _src="a.jpg" data-src="b.jpg" src="c.jpg?x=1&amp;y=2"><img src=d>'
    assert first_image(html) == "c.jpg?x=1&y=2"
    assert first_image("<p>no image</p>") is None


# --- writing -------------------------------------------------------------------------------


def _temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_write_atomic_writes_skips_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "news.atom"
    assert write_atomic(path, b"one") is True
    assert path.read_bytes() == b"one"
    assert path.stat().st_mode & 0o777 == 0o644
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert write_atomic(path, b"one") is False
    assert path.stat().st_mtime_ns == 1_000_000_000  # untouched
    path.chmod(0o640)
    assert write_atomic(path, b"two") is True
    assert path.read_bytes() == b"two"
    assert path.stat().st_mode & 0o777 == 0o640  # the existing mode is kept
    assert _temp_files(tmp_path) == []


def test_write_atomic_failure_keeps_the_original(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "news.rss"
    path.write_bytes(b"original")

    def fail(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(RenderError, match=r"news\.rss"):
        write_atomic(path, b"new bytes")
    assert path.read_bytes() == b"original"
    assert list(tmp_path.iterdir()) == [path]


def test_write_atomic_into_a_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(RenderError):
        write_atomic(tmp_path / "missing" / "news.json", b"{}")


def test_write_files_writes_skips_and_replaces_like_write_atomic_one_by_one(
    tmp_path: Path,
) -> None:
    """A batch (issue #16: one directory fsync, not one per file) ends as the same files, modes
    and mtimes as ``write_atomic`` file by file."""
    batch, single = tmp_path / "batch", tmp_path / "single"
    for out in (batch, single):
        (out / "a").mkdir(parents=True)
        (out / "a" / "same.atom").write_bytes(b"same")
        (out / "a" / "old.atom").write_bytes(b"old")
        (out / "a" / "old.atom").chmod(0o640)
        os.utime(out / "a" / "same.atom", ns=(1_000_000_000, 1_000_000_000))
    files = {"a/old.atom": b"new", "a/same.atom": b"same", "b/c/fresh.atom": b"fresh"}
    assert write_files(batch, files) == (["a/old.atom", "b/c/fresh.atom"], ["a/same.atom"])
    done = [write_file(single, rel, data) for rel, data in files.items()]
    assert done == [True, False, True]

    def state(out: Path) -> dict[str, tuple[bytes, int, int | None]]:
        return {
            str(p.relative_to(out)): (
                p.read_bytes(),
                p.stat().st_mode & 0o777,
                p.stat().st_mtime_ns if p.name == "same.atom" else None,
            )
            for p in out.rglob("*") if p.is_file()
        }  # fmt: skip

    assert state(batch) == state(single)
    assert state(batch)["a/old.atom"][1] == 0o640  # the existing mode is kept
    assert state(batch)["a/same.atom"][2] == 1_000_000_000  # untouched
    assert [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")] == []
    with pytest.raises(RenderError):
        write_files(batch, {"../escape.atom": b"x"})


def test_write_files_failure_leaves_every_file_old_or_new_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("1", "2", "3"):
        (tmp_path / f"{name}.atom").write_bytes(b"old " + name.encode())
    real, calls = os.replace, []

    def second_fails(src: str, dst: str) -> None:
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(RenderError, match="No space left"):
        write_files(tmp_path, {f"{n}.atom": b"new " + n.encode() for n in ("1", "2", "3")})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {
        "1.atom": b"new 1", "2.atom": b"old 2", "3.atom": b"old 3",
    }  # fmt: skip


def test_sync_dir_removes_stale_posts_only(tmp_path: Path) -> None:
    directory = tmp_path / "markdown" / "news"
    assert sync_dir(directory, {"a.md": b"A", "b.md": b"B"}) == (2, 0, 0)
    (directory / "notes.txt").write_bytes(b"keep")
    (directory / "sub.md").mkdir()
    assert sync_dir(directory, {"a.md": b"A2"}) == (1, 0, 1)
    assert sorted(p.name for p in directory.iterdir()) == ["a.md", "notes.txt", "sub.md"]
    assert sync_dir(directory, {"a.md": b"A2"}) == (0, 1, 0)
    with pytest.raises(RenderError):
        sync_dir(directory, {"../escape.md": b"x"})


def test_render_output_writes_every_format_then_nothing(tmp_path: Path) -> None:
    posts = sorted(f"markdown/news/{name}" for name in render_markdown(CHANNEL, ENTRIES))
    first = render_output(CHANNEL, ENTRIES, FORMATS, tmp_path)
    assert first == RenderReport(
        written=("news.atom", "news.rss", "news.json", *posts), unchanged=(), removed=0
    )
    second = render_output(CHANNEL, ENTRIES, FORMATS, tmp_path)
    assert second == RenderReport(written=(), unchanged=first.written, removed=0)
    third = render_output(CHANNEL, ENTRIES[:1], ["markdown"], tmp_path)
    assert third.removed == len(ENTRIES) - 1
    assert third.unchanged == (f"markdown/news/{post_name(ENTRIES[0])}",)


def test_render_output_refuses_unknown_formats_and_bad_names(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="pdf"):
        render_output(CHANNEL, ENTRIES, ["atom", "pdf"], tmp_path)
    bad = Channel(name="../up", title="t", base_url="https://x/")
    with pytest.raises(RenderError):
        render_output(bad, ENTRIES, ["atom"], tmp_path)


def test_golden_directory_matches_render_output(tmp_path: Path) -> None:
    render_output(CHANNEL, ENTRIES, FORMATS, tmp_path)
    assert _tree(tmp_path) == _tree(GOLDEN_DIR), REGEN_HINT
