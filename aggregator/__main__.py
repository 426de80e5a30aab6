"""``python -m aggregator`` is the ``aggregator`` console script."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
