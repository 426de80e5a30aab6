"""A CLI that answers at once (issue #12): what each command imports, and a migration check
that costs one query instead of Alembic."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory

from aggregator.cli import main
from aggregator.store import open_store
from aggregator.store.engine import MIGRATIONS, make_engine, migrate, schema_revisions
from aggregator.store.peek import peek_source_states
from aggregator.store.revision import HEAD_REVISION

from .conftest import ROOT

HEAVY = ("sqlalchemy", "alembic", "aiohttp", "httpx")


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "seeds", tmp_path / "seeds")
    shutil.copytree(ROOT / "config", tmp_path / "config")
    return tmp_path / "config" / "aggregator.toml"


def imported_by(*argv: str) -> list[str]:
    """The heavy modules a fresh interpreter has loaded after running the CLI with ``argv``."""
    probe = (
        "import sys\n"
        "from aggregator.cli import main\n"
        "try:\n"
        f"    main({list(argv)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return eval_list(done.stdout)


def eval_list(out: str) -> list[str]:
    value = ast.literal_eval(out.strip().splitlines()[-1])
    assert isinstance(value, list)
    return [str(v) for v in value]


@pytest.mark.slow  # subprocesses
def test_help_and_check_import_no_database_or_http_library(cfg: Path) -> None:
    assert imported_by("--help") == []
    assert imported_by("-c", str(cfg), "check") == []
    assert imported_by("-c", str(cfg), "sources", "add", "https://x.example/f", "--no-fetch") == []


@pytest.mark.slow
def test_listing_sources_of_a_current_sqlite_database_skips_sqlalchemy(cfg: Path) -> None:
    assert main(["-c", str(cfg), "--log-level", "ERROR", "once", "--offline"]) == 0
    assert imported_by("-c", str(cfg), "sources", "list") == []
    assert imported_by("-c", str(cfg), "sources", "show", "huxiu", "--json") == []


@pytest.mark.slow
def test_opening_a_current_database_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    open_store(url).close()  # creates and migrates it (Alembic)
    probe = (
        "import sys\n"
        "from aggregator.store import open_store\n"
        f"open_store({url!r}).close()\n"
        "print(sorted(m for m in ('alembic',) if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert eval_list(done.stdout) == []


def test_head_revision_is_the_newest_migration() -> None:
    """A new migration must bump ``HEAD_REVISION`` (else a database would not be upgraded)."""
    revisions: dict[str, str | None] = {}
    for script in (MIGRATIONS / "versions").glob("*.py"):
        values = {}
        for node in ast.parse(script.read_text(encoding="utf-8")).body:
            if not isinstance(node, ast.Assign) or not isinstance(node.targets[0], ast.Name):
                continue
            if node.targets[0].id in ("revision", "down_revision"):
                values[node.targets[0].id] = ast.literal_eval(node.value)
        revisions[values["revision"]] = values["down_revision"]
    heads = set(revisions) - set(revisions.values())
    assert heads == {HEAD_REVISION}
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_heads() == [HEAD_REVISION]


def test_an_old_database_is_still_migrated(tmp_path: Path) -> None:
    from alembic import command

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "0002")
        assert schema_revisions(engine) == ("0002",)
        assert peek_source_states(str(engine.url)) is None  # not current: the plain path
        migrate(engine)
        assert schema_revisions(engine) == (HEAD_REVISION,)
    finally:
        engine.dispose()


def test_the_peek_reads_what_the_store_reads(cfg: Path, tmp_path: Path) -> None:
    assert main(["-c", str(cfg), "--log-level", "ERROR", "once", "--offline"]) == 0
    url = f"sqlite:///{cfg.parent.parent / 'state' / 'aggregator.db'}"
    store = open_store(url)
    try:
        plain = store.source_states()
    finally:
        store.close()
    assert len(plain) == 16
    assert peek_source_states(url) == plain
    assert peek_source_states(f"sqlite:///{tmp_path / 'none.db'}") == ()  # nothing stored yet
    assert not (tmp_path / "none.db").exists()
    for other in ("sqlite://", "sqlite:///:memory:", "postgresql+psycopg://u@h/db"):
        assert peek_source_states(other) is None
