"""Nothing stored since the last render: `once` (and a restarted daemon) render nothing; any
change that outputs would show, a config edit, a new renderer or a missing file renders again
(issue #16). The content generation moves only with such changes."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator import renderstamp
from aggregator.cli import main
from aggregator.config import load_config
from aggregator.renderstamp import STAMP, all_files, is_current
from aggregator.store import open_store
from aggregator.types import PrunePolicy

from .conftest import ROOT

FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
EVERYTHING = PrunePolicy(now=FUTURE, keep_after=FUTURE, max_entries=None, tombstones_after=FUTURE)


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "seeds", tmp_path / "seeds")
    shutil.copytree(ROOT / "config", tmp_path / "config")
    return tmp_path / "config" / "aggregator.toml"


def once(cfg: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert main(["-c", str(cfg), "--log-level", "ERROR", "once", "--offline", *extra]) in (0, 1)
    return capsys.readouterr().out.strip().splitlines()[-1]


def mtimes(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


def test_a_second_once_with_nothing_new_renders_nothing(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = once(cfg, capsys)
    assert "131 written" in first
    out = load_config(cfg).output.dir
    before = mtimes(out)
    assert STAMP in before
    second = once(cfg, capsys, "--force")  # every source polled again, nothing new
    assert second.endswith("entries: 0 new, 0 updated, 0 duplicate; outputs: up to date "
                           "(nothing rendered)")  # fmt: skip
    assert mtimes(out) == before  # not even the stamp was touched


def test_a_missing_output_file_is_rendered_again(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    once(cfg, capsys)
    out = load_config(cfg).output.dir
    (out / "all.atom").unlink()
    assert "0 written" not in (last := once(cfg, capsys, "--force")) and "written" in last
    assert (out / "all.atom").is_file()


def test_a_missing_page_in_a_subdirectory_is_rendered_again(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    once(cfg, capsys)
    out = load_config(cfg).output.dir
    page = min(p for p in mtimes(out) if p.count("/") >= 2)  # an archive page, a post
    (out / page).unlink()
    assert "0 written" not in (last := once(cfg, capsys, "--force")) and "written" in last
    assert (out / page).is_file()


def test_a_config_edit_renders_again(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    once(cfg, capsys)
    cfg.write_text(cfg.read_text() + "\n# an edit\n", encoding="utf-8")
    assert "unchanged" in once(cfg, capsys, "--force")  # rendered (and found unchanged)


def test_a_changed_renderer_renders_again(
    cfg: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    once(cfg, capsys)
    monkeypatch.setattr(renderstamp, "renderer_id", lambda: "a newer renderer")
    assert "unchanged" in once(cfg, capsys, "--force")


def test_a_stored_change_renders_again_and_a_crash_mid_render_leaves_no_stamp(
    cfg: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    once(cfg, capsys)
    config = load_config(cfg)
    store = open_store(config.storage.url)
    try:
        generation = store.content_generation()
        assert is_current(config, generation)
        with store.transaction() as tx:  # retention that deletes something changes outputs
            report = tx.prune(EVERYTHING)
        assert report.items > 0
        assert store.content_generation() == generation + 1
        assert not is_current(config, store.content_generation())

        def crash(*args: object, **kwargs: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr("aggregator.scheduler.render_outputs", crash)
        assert "0 written" in once(cfg, capsys, "--force")  # the render failed ...
        assert not (config.output.dir / STAMP).exists()  # ... and vouches for nothing
    finally:
        store.close()


def test_bookkeeping_and_dry_runs_do_not_move_the_generation(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    once(cfg, capsys)
    config = load_config(cfg)
    store = open_store(config.storage.url)
    try:
        generation = store.content_generation()
        assert generation > 0
        once(cfg, capsys, "--force")  # every poll unchanged: bookkeeping only
        with store.transaction() as tx:
            assert tx.prune(EVERYTHING, dry_run=True).items > 0
        assert store.content_generation() == generation
        with store.transaction() as tx:
            assert tx.remove_sources(["huxiu"]) > 0
        assert store.content_generation() == generation + 1
    finally:
        store.close()


def test_the_stamp_lists_what_was_rendered_and_is_never_served(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    once(cfg, capsys)
    out = load_config(cfg).output.dir
    stamp = json.loads((out / STAMP).read_bytes())
    assert "all.atom" in stamp["files"] and "index.html" in stamp["files"]
    from aggregator.httpfiles import resolve_inside

    assert resolve_inside(out, f"/{STAMP}") is None


# Paths a stamp might list: files, directories, symlinks (to a file, a directory, nothing),
# nested or not, and odd names (a trailing slash, dots, a NUL, an absolute path).
_TREE_FILES = ("all.atom", "all.rss", "archive/all/1.atom", "archive/all/2.atom", "posts/a.md")
_NAMES = (*_TREE_FILES, "archive/all/3.atom", "archive", "archive/all", "archive/all/",
          "link-file", "link-dir", "link-none", "archive/./all/1.atom", "archive/all/../all/2.atom",
          "", ".", "..", "nul\0.atom", "archive\0/1.atom", "all.atom/x", "/etc/hostname",
          "missing/1.atom")  # fmt: skip


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out")
    for name in _TREE_FILES:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(b"x")
    (out / "link-file").symlink_to(out / "all.atom")
    (out / "link-dir").symlink_to(out / "archive")
    (out / "link-none").symlink_to(out / "gone")
    return out


@settings(max_examples=300, deadline=None)
@given(names=st.lists(st.sampled_from(_NAMES) | st.integers(), max_size=6))
def test_all_files_answers_as_a_stat_of_each_file(tree: Path, names: list[object]) -> None:
    """``all_files`` (a listing a directory) is the plain ``is_file`` of each name."""

    def plain() -> bool:
        return all(isinstance(n, str) and (tree / n).is_file() for n in names)

    assert all_files(tree, names) == plain()
