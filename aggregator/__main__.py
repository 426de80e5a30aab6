"""``python -m aggregator`` is the ``aggregator`` console script."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":  # parse workers re-import the main module: never re-run the CLI
    sys.exit(main())
