"""The peer: lemon24's ``reader`` updating the same N feeds from the same server (bench only).

Fresh database, the N URLs added, ``update_feeds(workers=16)`` cold, then again warm (the server
answers 304). ``scheduled=False`` so the warm update polls every feed instead of waiting for
reader's own update interval, like our warm tick after its clock moved past the interval.
"""

from __future__ import annotations

import logging
from pathlib import Path

from floors import feed_urls
from meter import measure
from reader import make_reader

WORKERS = 16


def peer_update(*, port: int, n: int, entries: int, workdir: Path) -> dict[str, object]:
    """Cold and warm ``update_feeds``; asserts that the cold one stored about N x entries."""
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)  # pool-full chatter
    reader = make_reader(str(workdir / "reader.sqlite"))
    try:
        for url in feed_urls(port, n):
            reader.add_feed(url)
        with measure() as cold:
            reader.update_feeds(workers=WORKERS, scheduled=False)
        stored = reader.get_entry_counts().total
        if not n * entries * 0.95 <= stored <= n * entries:
            raise AssertionError(f"reader stored {stored} entries, expected about {n * entries}")
        cold.extra = {"entries": stored, "requests": n}
        with measure() as warm:
            reader.update_feeds(workers=WORKERS, scheduled=False)
        after = reader.get_entry_counts().total
        warm.extra = {"entries": after - stored, "requests": n}
    finally:
        reader.close()
    return {"cold": cold.as_dict(), "warm": warm.as_dict()}
