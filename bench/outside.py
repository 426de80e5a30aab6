"""Ours measured from outside, as users run it: the `aggregator run` daemon and `aggregator once`
as subprocesses, their whole process tree read from /proc (bench only).

- ``ours_daemon``: `aggregator run` with 1 s ticks over N sources that are due every tick
  (interval 0.5 s, no jitter, the server sends no freshness headers); after the cold tick and
  ``warmup`` warm ones, the CPU of the daemon's process tree over ``ticks`` warm ticks divided
  by the polls the feed server answered in between: once with every answer a 304, then with the
  server ignoring validators (every answer a 200 with the same body).
- ``ours_once_warm``: `aggregator once` over N unchanged sources and over 1 source, both on a
  filled DB (the server answers 304), alternated ``pairs`` times; the difference leaves out
  start-up. Also whether the warm `once` rewrote any output file (it must not).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from ours import raw_config, to_toml

TICK_S = 1.0
INTERVAL_S = 0.5  # < the tick: every source is due again at every tick
# The tick's INFO line (scheduler.py); ``duration_ms`` only where the version logs it.
TICK_LINE = re.compile(
    r"tick due=(?P<due>\d+) ok=(?P<ok>\d+) not_modified=(?P<not_modified>\d+) "
    r"failed=(?P<failed>\d+).*?new=(?P<new>\d+).*?rendered=(?P<rendered>\w+)"
    r"(?: duration_ms=(?P<ms>\d+))?"
)


def exe() -> list[str]:
    """The installed console script (it honours PYTHONPATH, so ``--commit`` reaches it)."""
    return [str(Path(sys.executable).with_name("aggregator"))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_config(workdir: Path, port: int, n: int, *, serve: bool = True) -> Path:
    """A config whose N sources are due at every 1 s tick; ``[server]`` on a free port."""
    raw = raw_config(workdir, port, n)
    raw["poll"].update(interval=INTERVAL_S, min_interval=INTERVAL_S, tick=TICK_S)
    raw["server"] = {"listen": f"127.0.0.1:{free_port()}", "enabled": serve}
    # The synthetic entries are dated early 2026: the default 90 days would prune them all at
    # the daemon's first quiet tick.
    raw["retention"] = {"max_age": "3650d"}
    raw["sources"] = raw.pop("sources")  # the array of tables last
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "bench.toml"
    path.write_text(to_toml(raw), encoding="utf-8")
    return path


def server_stats(port: int) -> dict[str, int]:
    """Requests the feed server answered since its last reset, by status (and "total")."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats", timeout=60) as resp:
        got = json.load(resp)
    return {**got["status"], "total": int(got["requests"]["total"])}


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def server_post(port: int, path: str) -> None:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST")
    with urllib.request.urlopen(req, timeout=120) as resp:
        resp.read()


def outputs(workdir: Path) -> dict[str, tuple[int, int]]:
    files = (p for p in (workdir / "public").rglob("*") if p.is_file())
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in files}


def rewritten(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> int:
    return sum(1 for p, s in after.items() if before.get(p) != s)


# -- the process tree ---------------------------------------------------------------------------


def tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return [root]


def tree_cpu_s(root: psutil.Process) -> float:
    """User + system CPU of the tree, including children the root has reaped."""
    total = 0.0
    for p in tree(root):
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
        if p.pid == root.pid:
            total += t.children_user + t.children_system
    return total


def tree_memory_mb(root: psutil.Process, *, pss: bool = False) -> dict[str, float]:
    """Current RSS (and PSS, reading smaps: slower) and peak RSS (VmHWM), summed over the tree."""
    rss = hwm = pss_kb = 0.0
    for p in tree(root):
        try:
            rss += p.memory_info().rss / 1024
            hwm += _hwm_kb(p.pid)
            if pss:
                pss_kb += p.memory_full_info().pss / 1024
        except psutil.Error:
            continue
    out = {"rss_mb": rss / 1024, "hwm_mb": hwm / 1024}
    return out | ({"pss_mb": pss_kb / 1024} if pss else {})


def _hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            found = re.search(rb"VmHWM:\s+(\d+) kB", f.read())
    except OSError:
        return 0
    return int(found.group(1)) if found else 0


def reset_peaks(root: psutil.Process) -> None:
    for p in tree(root):
        try:
            with open(f"/proc/{p.pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


# -- the daemon ---------------------------------------------------------------------------------


@dataclass
class Daemon:
    """A running `aggregator run`, and the tick lines it has logged so far."""

    proc: psutil.Popen
    log: Path
    started_at: float
    ticks: list[dict[str, Any]] = field(default_factory=list)
    _offset: int = 0
    _errors: list[str] = field(default_factory=list)

    def poll_log(self) -> None:
        with self.log.open("rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1
        self._offset += end
        for line in chunk[:end].decode(errors="replace").splitlines():
            if " ERROR " in line or "Traceback" in line:
                self._errors.append(line)
            found = TICK_LINE.search(line)
            if found:
                tick: dict[str, Any] = {
                    k: int(v) for k, v in found.groupdict().items() if k != "rendered" and v
                }
                tick["rendered"] = found["rendered"] == "True"
                tick["seen_at"] = time.monotonic()
                self.ticks.append(tick)

    def wait_ticks(self, count: int, *, timeout_s: float, every_s: float = 0.02) -> None:
        """Return as soon as ``count`` tick lines have been logged in all."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.poll_log()
            if len(self.ticks) >= count:
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.ticks)} of {count} ticks after {timeout_s:.0f} s")
            time.sleep(every_s)

    def errors(self) -> list[str]:
        self.poll_log()
        return self._errors

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-600:]


@contextmanager
def daemon(config: Path, *, log: Path) -> Iterator[Daemon]:
    """`aggregator -c CONFIG run`, logging to ``log`` (a file, as the journal would take it)."""
    with log.open("wb") as out:
        proc = psutil.Popen([*exe(), "-c", str(config), "run"], stdout=out, stderr=out)
    running = Daemon(proc, log, started_at=time.monotonic())
    try:
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                for p in tree(proc):
                    p.kill()
                proc.wait()


def _window(d: Daemon, port: int, *, ticks: int, timeout_s: float) -> dict[str, Any]:
    """CPU of the tree per poll over ``ticks`` ticks, sampled as a tick line appears."""
    start = len(d.ticks)
    cpu0, polls0, t0 = tree_cpu_s(d.proc), server_stats(port), time.perf_counter()
    d.wait_ticks(start + ticks, timeout_s=timeout_s)
    cpu1, polls1, t1 = tree_cpu_s(d.proc), server_stats(port), time.perf_counter()
    seen = d.ticks[start : start + ticks]
    answered = _delta(polls1, polls0)
    polls = answered.pop("total", 0)
    durations = [t["ms"] / 1000 for t in seen if "ms" in t]
    mem = tree_memory_mb(d.proc, pss=True)
    return {
        "wall_s": t1 - t0,
        "cpu_s": cpu1 - cpu0,
        "rss_mb": mem["rss_mb"],
        "pss_mb": mem["pss_mb"],
        "entries": 0,
        "requests": polls,
        "ticks": ticks,
        "cpu_per_poll_ms": 1000 * (cpu1 - cpu0) / polls if polls else None,
        "polls_per_tick": polls / ticks,
        "server_statuses": answered,
        "due_per_tick": [t["due"] for t in seen],
        "not_modified": sum(t["not_modified"] for t in seen),
        "ok": sum(t["ok"] for t in seen),
        "failed": sum(t["failed"] for t in seen),
        "rendered_ticks": sum(t["rendered"] for t in seen),
        "tick_s_median": statistics.median(durations) if durations else None,
    }


def ours_daemon(
    *, port: int, n: int, entries: int, workdir: Path, ticks: int = 10, warmup: int = 3
) -> dict[str, object]:
    """Daemon CPU per warm poll, all 304s, then all unchanged 200s (see the module docstring)."""
    config = write_config(workdir, port, n)
    budget = 600 + n * 0.05  # seconds for the cold tick
    with daemon(config, log=workdir / "daemon.log") as d:
        d.wait_ticks(1, timeout_s=budget)
        d.wait_ticks(1 + warmup, timeout_s=budget)
        before = outputs(workdir)
        w304 = _window(d, port, ticks=ticks, timeout_s=budget)
        w304["files_rewritten"] = rewritten(before, outputs(workdir))
        server_post(port, "/_validators?on=0")
        d.wait_ticks(len(d.ticks) + 2, timeout_s=budget)
        before = outputs(workdir)
        w200 = _window(d, port, ticks=ticks, timeout_s=budget)
        w200["files_rewritten"] = rewritten(before, outputs(workdir))
        errors = d.errors()
    server_post(port, "/_validators?on=1")
    if errors:
        raise AssertionError(f"daemon logged {len(errors)} errors: {errors[:1]}")
    cold = d.ticks[0]
    if cold["ok"] < n:
        raise AssertionError(f"cold tick polled {cold['ok']} of {n} sources: {cold}")
    return {"daemon304": w304, "daemon200": w200}


# -- once ---------------------------------------------------------------------------------------


def run_tree(cmd: list[str], *, log: Path, every_s: float = 0.05) -> dict[str, Any]:
    """Run ``cmd`` to its end: exact wall time; CPU and peak RSS of its whole tree.

    A thread samples every descendant's CPU time and VmHWM (a pool started through a fork
    server is not always reaped into the parent's rusage); the rusage of ``wait4`` is taken
    when it is larger. The main thread waits, so the wall time is not rounded to a sample.
    """
    cpu: dict[int, float] = {}
    hwm: dict[int, int] = {}
    done = threading.Event()
    with log.open("ab") as out:
        t0 = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out, stderr=out)
        root = psutil.Process(child.pid)

        def sample() -> None:
            while not done.is_set():
                for p in tree(root):
                    try:
                        t = p.cpu_times()
                    except psutil.Error:
                        continue
                    cpu[p.pid] = max(cpu.get(p.pid, 0.0), t.user + t.system)
                    hwm[p.pid] = max(hwm.get(p.pid, 0), _hwm_kb(p.pid))
                done.wait(every_s)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - t0
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        done.set()
        sampler.join()
    waited = usage.ru_utime + usage.ru_stime
    return {
        "wall_s": wall,
        "cpu_s": max(sum(cpu.values()), waited),
        "rss_mb": max(sum(hwm.values()), usage.ru_maxrss) / 1024,
        "returncode": child.returncode,
    }


def _once(config: Path, workdir: Path, port: int, *, log: Path) -> dict[str, Any]:
    """One `aggregator once` as a subprocess: wall, tree CPU, peak RSS, polls, files rewritten."""
    before, polls0 = outputs(workdir), server_stats(port)
    run = run_tree([*exe(), "-c", str(config), "once"], log=log)
    lines = log.read_text(errors="replace").strip().splitlines()
    if run.pop("returncode"):
        raise AssertionError(f"aggregator once failed: {lines[-1:]}")
    answered = _delta(server_stats(port), polls0)
    return run | {
        "entries": 0,
        "requests": answered.pop("total", 0),
        "server_statuses": answered,
        "files_rewritten": rewritten(before, outputs(workdir)),
        "summary": lines[-1] if lines else "",
    }


def ours_once_warm(
    *, port: int, n: int, entries: int, workdir: Path, pairs: int = 3
) -> dict[str, object]:
    """Warm `once` over N sources minus warm `once` over 1, alternated ``pairs`` times."""
    many, one = workdir / "many", workdir / "one"
    configs = {many: write_config(many, port, n, serve=False)}
    configs[one] = write_config(one, port, 1, serve=False)
    for where, config in configs.items():  # cold: fills the DB and writes the outputs
        _once(config, where, port, log=where / "once.log")
    runs: dict[Path, list[dict[str, Any]]] = {many: [], one: []}
    for _ in range(pairs):
        for where, config in configs.items():
            time.sleep(2 * INTERVAL_S)  # every source due again
            runs[where].append(_once(config, where, port, log=where / "once.log"))
    errors = [
        x for w in configs for x in (w / "once.log").read_text().splitlines() if " ERROR " in x
    ]
    if errors:
        raise AssertionError(f"aggregator once logged {len(errors)} errors: {errors[:1]}")
    delta = {
        k: statistics.median(a[k] - b[k] for a, b in zip(runs[many], runs[one], strict=True))
        for k in ("wall_s", "cpu_s")
    }
    first = runs[many][0]
    return {
        "once_warm": _median_run(runs[many]),
        "once_warm1": _median_run(runs[one]),
        "once_warm_delta": delta
        | {
            "rss_mb": first["rss_mb"],
            "entries": 0,
            "requests": n - 1,
            "pairs": pairs,
            "polls": [r["requests"] for r in runs[many]],
            "files_rewritten": max(r["files_rewritten"] for r in runs[many]),
        },
    }


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median wall time, with every run's wall and CPU alongside."""
    ranked = sorted(runs, key=lambda r: r["wall_s"])
    mid = ranked[len(ranked) // 2]
    return mid | {"walls": [r["wall_s"] for r in runs], "cpus": [r["cpu_s"] for r in runs]}
