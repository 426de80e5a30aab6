"""Golden outputs of a small offline config; `python -m tests.golden_pipeline` regenerates them.

Review the diff of tests/data/golden/ before committing regenerated files.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from aggregator.config import load_config
from aggregator.scheduler import run_once
from aggregator.store import open_store

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "data" / "golden"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CONFIG = """
[storage]
url = "sqlite:///state/golden.db"
[output]
dir = "public"
title = "Golden merged feed"
base_url = "http://127.0.0.1:8080/"
formats = ["atom", "rss", "json", "markdown"]
limit = 12

[[sources]]
id = "huxiu"
url = "https://www.huxiu.com/rss/0.xml"
title = "虎嗅 - 首页资讯"
group = "新媒体"
fixture = "{seeds}/huxiu/"

[[sources]]
id = "scripting-gd"
url = "http://www.scripting.com/blog/categories/gratefulDead.xml"
group = "music"
fixture = "{seeds}/feeds/rss092-spec-sample.xml"

[[sources]]
id = "dival-personal"
url = "http://www.dival.es/personal/rss.xml"
fixture = "{seeds}/feeds/rss091-no-guid.xml"

[[sources]]
id = "numist"
url = "https://numi.st/feed.xml"
fixture = "{seeds}/feeds/atom10-xml-base.atom"

[[sources]]
id = "kc0011"
url = "http://www.kc0011.net/rss.asp"
group = "新媒体"
fixture = "{seeds}/feeds/rss2-zh-kc0011-gb2312.rss"

[[sources]]
id = "kc0011-mirror"
url = "http://mirror.kc0011.net/rss.asp"
group = "新媒体"
fixture = "{seeds}/feeds/rss2-zh-kc0011-gb18030.rss"
"""


def render_golden(workdir: Path) -> dict[str, bytes]:
    """Run the small config once at the fixed ``NOW``; return output path -> bytes."""
    path = workdir / "golden.toml"
    path.write_text(CONFIG.format(seeds=ROOT / "seeds"), encoding="utf-8")
    config = load_config(path)
    store = open_store(config.storage.url)
    try:
        run_once(config, store, now=NOW, offline=True)
    finally:
        store.close()
    out = config.output.dir
    return {  # (not the render stamp, a dotfile: ``renderstamp``)
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        files = render_golden(Path(tmp))
    shutil.rmtree(GOLDEN, ignore_errors=True)
    for name, data in files.items():
        target = GOLDEN / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    print(f"wrote {len(files)} files to {GOLDEN}")  # noqa: T201


if __name__ == "__main__":
    main()
