"""One node, many sources: `aggregator run` over N = 100,000 feeds (bench only; not in run.py).

    .venv/bin/python bench/scale.py                          # N = 100,000 x 5 entries, 30 ticks
    .venv/bin/python bench/scale.py --feeds 10000 --ticks 10 # an estimate first

The daemon runs as a subprocess with 1 s ticks and every source due at every tick (see
outside.py), so the ticks run back to back. Measured: the cold ingest (from start until the
tick in which the feed server has answered every feed with a 200; a cold tick that reaches its
``tick_deadline`` leaves the rest to the next one), then ``--ticks`` warm ticks (all 304): each
tick's duration (its log line), the CPU of the process tree between tick lines, its RSS and
PSS after each tick, its peak RSS (VmHWM summed over the tree) over the cold and the warm
phase; the SQLite file's size per 1,000 entries stored. The floor: aiohttp's cold and
conditional pass over the same N (run.py's ``floor_http`` worker), before the daemon starts and
after it stops (the daemon's ticks cannot be interleaved with it). Writes
``--out``/results.json and results.md with the Targets table.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from outside import daemon, reset_peaks, tree_cpu_s, tree_memory_mb, write_config
from run import RESULTS, describe_tree, feed_server, reset_world, run_worker, snapshot


def _floor(args: argparse.Namespace, port: int, n: int, here: dict[str, Any], *, when: str) -> None:
    """aiohttp's cold and conditional pass over the N feeds, in a worker (run.py's floor)."""
    reset_world(port)
    with tempfile.TemporaryDirectory(prefix="aggbench-") as tmp:
        spec = {"kind": "floor_http", "client": "aiohttp", "port": port, "n": n}
        spec |= {"entries": args.entries, "workdir": tmp, "pythonpath": args.pythonpath}
        got = run_worker(spec, args.timeout)
    if "error" in got:
        here["errors"].append(f"floor {when}: {got['error']}")
    for phase, value in got.items():
        here.setdefault(f"floor.aiohttp.{phase}", []).append(value | {"when": when})
    print(f"  floor {when}: warm pass {got.get('warm', {}).get('wall_s', 0):.2f} s", flush=True)


def _sample(root: psutil.Process, t0: float, cpu0: float) -> dict[str, Any]:
    mem = tree_memory_mb(root, pss=True)
    return {"wall_s": time.monotonic() - t0, "cpu_s": tree_cpu_s(root) - cpu0, **mem}


def measure_daemon(args: argparse.Namespace, port: int, n: int, workdir: Path) -> dict[str, Any]:
    """Cold ingest, then ``args.ticks`` warm ticks of `aggregator run`; see the docstring."""
    config = write_config(workdir, port, n, serve=True)
    reset_world(port)
    out: dict[str, Any] = {}
    with daemon(config, log=workdir / "daemon.log") as d:
        root, t0 = psutil.Process(d.proc.pid), d.started_at
        answered = 0
        while answered < n:  # the cold phase: until every feed has been fetched once
            d.wait_ticks(len(d.ticks) + 1, timeout_s=args.timeout, every_s=0.1)
            answered = _server_200s(port)
        cold_ticks = list(d.ticks)
        cold = _sample(root, t0, 0.0) | {"rss_mb": tree_memory_mb(root)["hwm_mb"]}
        cold |= {"ticks": len(cold_ticks), "entries": sum(t["new"] for t in cold_ticks)}
        cold |= {"requests": n, "tick_s": [t.get("ms", 0) / 1000 for t in cold_ticks]}
        cold["entries_per_feed"] = args.entries
        print(f"  cold ingest: {cold['wall_s']:.1f} s over {len(cold_ticks)} ticks", flush=True)
        reset_peaks(root)
        warm: list[dict[str, Any]] = []
        for k in range(args.ticks):
            t1, cpu1 = time.monotonic(), tree_cpu_s(root)
            d.wait_ticks(len(cold_ticks) + k + 1, timeout_s=args.timeout, every_s=0.1)
            tick = d.ticks[-1]
            got = _sample(root, t1, cpu1)
            got |= {"between_lines_s": got["wall_s"], "requests": tick["due"], "entries": 0}
            got |= {"not_modified": tick["not_modified"], "failed": tick["failed"]}
            got["wall_s"] = tick["ms"] / 1000 if "ms" in tick else got["wall_s"]
            warm.append(got)
            print(
                f"  warm tick {k + 1}: {got['wall_s']:.2f} s, RSS {got['rss_mb']:.0f} MB",
                flush=True,
            )
        peak_warm = tree_memory_mb(root)["hwm_mb"]
        errors = d.errors()
    rss = [w["rss_mb"] for w in warm]
    base = rss[min(4, len(rss) - 1)]
    out["ours.scale.cold"] = [cold]
    out["ours.scale.warm"] = warm
    out["ours.scale.long"] = [
        {
            "wall_s": sum(w["between_lines_s"] for w in warm),
            "cpu_s": sum(w["cpu_s"] for w in warm),
            "rss_mb": max(cold["rss_mb"], peak_warm),
            "peak_rss_cold_mb": cold["rss_mb"],
            "peak_rss_warm_mb": peak_warm,
            "peak_pss_mb": max([cold["pss_mb"], *(w["pss_mb"] for w in warm)]),
            "ticks": len(warm),
            "rss_after_tick_mb": rss,
            "pss_after_tick_mb": [w["pss_mb"] for w in warm],
            "tick_wall_s": [w["wall_s"] for w in warm],
            "growth_pct_5_to_last": 100 * (rss[-1] - base) / base,
            "growth_pct_1_to_last": 100 * (rss[-1] - rss[0]) / rss[0],
            "errors": errors[:3],
            **_db_size(workdir / "agg.db"),
        }
    ]
    return out


def _server_200s(port: int) -> int:
    from outside import server_stats

    return server_stats(port).get("200", 0)


def _db_size(path: Path) -> dict[str, Any]:
    """The SQLite file (with its WAL, after the daemon's clean stop) per 1,000 entries."""
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    with sqlite3.connect(path) as conn:
        entries = int(conn.execute("SELECT count(*) FROM entries").fetchone()[0])
    per = size / 2**20 / (entries / 1000) if entries else None
    return {"db_mb": size / 2**20, "db_entries": entries, "db_mb_per_1000_entries": per}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--feeds", type=int, default=100_000, help="N sources")
    p.add_argument("--entries", type=int, default=5, help="entries per feed (20 would need GBs)")
    p.add_argument("--entry-bytes", type=int, default=1500)
    p.add_argument("--ticks", type=int, default=30, help="warm ticks after the cold ingest")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=3600, help="seconds per worker or tick")
    p.add_argument("--out", type=Path, default=RESULTS / "scale")
    p.add_argument("--commit", help="measure aggregator/ as of this commit (git archive)")
    args = p.parse_args(argv)
    args.gzip, args.latency_ms, args.server_max_seconds = False, 0.0, 4 * 3600
    return args


def main(argv: list[str] | None = None) -> None:
    from report import write_all

    args = parse_args(argv)
    n, started = args.feeds, time.time()
    with tempfile.TemporaryDirectory(prefix="aggbench-scale-") as tmp:
        args.pythonpath, tree = "", describe_tree()
        if args.commit:
            tree = snapshot(args.commit, Path(tmp) / "src")
            args.pythonpath = str(Path(tmp) / "src")
            os.environ["PYTHONPATH"] = os.pathsep.join(
                filter(None, [args.pythonpath, os.environ.get("PYTHONPATH")])
            )
        t0 = time.monotonic()
        with feed_server(args, n) as port:
            server_s = time.monotonic() - t0
            print(f"N={n}: feed server ready in {server_s:.1f} s", flush=True)
            here: dict[str, Any] = {"errors": []}
            _floor(args, port, n, here, when="before")
            here |= measure_daemon(args, port, n, Path(tmp) / "daemon")
            _floor(args, port, n, here, when="after")
    meta = {
        "aggregator": tree,
        "command": " ".join([".venv/bin/python bench/scale.py", *(argv or sys.argv[1:])]),
        "cores": os.cpu_count(),
        "entries": args.entries,
        "entry_bytes": args.entry_bytes,
        "reps": 1,
        "large_from": n,
        "large_reps": 1,
        "skip": [],
        "elapsed_s": time.time() - started,
        "feed_server_start_s": server_s,
        "notes": [
            f"{args.entries} entries per feed at N = {n:,} (the feed server keeps every "
            "document in memory); the floor ran before the daemon started and after it stopped."
        ],
    }
    print(write_all({str(n): here}, meta, args.out))


if __name__ == "__main__":
    main()
