"""Editing the config in place: comments and order survive, the file stays valid, concurrent
edits all land or fail cleanly, a failed write changes nothing (issue #12)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aggregator import configedit
from aggregator.config import load_config
from aggregator.configedit import (
    EditError,
    add_sources,
    derive_id,
    host_slug,
    remove_source,
    slugify,
    unique_id,
)

# A config the way people keep theirs: comments everywhere, sections in their own order.
COMMENTED = """\
# My aggregator. Comments like this one must survive every edit.

[storage]
url = "sqlite:///state/agg.db"   # next to this file

[poll]
interval = "30m"  # be polite

# -- sources --------------------------------------------------------------------------------
# Tech first.
[[sources]]
id = "alpha"        # the first one
url = "https://alpha.example/feed.xml"
group = "tech"

# -- news --
[[sources]]
# a comment inside a table
id = "bravo"
url = "https://bravo.example/rss"
group = "news"
title = "Bravo News"

[[sources]]
id = "charlie"
url = "https://charlie.example/atom.xml"   # trailing comment
group = "news"

# -- outputs ----------------------------------------------------------------------------------
[[outputs]]
name = "news"   # only the news group
groups = ["news"]

# the end
"""


def comment_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.lstrip().startswith("#")]


def ids(path: Path) -> list[str]:
    return [s["id"] for s in tomllib.loads(path.read_text()).get("sources", [])]


def adding(*tables: dict[str, Any]) -> configedit.Plan:
    return lambda existing: list(tables)


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "aggregator.toml"
    path.write_text(COMMENTED, encoding="utf-8")
    return path


def test_a_commented_config_edited_several_times_keeps_comments_order_and_validity(
    cfg: Path,
) -> None:
    original = comment_lines(COMMENTED)
    echo = {
        "id": "echo",
        "url": "https://echo.example/f",
        "group": "news",
        "title": "Écho « 新闻 »",
    }
    steps: list[Callable[[], object]] = [
        lambda: add_sources(cfg, adding({"id": "delta", "url": "https://delta.example/f"})),
        lambda: remove_source(cfg, "bravo"),
        lambda: add_sources(cfg, adding(echo)),
        lambda: remove_source(cfg, "alpha"),
        lambda: add_sources(cfg, adding({"id": "foxtrot", "url": "https://f.example/"})),
        lambda: remove_source(cfg, "delta"),
    ]
    for step in steps:
        step()
        text = cfg.read_text(encoding="utf-8")
        load_config(cfg)  # valid, by the same checks as `aggregator check`
        kept = [c for c in comment_lines(text) if c in original]
        assert kept == [c for c in original if c in kept]  # in their original order
    text = cfg.read_text(encoding="utf-8")
    lost = set(comment_lines(COMMENTED)) - set(comment_lines(text))
    # Only the comments written inside removed tables go with them.
    assert lost == {"# a comment inside a table"}
    assert ids(cfg) == ["charlie", "echo", "foxtrot"]
    assert text.startswith(COMMENTED[: COMMENTED.index("[[sources]]")])  # untouched above
    assert text.endswith(COMMENTED[COMMENTED.index("\n# -- outputs") :])  # and below
    assert 'title = "Écho « 新闻 »"' in text  # written as text, not escaped
    assert "\n\n\n" not in text


def test_add_goes_after_the_last_source_not_after_the_next_sections_comment(cfg: Path) -> None:
    add_sources(cfg, adding({"id": "delta", "url": "https://delta.example/f"}))
    text = cfg.read_text()
    assert text.index('id = "delta"') < text.index("# -- outputs")
    assert '# trailing comment\ngroup = "news"\n\n[[sources]]\nid = "delta"\n' in text


def test_removing_keeps_the_comment_above_that_belongs_to_the_next_table(cfg: Path) -> None:
    remove_source(cfg, "alpha")
    text = cfg.read_text()
    assert "# Tech first.\n" in text and "# -- news --\n[[sources]]\n" in text
    assert "the first one" not in text


def test_removing_the_last_source_leaves_a_valid_config(tmp_path: Path) -> None:
    path = tmp_path / "one.toml"
    path.write_text('# head\n[[sources]]\nid = "a"\nurl = "https://a.example/"\n# tail\n')
    remove_source(path, "a")
    assert path.read_text() == "# head\n# tail\n"
    assert load_config(path).sources == ()


def test_add_to_a_config_without_sources(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text('[poll]\ninterval = "1h"\n')
    add_sources(path, adding({"id": "a", "url": "https://a.example/"}))
    assert (
        path.read_text()
        == '[poll]\ninterval = "1h"\n\n[[sources]]\nid = "a"\nurl = "https://a.example/"\n'
    )


def test_an_edit_that_would_make_the_config_invalid_writes_nothing(cfg: Path) -> None:
    with pytest.raises(EditError, match=r"not changed: .*sources\[3\]\.url: must be an http"):
        add_sources(cfg, adding({"id": "bad", "url": "ftp://x.example/"}))
    with pytest.raises(EditError, match=r"outputs.*no source has group 'news'"):
        for source_id in ("bravo", "charlie"):
            remove_source(cfg, source_id)
    assert ids(cfg) == ["alpha", "charlie"]  # bravo went; charlie, the last of "news", stayed
    with pytest.raises(EditError, match="no source with id 'zulu'"):
        remove_source(cfg, "zulu")


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(
    cfg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", crash)
    with pytest.raises(OSError, match="No space left"):
        add_sources(cfg, adding({"id": "delta", "url": "https://delta.example/f"}))
    assert cfg.read_text() == COMMENTED
    assert sorted(p.name for p in cfg.parent.iterdir()) == [
        "aggregator.toml",
        "aggregator.toml.lock",
    ]


def test_a_directory_that_cannot_be_written_says_what_to_do(
    cfg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", denied)
    with pytest.raises(EditError, match=r"cannot write it: Permission denied \(edit as the config"):
        add_sources(cfg, adding({"id": "delta", "url": "https://delta.example/f"}))
    assert cfg.read_text() == COMMENTED


def test_the_file_keeps_its_mode_and_a_symlink_stays_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "etc" / "aggregator.toml"
    real.parent.mkdir()
    real.write_text(COMMENTED)
    real.chmod(0o640)
    link = tmp_path / "link.toml"
    link.symlink_to(real)
    add_sources(link, adding({"id": "delta", "url": "https://delta.example/f"}))
    assert link.is_symlink() and "delta" in ids(real)
    assert real.stat().st_mode & 0o777 == 0o640


def test_windows_line_endings_stay(tmp_path: Path) -> None:
    path = tmp_path / "crlf.toml"
    path.write_bytes(COMMENTED.replace("\n", "\r\n").encode())
    add_sources(path, adding({"id": "delta", "url": "https://delta.example/f"}))
    remove_source(path, "alpha")
    data = path.read_bytes()
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert ids(path) == ["bravo", "charlie", "delta"]


def test_a_layout_tomlkit_cannot_keep_is_refused_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "split.toml"
    text = (
        '[[sources]]\nid = "a"\nurl = "https://a.example/"\n\n'
        '[[outputs]]\nname = "all"\n\n'
        '[[sources]]\nid = "b"\nurl = "https://b.example/"\n'
    )
    path.write_text(text)
    with pytest.raises(EditError, match="cannot edit it without changing its layout"):
        add_sources(path, adding({"id": "c", "url": "https://c.example/"}))
    assert path.read_text() == text


def test_an_edit_waiting_too_long_for_the_lock_fails_cleanly(
    cfg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(configedit, "LOCK_TIMEOUT_S", 0.0)
    with configedit._locked(cfg), pytest.raises(EditError, match="another edit has held"):
        add_sources(cfg, adding({"id": "delta", "url": "https://delta.example/f"}))
    assert cfg.read_text() == COMMENTED


ADDER = """
import sys
from aggregator.cli import main
path, who = sys.argv[1], sys.argv[2]
codes = [main(["-c", path, "--log-level", "ERROR", "sources", "add", "--no-fetch",
               f"https://{who}{i}.example/feed"]) for i in range(8)]
codes.append(main(["-c", path, "--log-level", "ERROR", "sources", "add", "--no-fetch",
                   "https://same.example/feed"]))
print(codes)
"""


@pytest.mark.slow  # subprocesses
def test_two_processes_adding_at_once_all_land_and_the_file_is_never_corrupt(cfg: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ADDER, str(cfg), who],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("left", "right")
    ]
    results = [p.communicate(timeout=120) for p in procs]
    codes = [eval_codes(out) for out, _ in results]
    for (_, err), proc in zip(results, procs, strict=True):
        assert proc.returncode == 0, err
    assert [c[:8] for c in codes] == [[0] * 8, [0] * 8]  # every distinct source landed
    assert sorted(c[8] for c in codes) == [0, 2]  # the same URL twice: one adds, one refuses
    config = load_config(cfg)
    urls = [s.url for s in config.sources]
    assert urls.count("https://same.example/feed") == 1
    for who in ("left", "right"):
        assert all(f"https://{who}{i}.example/feed" in urls for i in range(8))
    assert len(config.sources) == 3 + 17
    assert comment_lines(cfg.read_text()) == comment_lines(COMMENTED)


def eval_codes(out: str) -> list[int]:
    """The exit codes the adder printed last."""
    return [int(x) for x in out.strip().splitlines()[-1].strip("[]").split(",")]


def test_ids_from_titles_and_hosts() -> None:
    assert slugify("Daring Fireball") == "daring-fireball"
    assert slugify("Café Olé! — Ça va?") == "cafe-ole-ca-va"
    assert slugify("虎嗅网") == ""
    assert host_slug("https://www.ruanyifeng.com/blog/atom.xml") == "ruanyifeng"
    assert host_slug("https://feeds.bbci.co.uk/news/rss.xml") == "feeds-bbci-co"
    assert host_slug("http://127.0.0.1:8080/feed") == "127-0-0-1"
    assert unique_id("blog", ["blog", "blog-2"]) == "blog-3"
    assert derive_id("虎嗅网", "https://www.huxiu.com/rss/0.xml", ["huxiu"]) == "huxiu-2"
    assert derive_id(None, "https://example.org/", []) == "example"
    long = derive_id("x" * 100, "https://e.org/", ["x" * 48])
    assert len(long) <= 48 and long.endswith("-2")


def test_the_lock_file_is_beside_the_config(cfg: Path) -> None:
    add_sources(cfg, adding({"id": "delta", "url": "https://delta.example/f"}))
    lock = cfg.with_name("aggregator.toml.lock")
    assert lock.exists() and os.stat(lock).st_size == 0
