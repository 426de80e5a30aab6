"""Regenerate the golden render outputs in tests/data/render/ from tests/test_render.py's fixtures.

Run from the repository root after an intended output change, then review the diff:

    .venv/bin/python tests/regen_render_golden.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from test_render import CHANNEL, ENTRIES, GOLDEN_DIR  # noqa: E402

from aggregator.render import FORMATS, render_output  # noqa: E402


def main() -> int:
    """Write every format for the fixtures into the golden directory; report what changed."""
    report = render_output(CHANNEL, ENTRIES, FORMATS, GOLDEN_DIR)
    for path in report.written:
        sys.stdout.write(f"wrote     {path}\n")
    sys.stdout.write(
        f"{len(report.written)} written, {len(report.unchanged)} unchanged, "
        f"{report.removed} stale removed under {GOLDEN_DIR.relative_to(ROOT)}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
