"""Our aggregator's scenarios, driven through its stable API only (bench only).

Each function runs in a fresh worker process against a reset server world:
- ``ours_main``: cold tick (empty DB), warm tick (all 304: must render nothing and write no
  file), a 5 % churn tick, then ``render_outputs`` over everything stored.
- ``ours_history``: the same 5 % churn tick after ``multiple`` x N x entries stored. The extra
  history comes from ``multiple - 1`` rounds in which every feed gains ``entries`` new entries
  (a whole new document each), each ingested by one untimed tick.
- ``ours_long``: a daemon run of ``ticks`` ticks (the first cold, then 5 % churn before each),
  RSS after every tick.
- ``ours_once``: ``aggregator -c bench.toml once`` as a subprocess on an empty DB.
"""

from __future__ import annotations

import json
import logging
import resource
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from meter import measure, rss_mb, watch_tree

from aggregator.config import parse_config
from aggregator.scheduler import build_scheduler
from aggregator.store import open_store

try:
    from aggregator.publish import render_outputs
except ImportError:  # measuring an aggregator/ from before the pipeline issue (#10)
    from aggregator.pipeline import render_outputs  # type: ignore[attr-defined,no-redef]

START_AT = datetime(2026, 11, 26, tzinfo=UTC)
STEP = timedelta(days=2)  # past every interval and backoff: everything is due again
FORMATS = ["atom", "rss", "json", "markdown"]


def raw_config(workdir: Path, port: int, n: int) -> dict[str, Any]:
    return {
        "storage": {"url": f"sqlite:///{workdir}/agg.db"},
        "output": {"dir": str(workdir / "public"), "formats": FORMATS, "limit": 100},
        # per_host=16: every synthetic feed is on one host.
        "poll": {
            "jitter": 0,
            "max_concurrency": 16,
            "per_host": 16,
            "min_interval": "1m",
            "interval": "30m",
        },
        "sources": [{"id": f"f{i}", "url": f"http://127.0.0.1:{port}/feed/{i}"} for i in range(n)],
    }


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def to_toml(raw: dict[str, Any]) -> str:
    """The config as TOML: tables of scalars, and ``sources`` as an array of tables."""
    lines: list[str] = []
    for name, table in raw.items():
        rows = table if isinstance(table, list) else [table]
        for row in rows:
            lines.append(f"[[{name}]]" if isinstance(table, list) else f"[{name}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in row.items()]
            lines.append("")
    return "\n".join(lines)


def server_post(port: int, path: str) -> dict[str, Any]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST")
    with urllib.request.urlopen(req, timeout=60) as resp:
        result: dict[str, Any] = json.load(resp)
    return result


def churn(port: int, *, round_: int, fraction: float = 0.05, entries: int = 2) -> int:
    got = server_post(port, f"/_churn?fraction={fraction}&round={round_}&entries={entries}")
    return int(got["changed"])


@dataclass
class Ours:
    """One aggregator (config, store, scheduler) on a fake clock, as the API documents it."""

    config: Any
    store: Any
    sched: Any
    clock: list[datetime]

    def tick(self) -> Any:
        return self.sched.tick()

    def advance(self) -> None:
        self.clock[0] += STEP


class _Errors(logging.Handler):
    """Collects ERROR records: e.g. parse workers that died make a tick degrade silently."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")


@contextmanager
def aggregator(workdir: Path, port: int, n: int) -> Iterator[Ours]:
    """Ours on a fake clock; fails the measurement if the aggregator logged an ERROR."""
    errors = _Errors()
    logging.getLogger("aggregator").addHandler(errors)
    config = parse_config(raw_config(workdir, port, n), path=workdir / "bench.toml")
    store = open_store(config.storage.url)
    clock = [START_AT]
    sched = build_scheduler(config, store, clock=lambda: clock[0])
    sched.start()
    try:
        yield Ours(config, store, sched, clock)
    finally:
        sched.close()
        store.close()
    _expect(
        not errors.messages,
        f"aggregator logged {len(errors.messages)} errors: {errors.messages[:1]}",
    )


def summarise(report: Any) -> dict[str, Any]:
    """Counts of a TickReport: statuses and entries new / updated / duplicate."""
    outcomes = report.outcomes
    return {
        "due": report.due,
        "statuses": dict(Counter(o.status for o in outcomes)),
        "new": sum(o.result.new for o in outcomes),
        "updated": sum(o.result.updated for o in outcomes),
        "duplicate": sum(o.result.duplicate for o in outcomes),
        "rendered": report.rendered,
    }


def _outputs(workdir: Path) -> dict[str, tuple[int, int]]:
    files = (p for p in (workdir / "public").rglob("*") if p.is_file())
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in files}


def _measured_tick(ours: Ours, *, requests: int) -> tuple[dict[str, Any], dict[str, Any]]:
    with measure() as phase:
        report = ours.tick()
    counts = summarise(report)
    phase.extra = {"entries": counts["new"] + counts["updated"], "requests": requests, **counts}
    return phase.as_dict(), counts


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise AssertionError(what)


def ours_main(*, port: int, n: int, entries: int, workdir: Path) -> dict[str, object]:
    with aggregator(workdir, port, n) as ours:
        cold, counts = _measured_tick(ours, requests=n)
        _expect(counts["new"] >= 0.95 * n * entries, f"cold tick stored too little: {counts}")
        stored = counts["new"]
        ours.advance()
        before = _outputs(workdir)
        warm, counts = _measured_tick(ours, requests=n)
        rewritten = sum(1 for p, s in _outputs(workdir).items() if before.get(p) != s)
        warm.update(files_rewritten=rewritten, zero_work=not counts["rendered"] and not rewritten)
        _expect(counts["statuses"] == {"not_modified": n}, f"warm tick not all 304: {counts}")
        changed = churn(port, round_=1)
        ours.advance()
        churned, counts = _measured_tick(ours, requests=n)
        churned["feeds_changed"] = changed
        stored += counts["new"]
        render = _measured_render(ours, workdir, stored=stored, fresh=True)
        again = _measured_render(ours, workdir, stored=stored, fresh=False)
    return {"cold": cold, "warm": warm, "churn": churned, "render": render, "rerender": again}


def _measured_render(ours: Ours, workdir: Path, *, stored: int, fresh: bool) -> dict[str, Any]:
    """``render_outputs`` from the DB alone; ``fresh`` removes the files first (all written)."""
    if fresh:
        for path in _outputs(workdir):
            Path(path).unlink()
    with measure() as phase:
        reports = render_outputs(ours.config, ours.store)
    written = sum(len(r.written) for r in reports)
    phase.extra = {"entries": stored, "stored": stored, "files_written": written}
    return phase.as_dict()


def ours_history(
    *, port: int, n: int, entries: int, workdir: Path, multiple: int
) -> dict[str, object]:
    """One 5 % churn tick after ``multiple`` x N x entries stored."""
    with aggregator(workdir, port, n) as ours:
        stored = summarise(ours.tick())["new"]
        for r in range(multiple - 1):
            churn(port, round_=1000 + r, fraction=1.0, entries=entries)
            ours.advance()
            stored += summarise(ours.tick())["new"]
        churn(port, round_=100)
        ours.advance()
        phase, _ = _measured_tick(ours, requests=n)
    phase["stored_before"] = stored
    return {"churn": phase}


def ours_long(*, port: int, n: int, entries: int, workdir: Path, ticks: int) -> dict[str, object]:
    """``ticks`` ticks, 5 % churn before each but the first; RSS (MB) after each."""
    rss: list[float] = []
    walls: list[float] = []
    with aggregator(workdir, port, n) as ours, measure() as whole:
        for t in range(ticks):
            if t:
                churn(port, round_=200 + t)
                ours.advance()
            t0 = time.perf_counter()
            ours.tick()
            walls.append(time.perf_counter() - t0)
            rss.append(rss_mb())
    base = rss[min(4, len(rss) - 1)]
    whole.extra = {
        "entries": 0,
        "ticks": ticks,
        "rss_after_tick_mb": rss,
        "tick_wall_s": walls,
        "growth_pct_5_to_last": 100 * (rss[-1] - base) / base,
    }
    return {"long": whole.as_dict()}


def _ended_children_cpu_s() -> float:
    ended = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ended.ru_utime + ended.ru_stime


def ours_once(*, port: int, n: int, entries: int, workdir: Path) -> dict[str, object]:
    """``aggregator -c bench.toml once`` on an empty DB, as a subprocess (its own rusage)."""
    toml = workdir / "bench.toml"
    toml.write_text(to_toml(raw_config(workdir, port, n)), encoding="utf-8")
    exe = Path(sys.executable).with_name("aggregator")
    before = _ended_children_cpu_s()
    with (workdir / "once.log").open("wb") as log:
        t0 = time.perf_counter()
        proc = psutil.Popen([str(exe), "-c", str(toml), "once"], stdout=log, stderr=log)
        sampled_cpu, peak_mb = watch_tree(proc)
        wall = time.perf_counter() - t0
    cpu = max(sampled_cpu, _ended_children_cpu_s() - before)
    lines = (workdir / "once.log").read_text(errors="replace").strip().splitlines()
    tail = lines[-1:]
    _expect(proc.returncode == 0, f"aggregator once exited {proc.returncode}: {tail}")
    errors = [line for line in lines if " ERROR " in line]
    _expect(not errors, f"aggregator once logged {len(errors)} errors: {errors[:1]}")
    return {
        "once": {
            "wall_s": wall,
            "cpu_s": cpu,
            "rss_mb": peak_mb,
            "entries": n * entries,
            "summary": tail[0] if tail else "",
        }
    }
