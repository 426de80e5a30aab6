"""Regenerate the golden parses in tests/data/parse/ from tests/test_parse.py's cases.

Run from the repository root after an intended parser change, then review the diff:

    .venv/bin/python tests/regen_parse_golden.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from test_parse import GOLDEN_CASES, GOLDEN_DIR, dump_feed, golden_parse, golden_path  # noqa: E402


def main() -> int:
    """Write one JSON file per golden case; report which ones changed."""
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    changed = 0
    for name in GOLDEN_CASES:
        path = golden_path(name)
        text = dump_feed(golden_parse(name))
        if path.exists() and path.read_text("utf-8") == text:
            continue
        path.write_text(text, "utf-8")
        changed += 1
        sys.stdout.write(f"wrote     {path.relative_to(ROOT)}\n")
    sys.stdout.write(f"{changed} written, {len(GOLDEN_CASES) - changed} unchanged\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
