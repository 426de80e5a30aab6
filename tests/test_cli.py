"""The command-line contract: check, once [--offline], render, sources; exit codes; summary."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aggregator.cli import main

from .conftest import ROOT


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "seeds", tmp_path / "seeds")
    shutil.copytree(ROOT / "config", tmp_path / "config")
    return tmp_path / "config" / "aggregator.toml"


def test_check_ok(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", str(cfg), "check"]) == 0
    assert "ok (16 sources, 16 enabled; outputs: all)" in capsys.readouterr().out


def test_check_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[output]\nlimit = -1\ncolor = 1\n[[sources]]\nid = "x"\nurl = "gopher://x"\n')
    assert main(["-c", str(bad), "check"]) == 2
    err = capsys.readouterr().err
    assert "invalid configuration (3 problems)" in err
    for key in ("output.limit", "output.color", "sources[0].url"):
        assert key in err


def test_config_from_environment(
    cfg: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AGGREGATOR_CONFIG", str(cfg))
    assert main(["check"]) == 0
    assert str(cfg) in capsys.readouterr().out


def test_once_offline_then_sources_and_render(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-c", str(cfg), "--log-level", "WARNING", "once", "--offline"]) == 0
    captured = capsys.readouterr()
    last = captured.out.strip().splitlines()[-1]
    assert last.startswith("sources: 15 ok, 1 failed; entries: ")
    assert "reuters-broken" in captured.err
    assert main(["-c", str(cfg), "sources"]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith("reuters-broken"))
    assert "failed" in row and "https://www.reuters.com/rssFeed/mostRead" in row
    errors = table.split("Last errors:")[1]
    assert "reuters-broken: not a readable feed" in errors
    huxiu = next(line for line in table.splitlines() if line.startswith("huxiu "))
    assert " ok " in huxiu
    assert main(["-c", str(cfg), "render"]) == 0
    assert capsys.readouterr().out.strip() == "outputs: 0 written, 131 unchanged"  # pages: #13


def test_broken_storage_fails_the_run(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = cfg.read_text().replace(
        'url = "sqlite:///../state/aggregator.db"', 'url = "nosuchdb://x/y"'
    )
    cfg.write_text(text)
    assert main(["-c", str(cfg), "once", "--offline"]) == 1
    assert "error: cannot open database" in capsys.readouterr().err


@pytest.mark.slow
def test_python_dash_m_is_the_console_script(cfg: Path) -> None:
    env = {**os.environ, "AGGREGATOR_CONFIG": str(cfg)}
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "check"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    script = Path(sys.executable).parent / "aggregator"
    if script.exists():
        done2 = subprocess.run([str(script), "check"], capture_output=True, text=True, env=env)
        assert done2.stdout == done.stdout


def test_workers_re_importing_the_console_script_do_not_load_the_cli() -> None:
    """multiprocessing starts each parse worker by running the main module again (as
    ``__mp_main__``): for the ``aggregator`` script that must stay light, not pull in the
    whole CLI (SQLAlchemy, aiohttp ...) into every worker."""
    script = Path(sys.executable).with_name("aggregator")
    if not script.exists():
        pytest.skip(f"console script not installed next to {sys.executable} (pip install -e .)")
    probe = (
        "import runpy, sys\n"
        f"runpy.run_path({str(script)!r}, run_name='__mp_main__')\n"
        "heavy = [m for m in ('aggregator.cli', 'sqlalchemy', 'aiohttp') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    ran = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert ran.stdout.strip()  # and the script itself still runs the CLI


def test_log_level_from_the_config_and_the_flag_wins(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """[log] level quiets the poll lines; --log-level overrides it (issue #16)."""
    import logging

    root = logging.getLogger()
    before = root.level
    try:
        cfg.write_text(cfg.read_text(encoding="utf-8") + '\n[log]\nlevel = "warning"\n',
                       encoding="utf-8")  # fmt: skip
        assert main(["-c", str(cfg), "once", "--offline"]) in (0, 1)
        assert root.level == logging.WARNING
        err = capsys.readouterr().err
        assert "poll source=" not in err and "reuters-broken" in err  # failures still show
        assert main(["-c", str(cfg), "--log-level", "DEBUG", "check"]) == 0
        assert root.level == logging.DEBUG
    finally:
        root.setLevel(before)


def test_a_bad_log_level_is_named(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg.write_text(cfg.read_text(encoding="utf-8") + '\n[log]\nlevel = "loud"\ncolour = 1\n',
                   encoding="utf-8")  # fmt: skip
    assert main(["-c", str(cfg), "check"]) == 2
    err = capsys.readouterr().err
    assert "log.level: must be one of DEBUG, INFO, WARNING, ERROR" in err
    assert "log.colour" in err


def test_a_reload_applies_the_new_log_level_unless_the_flag_set_it(cfg: Path) -> None:
    import logging

    from aggregator.config import load_config
    from aggregator.daemon import Daemon
    from aggregator.metrics import Metrics
    from aggregator.store import open_store
    from aggregator.systemd import Notifier

    text = cfg.read_text(encoding="utf-8").replace("[server]\n", "[server]\nenabled = false\n")
    cfg.write_text(text, encoding="utf-8")
    root = logging.getLogger()
    before = root.level
    config = load_config(cfg)
    store = open_store(config.storage.url)
    try:
        for follow, want in ((True, logging.ERROR), (False, logging.INFO)):
            root.setLevel(logging.INFO)
            cfg.write_text(text, encoding="utf-8")
            daemon = Daemon(config, store, Metrics(), Notifier(env={}), offline=True,
                            follow_log_level=follow)  # fmt: skip
            daemon.start()
            try:
                cfg.write_text(text + '\n[log]\nlevel = "error"\n', encoding="utf-8")
                daemon.reload()
                assert root.level == want
            finally:
                daemon.stop()
                daemon.scheduler.close()
    finally:
        store.close()
        root.setLevel(before)
