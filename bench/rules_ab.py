"""What content rules cost a tick (issue #15): 5 % churn ticks with and without rules.

    .venv/bin/python bench/rules_ab.py                      # N = 1,000, 5 repetitions
    .venv/bin/python bench/rules_ab.py --feeds 1000 --reps 7

"With rules" gives every source a few rules, ``exclude = ["sponsored", "re:^\\[ad\\]",
"crypto*"]`` and ``include = ["feed", "re:(?i)post \\d+"]``, and the output one exclude rule;
none of them drops a synthetic entry (every title is "Feed N post K: ..."), so both variants
store the same entries and the difference is the cost of judging them. "Without" is the
same config without rules. One feed server (bench/feedserver.py); each repetition runs both
variants, in alternating order, each in a fresh process against the server's initial world:
a cold tick (not timed), then a timed warm tick (all 304) and a timed tick after 5 % of the
feeds gained 2 entries, as ``bench/ours.py`` does. Prints the medians and the ratio; the
machine's speed drifts, so only ratios from one run compare.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
VARIANTS = ("with", "without")
SOURCE_RULES = {
    "exclude": ["sponsored", r"re:^\[ad\]", "crypto*"],
    "include": ["feed", r"re:(?i)post \d+"],
}
OUTPUTS = [{"name": "all", "title": "All", "exclude": ["sponsored"]}]


def _post(port: int, path: str) -> dict[str, Any]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST")
    with urllib.request.urlopen(req, timeout=120) as resp:
        data: dict[str, Any] = json.load(resp)
    return data


def with_rules(raw: dict[str, Any]) -> dict[str, Any]:
    sources = [source | SOURCE_RULES for source in raw["sources"]]
    return raw | {"sources": sources, "outputs": OUTPUTS}


def one(port: int, n: int, variant: str, workdir: Path) -> dict[str, float]:
    """One variant in this process: cold tick, then the timed warm and churn ticks."""
    sys.path.insert(0, str(BENCH))
    from ours import START_AT, STEP, raw_config

    from aggregator.config import parse_config
    from aggregator.scheduler import build_scheduler
    from aggregator.store import open_store

    raw = raw_config(workdir, port, n)
    raw = (
        with_rules(raw) if variant == "with" else raw | {"outputs": [OUTPUTS[0] | {"exclude": []}]}
    )
    config = parse_config(raw, path=workdir / "bench.toml")
    store = open_store(config.storage.url)
    clock = [START_AT]
    sched = build_scheduler(config, store, clock=lambda: clock[0])
    sched.start()
    out: dict[str, float] = {}
    try:
        out["cold_new"] = sched.tick().new
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


def _server(n: int) -> tuple[subprocess.Popen[str], int]:
    cmd = [sys.executable, str(BENCH / "feedserver.py"), "--port", "0", "--feeds", str(n)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def _run(port: int, n: int, variant: str) -> dict[str, float]:
    _post(port, "/_reset")
    with tempfile.TemporaryDirectory(prefix="rules-ab-") as tmp:
        cmd = [sys.executable, __file__, "--one", variant, "--port", str(port),
               "--feeds", str(n), "--workdir", tmp]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--feeds", type=int, default=1000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--one", choices=VARIANTS)
    p.add_argument("--port", type=int)
    p.add_argument("--workdir", type=Path)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.port, args.feeds, args.one, args.workdir)))
        return
    proc, port = _server(args.feeds)
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    try:
        for rep in range(args.reps):
            for variant in VARIANTS if rep % 2 == 0 else VARIANTS[::-1]:
                runs[variant].append(_run(port, args.feeds, variant))
                print(f"rep {rep + 1} {variant}: {runs[variant][-1]}", file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    _report(runs, args.feeds, args.reps)


def _report(runs: dict[str, list[dict[str, float]]], n: int, reps: int) -> None:
    same = {(r["cold_new"], r["churn_new"]) for v in VARIANTS for r in runs[v]}
    print(f"N = {n}, {reps} repetitions, medians (seconds); entries stored (cold, churn): {same}")
    print("| tick | measure | with rules | without | with / without |")
    print("|---|---|---|---|---|")
    for phase in ("warm", "churn"):
        for kind in ("wall", "cpu"):
            key = f"{phase}_{kind}_s"
            on = statistics.median(r[key] for r in runs["with"])
            off = statistics.median(r[key] for r in runs["without"])
            print(f"| {phase} | {kind} | {on:.3f} | {off:.3f} | {on / off:.3f} |")


if __name__ == "__main__":
    main()
