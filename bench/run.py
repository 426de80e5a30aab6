"""Run the whole benchmark: ours, the floors and the peer, side by side (bench only).

    .venv/bin/python bench/run.py                       # sizes 100,1000,10000, 3 repetitions
    .venv/bin/python bench/run.py --quick               # sizes 100,1000, no long run at 10k
    .venv/bin/python bench/run.py --sizes 1000 --reps 5

One feed server (bench/feedserver.py) per N on 127.0.0.1, reset to its initial world before
every measurement. Every measurement runs in a fresh worker process (``--one SPEC``), so its
CPU time and peak RSS are its own. Writes bench/results/results.json, results.md and bench.png,
and prints the headline table. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
MARK = "RESULT "


def worker(spec: dict[str, Any]) -> dict[str, object]:
    """Run one measurement in this process (imports here, so the orchestrator stays light)."""
    kind, common = spec["kind"], {k: spec[k] for k in ("port", "n", "entries")}
    workdir = Path(spec["workdir"])
    if kind == "floor_http":
        from floors import http_floor

        return http_floor(spec["client"], **common)
    if kind == "floor_parse_insert":
        from floors import parse_insert_floor

        return parse_insert_floor(port=spec["port"], n=spec["n"], workdir=workdir)
    if kind == "peer":
        from peer import peer_update

        return peer_update(**common, workdir=workdir)
    import ours

    scenarios: dict[str, Callable[..., dict[str, object]]] = {
        "ours_main": ours.ours_main,
        "ours_once": ours.ours_once,
        "ours_history": ours.ours_history,
        "ours_long": ours.ours_long,
    }
    extra = {k: spec[k] for k in ("multiple", "ticks") if k in spec}
    return scenarios[kind](**common, workdir=workdir, **extra)


@contextmanager
def feed_server(args: argparse.Namespace, n: int) -> Iterator[int]:
    """Start bench/feedserver.py for N feeds; yield its port; stop it (it also stops itself)."""
    cmd = [sys.executable, str(BENCH / "feedserver.py"), "--port", "0", "--feeds", str(n)]
    cmd += ["--entries", str(args.entries), "--entry-bytes", str(args.entry_bytes)]
    cmd += ["--seed", str(args.seed), "--max-seconds", str(args.server_max_seconds)]
    cmd += ["--gzip"] if args.gzip else []
    cmd += ["--latency-ms", str(args.latency_ms)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"feed server did not start: {line!r}")
        yield int(line)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def reset_world(port: int) -> None:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/_reset", method="POST")
    with urllib.request.urlopen(req, timeout=120) as resp:
        resp.read()


def run_worker(spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run ``spec`` in a fresh process (its own session, so a timeout ends all it started)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", json.dumps(spec)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"error": f"timed out after {timeout_s:.0f} s"}
    for line in reversed(out.splitlines()):
        if line.startswith(MARK):
            result: dict[str, Any] = json.loads(line[len(MARK) :])
            return result
    return {"error": f"worker exited {proc.returncode} without a result"}


def plan(args: argparse.Namespace, n: int, rep: int) -> list[dict[str, Any]]:
    """The workers of one repetition at size N."""
    large = n >= args.large_from
    specs: list[dict[str, Any]] = [
        {"kind": "floor_http", "client": c, "name": f"floor.{c}"}
        for c in ("aiohttp", "httpx", "httpx_aiohttp")
    ]
    specs.append({"kind": "floor_parse_insert", "name": "floor"})
    slow_reps = args.large_reps if large else args.reps
    if rep < slow_reps:
        specs += [{"kind": "ours_main", "name": "ours"}, {"kind": "peer", "name": "peer"}]
    if n in args.history_sizes and rep < slow_reps:
        specs += [
            {"kind": "ours_history", "name": f"ours.history{m}x", "multiple": m} for m in (1, 2)
        ]
    if rep == 0:
        specs.append({"kind": "ours_once", "name": "ours"})
        if not (args.quick and large) and n in args.long_sizes:
            specs.append({"kind": "ours_long", "name": "ours", "ticks": args.long_ticks})
    return specs


def run_size(args: argparse.Namespace, n: int, results: dict[str, Any]) -> None:
    """All repetitions at size N; ``results[str(n)][measurement] = [rep, ...]``."""
    here: dict[str, Any] = results.setdefault(str(n), {"errors": []})
    with feed_server(args, n) as port:
        for rep in range(args.reps):
            for spec in plan(args, n, rep):
                name = spec.pop("name")
                reset_world(port)
                with tempfile.TemporaryDirectory(prefix="aggbench-") as tmp:
                    full = {**spec, "port": port, "n": n, "entries": args.entries, "workdir": tmp}
                    t0 = time.perf_counter()
                    got = run_worker(full, args.timeout)
                took = time.perf_counter() - t0
                print(f"  N={n} rep={rep + 1} {name} ({spec['kind']}): {took:.1f} s", flush=True)
                if "error" in got:
                    here["errors"].append(f"rep {rep + 1} {name}: {got['error']}")
                    print(f"    ERROR {got['error']}", flush=True)
                    continue
                for phase, value in got.items():
                    here.setdefault(f"{name}.{phase}", []).append(value)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--one", help="(internal) run one measurement given as JSON and exit")
    p.add_argument("--sizes", default="100,1000,10000", help="numbers of feeds N")
    p.add_argument("--reps", type=int, default=3, help="repetitions (min and median reported)")
    p.add_argument("--quick", action="store_true", help="sizes 100,1000; no long run at 10k")
    p.add_argument("--large-from", type=int, default=10000, help="N from which --large-reps")
    p.add_argument("--large-reps", type=int, default=1, help="reps of ours and reader at large N")
    p.add_argument("--history-sizes", default="1000", help="N for the history-doubling churn")
    p.add_argument("--long-sizes", default="100,1000,10000", help="N for the 30-tick daemon run")
    p.add_argument("--long-ticks", type=int, default=30)
    p.add_argument("--entries", type=int, default=20, help="entries per feed")
    p.add_argument("--entry-bytes", type=int, default=1500, help="HTML content per entry")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--gzip", action="store_true", help="the server gzips bodies")
    p.add_argument("--latency-ms", type=float, default=0.0, help="server latency per request")
    p.add_argument("--timeout", type=float, default=2400, help="seconds per worker")
    p.add_argument("--server-max-seconds", type=float, default=4 * 3600)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.quick:
        args.sizes = "100,1000"
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s]
    args.history_sizes = {int(s) for s in args.history_sizes.split(",") if s}
    args.long_sizes = {int(s) for s in args.long_sizes.split(",") if s}
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.one:
        try:
            result = worker(json.loads(args.one))
        except Exception as exc:  # reported to the orchestrator, which keeps going
            traceback.print_exc()
            result = {"error": f"{type(exc).__name__}: {exc}"}
        print(MARK + json.dumps(result), flush=True)
        return
    from report import write_all

    started = time.time()
    results: dict[str, Any] = {}
    for n in args.sizes:
        print(f"N={n}", flush=True)
        run_size(args, n, results)
    meta = {k: v for k, v in vars(args).items() if k not in ("one", "out")}
    meta.update(history_sizes=sorted(args.history_sizes), long_sizes=sorted(args.long_sizes))
    meta.update(cores=os.cpu_count(), elapsed_s=time.time() - started, python=sys.version)
    given = argv if argv is not None else sys.argv[1:]
    meta["command"] = " ".join([".venv/bin/python bench/run.py", *given])
    print(write_all(results, meta, args.out))


if __name__ == "__main__":
    main()
