"""Warm tick (all 304) in CPU instructions, ours against the aiohttp floor (bench only).

    .venv/bin/python bench/instructions.py               # N=300, 3 ticks; needs valgrind
    .venv/bin/python bench/instructions.py --feeds 1000 --ticks 2
    PYTHONPATH=/tmp/old .venv/bin/python bench/instructions.py   # an older aggregator/, e.g.
        # extracted with `git archive REV aggregator | tar -x -C /tmp/old`

Wall-clock ratios drift with whatever else the machine runs; instruction counts do not
(``valgrind --tool=callgrind`` counts them, the same for the same inputs). Each side runs
under callgrind twice, with 1 and with 1 + ``--ticks`` rounds of conditional GETs of every
feed; the difference, divided by the extra requests, is the cost of one warm poll without
start-up. The feed server runs natively; only the measured process is counted (ours: the
loop thread and the storing thread together). Ours starts from a database whose sources
already carry the server's ETags and Last-Modified dates (as a 200 leaves them), so every
round is a warm tick of 304s that repeat the poll before.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
COLLECTED = re.compile(r"Collected : (\d+)")


async def _get_all(session: Any, todo: Iterator[tuple[str, str]]) -> None:
    """One of 16 workers: conditional GETs until ``todo`` is empty (all must be 304)."""
    for url, etag in todo:
        async with session.get(url, headers={"If-None-Match": etag}) as r:
            await r.read()
            assert r.status == 304, r.status


def _child_floor(port: int, etags: list[str], rounds: int, use_uvloop: bool) -> None:
    import aiohttp

    async def main() -> None:
        urls = [f"http://127.0.0.1:{port}/feed/{i}" for i in range(len(etags))]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as session:
            for _ in range(rounds):
                todo = iter(zip(urls, etags, strict=True))
                await asyncio.gather(*(_get_all(session, todo) for _ in range(16)))

    if use_uvloop:
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


def _child_ours(port: int, etags: list[str], rounds: int, modified: list[str | None]) -> None:
    from ours import aggregator  # bench/ is on sys.path: this script lives there

    from aggregator.types import PollRecord

    with tempfile.TemporaryDirectory() as tmp, aggregator(Path(tmp), port, len(etags)) as ours:
        now = ours.clock[0]
        pairs = zip(etags, modified, strict=True)
        records = [
            PollRecord(f"f{i}", "not_modified", now, now, http_status=304, etag=e, last_modified=m)
            for i, (e, m) in enumerate(pairs)
        ]
        if hasattr(ours.store, "transaction"):
            with ours.store.transaction() as tx:
                tx.record_polls(records)
        else:  # an aggregator/ from before the store's unit of work (issue #10)
            ours.store.record_polls(records)
        for _ in range(rounds):
            ours.advance()
            report = ours.tick()
            statuses = {o.status for o in report.outcomes}
            assert statuses == {"not_modified"}, statuses


def _count(kind: str, port: int, etag_file: Path, rounds: int) -> int:
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
    cmd += [str(Path(__file__).resolve()), "--child", kind, "--port", str(port)]
    cmd += ["--etags", str(etag_file), "--rounds", str(rounds)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    found = COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{kind} under callgrind failed: {done.stderr[-2000:]}")
    return int(found.group(1))


def measure(feeds: int, ticks: int) -> dict[str, float]:
    """Instructions per warm poll: floor (asyncio and uvloop) and ours."""
    server = subprocess.Popen(
        [sys.executable, str(BENCH / "feedserver.py"), "--port", "0", "--feeds", str(feeds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        etags, modified = [], []
        for i in range(feeds):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/feed/{i}", timeout=30) as r:
                etags.append(r.headers["ETag"])
                modified.append(r.headers["Last-Modified"])
        with tempfile.TemporaryDirectory() as tmp:
            etag_file = Path(tmp) / "etags.json"
            etag_file.write_text(json.dumps(etags))
            (Path(tmp) / "modified.json").write_text(json.dumps(modified))
            out = {}
            for kind in ("floor", "floor_uvloop", "ours"):
                base = _count(kind, port, etag_file, 1)
                more = _count(kind, port, etag_file, 1 + ticks)
                out[kind] = (more - base) / (ticks * feeds)
                print(f"  {kind}: {out[kind]:,.0f} instructions per warm poll", flush=True)
            return out
    finally:
        server.terminate()
        server.wait(timeout=10)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--feeds", type=int, default=300)
    p.add_argument("--ticks", type=int, default=3, help="measured rounds (after the first)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--etags", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        etags = json.loads(args.etags.read_text())
        if args.child == "ours":
            # Ours starts from both validators, as a source's 200 leaves them: every warm poll
            # sends and gets back both (the floor sends the ETag alone).
            found = args.etags.with_name("modified.json")
            modified = json.loads(found.read_text()) if found.exists() else [None] * len(etags)
            _child_ours(args.port, etags, args.rounds, modified)
        else:
            _child_floor(args.port, etags, args.rounds, use_uvloop=args.child == "floor_uvloop")
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind not found: apt-get install -y valgrind")
    print(f"N={args.feeds}, {args.ticks} measured warm ticks, under callgrind (a few minutes)")
    got = measure(args.feeds, args.ticks)
    print(f"ours / aiohttp floor (asyncio): {got['ours'] / got['floor']:.2f}x")
    print(f"ours / aiohttp floor (uvloop):  {got['ours'] / got['floor_uvloop']:.2f}x")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")  # children inherit it: same dict layouts
    main()
