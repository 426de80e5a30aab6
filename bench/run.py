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
import contextlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
MARK = "RESULT "


def worker(spec: dict[str, Any]) -> dict[str, object]:
    """Run one measurement in this process (imports here, so the orchestrator stays light)."""
    kind, common = spec["kind"], {k: spec[k] for k in ("port", "n", "entries")}
    workdir = Path(spec["workdir"])
    if kind == "floor_http":
        from floors import http_floor

        return http_floor(spec["client"], **common)
    if kind == "floor_polls":
        from floors import poll_floor

        return poll_floor(**common, passes=spec["passes"])
    if kind == "floor_parse_insert":
        from floors import parse_insert_floor

        return parse_insert_floor(port=spec["port"], n=spec["n"], workdir=workdir)
    if kind == "peer":
        from peer import peer_update

        return peer_update(**common, workdir=workdir)
    import ours
    import outside

    if spec.get("pythonpath"):
        import aggregator

        where = Path(aggregator.__file__).resolve()
        if not where.is_relative_to(Path(spec["pythonpath"]).resolve()):
            raise RuntimeError(f"aggregator imported from {where}, not the snapshot")
    scenarios: dict[str, Callable[..., dict[str, object]]] = {
        "ours_main": ours.ours_main,
        "ours_once": ours.ours_once,
        "ours_history": ours.ours_history,
        "ours_long": ours.ours_long,
        "ours_daemon": outside.ours_daemon,
        "ours_once_warm": outside.ours_once_warm,
    }
    extra = {k: spec[k] for k in ("multiple", "ticks", "pairs") if k in spec}
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


def _git(*args: str) -> str:
    """A read-only git command in the repository."""
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, check=True)
    return done.stdout.decode()


def snapshot(rev: str, into: Path) -> str:
    """Extract ``aggregator/`` as of ``rev`` into ``into`` (read-only: ``git archive``)."""
    blob = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "aggregator"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return f"commit {_git('rev-parse', '--short', rev).strip()} ({rev}), extracted"


def describe_tree() -> str:
    head = _git("rev-parse", "--short", "HEAD").strip()
    dirty = _git("status", "--porcelain", "--", "aggregator").strip()
    return f"working tree at {head}" + (" with uncommitted changes in aggregator/" if dirty else "")


def run_worker(spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run ``spec`` in a fresh process (its own session, so a timeout ends all it started)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", json.dumps(spec)]
    env = dict(os.environ)
    if spec.get("pythonpath"):  # a snapshot of aggregator/ comes before the editable install
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [spec["pythonpath"], env.get("PYTHONPATH")])
        )
    # stdout to a file, not a pipe: processes the worker leaves behind (a pool whose parent
    # was killed) would hold a pipe open and block the orchestrator.
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, stdout=out, text=True, start_new_session=True, env=env)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _end_group(proc.pid, grace_s=0)
            proc.wait()
            return {"error": f"timed out after {timeout_s:.0f} s"}
        left = _end_group(proc.pid)
        out.seek(0)
        lines = out.read().splitlines()
    for line in reversed(lines):
        if line.startswith(MARK):
            result: dict[str, Any] = json.loads(line[len(MARK) :])
            return result | ({"left_behind": left} if left else {})
    return {"error": f"worker exited {proc.returncode} without a result"}


def _end_group(pgid: int, *, grace_s: float = 3.0) -> int:
    """Kill what is left of a worker's process group (ours alone: its own session).

    A fork server and a resource tracker end a moment after their parent: wait ``grace_s``.
    """
    deadline = time.monotonic() + grace_s
    left = [p for p in psutil.process_iter() if _pgid(p.pid) == pgid]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if _alive(p)]
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.kill()
    return len(left)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def plan(args: argparse.Namespace, n: int, rep: int) -> list[dict[str, Any]]:
    """The workers of one repetition at size N (``--large-reps`` of them at large N)."""
    if rep >= (args.large_reps if n >= args.large_from else args.reps):
        return []
    specs: list[dict[str, Any]] = [
        {"kind": "floor_http", "client": c, "name": f"floor.{c}"}
        for c in ("aiohttp", "aiohttp_uvloop", "httpx", "httpx_aiohttp")
    ]
    specs += [
        {"kind": "floor_parse_insert", "name": "floor"},
        {"kind": "ours_main", "name": "ours"},
        {"kind": "peer", "name": "peer"},
    ]
    if n in args.history_sizes:
        specs += [
            {"kind": "ours_history", "name": f"ours.history{m}x", "multiple": m} for m in (1, 2)
        ]
    if n in args.daemon_sizes:  # side by side: the floor's CPU per 304, then the daemon's
        specs += [
            {"kind": "floor_polls", "name": "floor.aiohttp", "passes": args.daemon_ticks},
            {"kind": "ours_daemon", "name": "ours", "ticks": args.daemon_ticks},
        ]
    if n in args.once_sizes:
        specs.append({"kind": "ours_once_warm", "name": "ours", "pairs": args.once_pairs})
    if rep == 0:
        specs.append({"kind": "ours_once", "name": "ours"})
        if not (args.quick and n >= args.large_from) and n in args.long_sizes:
            specs.append({"kind": "ours_long", "name": "ours", "ticks": args.long_ticks})
    return [s for s in specs if s["kind"] not in args.skip and f"{n}:{s['kind']}" not in args.skip]


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
                    full["pythonpath"] = args.pythonpath
                    t0 = time.perf_counter()
                    got = run_worker(full, args.timeout)
                took = time.perf_counter() - t0
                print(f"  N={n} rep={rep + 1} {name} ({spec['kind']}): {took:.1f} s", flush=True)
                left = got.pop("left_behind", 0)
                if left:
                    here["errors"].append(f"rep {rep + 1} {name}: {left} processes left, killed")
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
    p.add_argument("--large-reps", type=int, default=1, help="repetitions at large N")
    p.add_argument(
        "--skip", default="", help="worker kinds to skip: KIND or N:KIND, comma-separated"
    )
    p.add_argument("--history-sizes", default="1000", help="N for the history-doubling churn")
    p.add_argument("--long-sizes", default="100,1000,10000", help="N for the 30-tick daemon run")
    p.add_argument("--long-ticks", type=int, default=30)
    p.add_argument(
        "--daemon-sizes", default="1000", help="N for `aggregator run` CPU per warm poll"
    )
    p.add_argument("--daemon-ticks", type=int, default=10, help="warm ticks measured per window")
    p.add_argument("--once-sizes", default="1000", help="N for warm `once` minus `once` of 1")
    p.add_argument("--once-pairs", type=int, default=5, help="(N, 1) pairs of warm `once`")
    p.add_argument("--entries", type=int, default=20, help="entries per feed")
    p.add_argument("--entry-bytes", type=int, default=1500, help="HTML content per entry")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--gzip", action="store_true", help="the server gzips bodies")
    p.add_argument("--latency-ms", type=float, default=0.0, help="server latency per request")
    p.add_argument("--timeout", type=float, default=2400, help="seconds per worker")
    p.add_argument("--server-max-seconds", type=float, default=4 * 3600)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument(
        "--commit",
        help="measure aggregator/ as of this commit (git archive) instead of the working tree",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.sizes = "100,1000"
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s]
    args.history_sizes = {int(s) for s in args.history_sizes.split(",") if s}
    args.long_sizes = {int(s) for s in args.long_sizes.split(",") if s}
    args.daemon_sizes = {int(s) for s in args.daemon_sizes.split(",") if s}
    args.once_sizes = {int(s) for s in args.once_sizes.split(",") if s}
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
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
    with tempfile.TemporaryDirectory(prefix="aggbench-src-") as src:
        args.pythonpath = ""
        tree = describe_tree()
        if args.commit:
            tree = snapshot(args.commit, Path(src))
            args.pythonpath = src
        compile_package(Path(src) / "aggregator" if args.commit else ROOT / "aggregator")
        run_all(args, tree, argv)


def compile_package(package: Path) -> None:
    """Byte-compile the measured ``aggregator/`` as ``pip install`` does: what users run starts
    from ``.pyc`` files. Without them (an editable install on a machine that sets
    PYTHONDONTWRITEBYTECODE, as the bench machines do) every `aggregator once` compiled ~70
    modules from source, ~0.3 s of start-up whose noise swamped the N - 1 difference."""
    import compileall

    if not compileall.compile_dir(str(package), quiet=1):
        raise SystemExit(f"cannot byte-compile {package}")


# What the measured paths run on: the same code measured 35 % apart in CPU per warm 304 on two
# days (bench/results/round2e vs round2f); record the versions so runs can be told apart.
PACKAGES = ("aiohttp", "yarl", "multidict", "SQLAlchemy", "lxml", "nh3", "feedparser", "httpx")


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "missing"
    return found


def run_all(args: argparse.Namespace, tree: str, argv: list[str] | None) -> None:
    from report import write_all

    started = time.time()
    results: dict[str, Any] = {}
    meta = {k: v for k, v in vars(args).items() if k not in ("one", "out", "pythonpath")}
    meta["aggregator"] = tree
    meta.update(history_sizes=sorted(args.history_sizes), long_sizes=sorted(args.long_sizes))
    meta.update(daemon_sizes=sorted(args.daemon_sizes), once_sizes=sorted(args.once_sizes))
    meta.update(skip=sorted(args.skip), cores=os.cpu_count(), python=sys.version)
    meta["packages"] = package_versions()
    given = argv if argv is not None else sys.argv[1:]
    meta["command"] = " ".join([".venv/bin/python bench/run.py", *given])
    headline = ""
    for n in args.sizes:
        print(f"N={n}", flush=True)
        run_size(args, n, results)
        meta["elapsed_s"] = time.time() - started
        headline = write_all(results, meta, args.out)  # after each N: a partial run still reports
    print(headline)


if __name__ == "__main__":
    main()
