"""``python -m aggregator`` and the ``aggregator`` console script.

The CLI is imported only when it runs: parse workers start by re-importing the main module
(``multiprocessing`` does that for the console script too), and importing all of
``aggregator.cli`` (SQLAlchemy, Alembic, aiohttp, APScheduler ...) would cost each worker
time and memory for modules it never uses.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import main as cli

    return cli(argv)


if __name__ == "__main__":  # parse workers re-import the main module: never re-run the CLI
    sys.exit(main())
