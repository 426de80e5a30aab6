"""What explain costs a tick (issue #14): warm and 5 % churn ticks with and without it.

    .venv/bin/python bench/explain_ab.py                      # N = 1,000, 5 repetitions
    .venv/bin/python bench/explain_ab.py --feeds 1000 --reps 7

    .venv/bin/python bench/explain_ab.py --alternate --reps 15   # one process, tick by tick
    .venv/bin/python bench/explain_ab.py --instructions --feeds 300   # warm tick, callgrind

"With" is the default, ``[explain] keep_days = 7`` (each poll's row in ``polls``, over-cap
entries named, titles and rules with every verdict); "without" is ``keep_days = 0``. Both run
the same code otherwise (the per-field digests of stored items are written either way: they
are what an update's verdict is made of). One feed server (bench/feedserver.py); each
repetition runs both variants, in alternating order, each in a fresh process against the
server's initial world: a cold tick (not timed), then a timed warm tick (all 304) and a timed
tick after 5 % of the feeds gained 2 entries, as ``bench/ours.py`` does. ``--alternate``
instead runs one aggregator and switches the setting between ticks (warm with, warm without,
churn with, churn without ..., each churn tick after its own 5 % churn, and an untimed warm
tick before each pair of warm ones: the first tick after a churn tick is slower, whatever
the setting): on a loaded machine its pairs are measured seconds apart, not minutes. Prints
the medians and the ratio with/without; the machine's speed drifts, so only ratios from one
run compare.
``--instructions`` counts the CPU instructions of a warm poll instead, under valgrind's
callgrind, as ``bench/instructions.py`` does (1 and 1 + ``--ticks`` warm ticks, the
difference per poll): the same count on every run, whatever else the machine does.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
VARIANTS = {"with": 7, "without": 0}
NEVER = datetime(9999, 1, 1, tzinfo=UTC)  # as the last prune: none is due during the ticks


def _post(port: int, path: str) -> dict[str, Any]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST")
    with urllib.request.urlopen(req, timeout=120) as resp:
        data: dict[str, Any] = json.load(resp)
    return data


def one(port: int, n: int, keep_days: int, workdir: Path) -> dict[str, float]:
    """One variant in this process: cold tick, then the timed warm and churn ticks."""
    sys.path.insert(0, str(BENCH))
    from ours import START_AT, STEP, raw_config

    from aggregator.config import parse_config
    from aggregator.scheduler import build_scheduler
    from aggregator.store import open_store

    raw = raw_config(workdir, port, n) | {"explain": {"keep_days": keep_days}}
    config = parse_config(raw, path=workdir / "bench.toml")
    store = open_store(config.storage.url)
    clock = [START_AT]
    sched = build_scheduler(config, store, clock=lambda: clock[0])
    sched.history.last_at = NEVER  # the hourly prune is measured apart (``_prune``)
    sched.start()
    out: dict[str, float] = {}
    try:
        sched.tick()
        for phase in ("warm", "churn"):
            clock[0] += STEP
            if phase == "churn":
                _post(port, "/_churn?fraction=0.05&round=1&entries=2")
            wall, cpu = time.perf_counter(), time.process_time()
            report = sched.tick()
            out[f"{phase}_wall_s"] = time.perf_counter() - wall
            out[f"{phase}_cpu_s"] = time.process_time() - cpu
            out[f"{phase}_new"] = report.new
    finally:
        sched.close()
        store.close()
    return out


def alternate(port: int, n: int, reps: int, workdir: Path) -> dict[str, list[dict[str, float]]]:
    """One aggregator; the setting switched between ticks (see the module docstring)."""
    sys.path.insert(0, str(BENCH))
    from dataclasses import replace

    from ours import START_AT, STEP, raw_config

    from aggregator.config import ExplainConfig, parse_config
    from aggregator.scheduler import build_scheduler
    from aggregator.store import open_store

    config = parse_config(raw_config(workdir, port, n), path=workdir / "bench.toml")
    store = open_store(config.storage.url)
    clock = [START_AT]
    sched = build_scheduler(config, store, clock=lambda: clock[0])
    sched.history.last_at = NEVER  # the hourly prune is measured apart (``_prune``)
    sched.start()
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    churned = 0
    try:
        sched.tick()
        for rep in range(reps):
            order = list(VARIANTS) if rep % 2 == 0 else list(VARIANTS)[::-1]
            result: dict[str, dict[str, float]] = {v: {} for v in VARIANTS}
            clock[0] += STEP
            sched.tick()  # settles what the last churn tick left (WAL checkpoint ...): untimed
            for phase in ("warm", "churn"):
                for variant in order:
                    sched.config = replace(config, explain=ExplainConfig(VARIANTS[variant]))
                    clock[0] += STEP
                    if phase == "churn":
                        churned += 1
                        _post(port, f"/_churn?fraction=0.05&round={churned}&entries=2")
                    wall, cpu = time.perf_counter(), time.process_time()
                    sched.tick()
                    result[variant][f"{phase}_wall_s"] = time.perf_counter() - wall
                    result[variant][f"{phase}_cpu_s"] = time.process_time() - cpu
            for variant in VARIANTS:
                runs[variant].append(result[variant])
            print(f"rep {rep + 1}: {result}", file=sys.stderr)
        _prune(store, clock[0])
    finally:
        sched.close()
        store.close()
    return runs


def _prune(store: Any, now: datetime) -> None:
    """The daemon's hourly prune, once, over all the history these ticks kept."""
    wall = time.perf_counter()
    with store.transaction() as tx:
        polls, verdicts = tx.forget_history(now, at=now)
    wall = time.perf_counter() - wall
    print(f"prune of {polls} polls and {verdicts} verdicts: {wall:.3f} s", file=sys.stderr)


def _child_instructions(port: int, etags: list[str], rounds: int, keep_days: int) -> None:
    """``rounds`` warm ticks (every source already carries the server's ETag)."""
    sys.path.insert(0, str(BENCH))
    from dataclasses import replace

    from ours import aggregator

    from aggregator.config import ExplainConfig
    from aggregator.types import PollRecord

    with tempfile.TemporaryDirectory() as tmp, aggregator(Path(tmp), port, len(etags)) as ours:
        ours.sched.config = replace(ours.config, explain=ExplainConfig(keep_days))
        ours.sched.history.last_at = NEVER
        now = ours.clock[0]
        records = [PollRecord(f"f{i}", "not_modified", now, now, http_status=304, etag=etag)
                   for i, etag in enumerate(etags)]  # fmt: skip
        with ours.store.transaction() as tx:
            tx.record_polls(records)
        for _ in range(rounds):
            ours.advance()
            statuses = {o.status for o in ours.tick().outcomes}
            assert statuses == {"not_modified"}, statuses


def instructions(n: int, ticks: int) -> None:
    """Instructions per warm poll, with and without explain (see the module docstring)."""
    proc, port = _server(n)
    try:
        etags = []
        for i in range(n):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/feed/{i}", timeout=30) as r:
                etags.append(r.headers["ETag"])
        with tempfile.TemporaryDirectory() as tmp:
            etag_file = Path(tmp) / "etags.json"
            etag_file.write_text(json.dumps(etags))
            per_poll = {}
            for variant in VARIANTS:
                base = _callgrind(variant, port, etag_file, 1)
                more = _callgrind(variant, port, etag_file, 1 + ticks)
                per_poll[variant] = (more - base) / (ticks * n)
                print(f"{variant}: {per_poll[variant]:,.0f} instructions per warm poll")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"with / without: {per_poll['with'] / per_poll['without']:.3f}")


def _callgrind(variant: str, port: int, etag_file: Path, rounds: int) -> int:
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
           __file__, "--child", variant, "--port", str(port), "--etags", str(etag_file),
           "--rounds", str(rounds)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{variant} under callgrind failed: {done.stderr[-2000:]}")
    return int(found.group(1))


def _server(n: int) -> tuple[subprocess.Popen[str], int]:
    cmd = [sys.executable, str(BENCH / "feedserver.py"), "--port", "0", "--feeds", str(n)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def _run(port: int, n: int, variant: str) -> dict[str, float]:
    _post(port, "/_reset")
    with tempfile.TemporaryDirectory(prefix="explain-ab-") as tmp:
        cmd = [sys.executable, __file__, "--one", variant, "--port", str(port),
               "--feeds", str(n), "--workdir", tmp]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--feeds", type=int, default=1000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--one", choices=sorted(VARIANTS))
    p.add_argument("--port", type=int)
    p.add_argument("--workdir", type=Path)
    p.add_argument("--alternate", action="store_true", help="one process, switched per tick")
    p.add_argument("--instructions", action="store_true", help="warm polls under callgrind")
    p.add_argument("--ticks", type=int, default=3, help="--instructions: measured warm ticks")
    p.add_argument("--child", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    p.add_argument("--etags", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.port, args.feeds, VARIANTS[args.one], args.workdir)))
        return
    if args.child:
        etags = json.loads(args.etags.read_text())
        _child_instructions(args.port, etags, args.rounds, VARIANTS[args.child])
        return
    if args.instructions:
        instructions(args.feeds, args.ticks)
        return
    proc, port = _server(args.feeds)
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    try:
        if args.alternate:
            with tempfile.TemporaryDirectory(prefix="explain-ab-") as tmp:
                runs = alternate(port, args.feeds, args.reps, Path(tmp))
        for rep in range(0 if args.alternate else args.reps):
            order = list(VARIANTS) if rep % 2 == 0 else list(VARIANTS)[::-1]
            for variant in order:
                runs[variant].append(_run(port, args.feeds, variant))
                print(f"rep {rep + 1} {variant}: {runs[variant][-1]}", file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    _report(runs, args.feeds, args.reps)


def _report(runs: dict[str, list[dict[str, float]]], n: int, reps: int) -> None:
    print(f"N = {n}, {reps} repetitions, medians (seconds), and the median of the ratios of")
    print("each repetition's pair (measured back to back, so drift of the machine cancels):")
    print("| tick | measure | with explain | without | with / without | median pair ratio |")
    print("|---|---|---|---|---|---|")
    for phase in ("warm", "churn"):
        for kind in ("wall", "cpu"):
            key = f"{phase}_{kind}_s"
            on = statistics.median(r[key] for r in runs["with"])
            off = statistics.median(r[key] for r in runs["without"])
            pairs = statistics.median(
                a[key] / b[key] for a, b in zip(runs["with"], runs["without"], strict=True)
            )
            print(f"| {phase} | {kind} | {on:.3f} | {off:.3f} | {on / off:.3f} | {pairs:.3f} |")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")  # children inherit it: same dict layouts
    main()
