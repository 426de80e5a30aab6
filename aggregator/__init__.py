"""aggregator: a feed aggregator daemon (poll, clean, deduplicate, store, serve merged feeds)."""

from __future__ import annotations

__version__ = "0.1.0"
PROJECT_URL = "https://example.invalid/aggregator"
USER_AGENT = f"aggregator/{__version__} (+{PROJECT_URL})"
