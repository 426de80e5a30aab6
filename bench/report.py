"""Turn the benchmark's raw repetitions into results.json, results.md and bench.png (bench only)."""

from __future__ import annotations

import functools
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from targets import composite_cold, stat, target_rows, verdicts

# (label, measurement) rows of each scenario's table; the table's floor and peer references.
COLD = [
    ("ours: tick, in process", "ours.cold"),
    ("ours: `aggregator once`, subprocess", "ours.once"),
    ("floor: fetch + parse/cores + insert", "floor.cold"),
    ("floor: aiohttp GET (16 conn.)", "floor.aiohttp.cold"),
    ("floor: aiohttp GET on uvloop", "floor.aiohttp_uvloop.cold"),
    ("floor: httpx GET (16 conn.)", "floor.httpx.cold"),
    ("floor: httpx over httpx-aiohttp", "floor.httpx_aiohttp.cold"),
    ("floor: parse, one core", "floor.parse"),
    ("floor: SQLAlchemy Core insert", "floor.insert"),
    ("peer: reader update_feeds (cold)", "peer.cold"),
]
WARM = [
    ("ours: tick, all 304", "ours.warm"),
    ("floor: aiohttp conditional GET", "floor.aiohttp.warm"),
    ("floor: aiohttp conditional GET on uvloop", "floor.aiohttp_uvloop.warm"),
    ("floor: httpx conditional GET", "floor.httpx.warm"),
    ("floor: httpx over httpx-aiohttp", "floor.httpx_aiohttp.warm"),
    ("peer: reader update_feeds (warm)", "peer.warm"),
]
CHURN = [
    ("ours: tick after 5 % churn", "ours.churn"),
    ("ours: same, 1x history stored", "ours.history1x.churn"),
    ("ours: same, 2x history stored", "ours.history2x.churn"),
    ("floor: aiohttp conditional GET", "floor.aiohttp.warm"),
]
SCENARIOS = [
    ("Cold ingest (empty DB)", COLD, "floor.cold", "peer.cold"),
    ("Warm tick, nothing changed (all 304)", WARM, "floor.aiohttp.warm", "peer.warm"),
    ("Tick after 5 % churn", CHURN, "floor.aiohttp.warm", None),
]
HEADER = (
    "| measurement | reps | wall min s | wall median s | CPU median s | peak RSS MB "
    "| throughput | × floor | × reader |\n|---|---|---|---|---|---|---|---|---|"
)


def _num(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "—"
    return f"{x:.{digits}f}" if abs(x) < 100 else f"{x:,.0f}"


def _ratio(ours: dict[str, Any] | None, other: dict[str, Any] | None) -> float | None:
    if not ours or not other or not other["wall_med"]:
        return None
    return float(ours["wall_med"] / other["wall_med"])


def summarise(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per N: every measurement's min/median, plus the composite cold floor."""
    out: dict[str, dict[str, Any]] = {}
    for n, measured in results.items():
        stats = {k: stat(v) for k, v in measured.items() if k != "errors"}
        cold = composite_cold(stats)
        if cold:
            stats["floor.cold"] = cold
        out[n] = stats
    return out


def _throughput(s: dict[str, Any]) -> str:
    if s.get("entries"):
        return f"{s['entries'] / s['wall_med']:,.0f} entries/s"
    if s.get("requests"):
        return f"{s['requests'] / s['wall_med']:,.0f} req/s"
    return "—"


def scenario_table(
    stats: dict[str, Any],
    rows: Sequence[tuple[str, str]],
    floor_key: str,
    peer_key: str | None,
) -> str:
    lines = [HEADER]
    floor, peer = stats.get(floor_key), stats.get(peer_key) if peer_key else None
    for label, key in rows:
        s = stats.get(key)
        if s is None:
            continue
        ours = key.startswith("ours.")
        lines.append(
            f"| {label} | {s['reps']} | {_num(s['wall_min'])} | {_num(s['wall_med'])} "
            f"| {_num(s['cpu_med'])} | {_num(s['rss_med'], 0)} | {_throughput(s)} "
            f"| {_num(_ratio(s, floor), 2) if ours else ''} "
            f"| {_num(_ratio(s, peer), 2) if ours else ''} |"
        )
    return "\n".join(lines)


def render_table(summary: dict[str, dict[str, Any]], results: dict[str, Any]) -> str:
    lines = [
        "| N | stored entries | wall min s | wall median s | CPU median s | % of cold tick "
        "| files written | warm tick: rendered / files rewritten |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, stats in summary.items():
        r, cold = stats.get("ours.render"), stats.get("ours.cold")
        if not r or not cold:
            continue
        warm = results[n].get("ours.warm", [])
        zero = ", ".join(f"{w['rendered']} / {w['files_rewritten']}" for w in warm)
        pct = 100 * r["wall_med"] / cold["wall_med"]
        written = statistics.median(x["files_written"] for x in results[n]["ours.render"])
        lines.append(
            f"| {n} | {r['entries']:,} | {_num(r['wall_min'])} | {_num(r['wall_med'])} "
            f"| {_num(r['cpu_med'])} | {pct:.2f} % | {written:.0f} | {zero} |"
        )
    return "\n".join(lines)


def long_table(results: dict[str, Any]) -> str:
    lines = [
        "| N | ticks | main RSS after tick 1 MB | tick 5 MB | last tick MB | growth 5→last "
        "| peak RSS MB (with workers) | median tick s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, measured in results.items():
        for run in measured.get("ours.long", []):
            rss = run["rss_after_tick_mb"]
            lines.append(
                f"| {n} | {run['ticks']} | {rss[0]:.0f} | {rss[min(4, len(rss) - 1)]:.0f} "
                f"| {rss[-1]:.0f} | {run['growth_pct_5_to_last']:+.1f} % | {run['rss_mb']:.0f} "
                f"| {statistics.median(run['tick_wall_s']):.3f} |"
            )
    return "\n".join(lines)


def _at(xs: list[dict[str, Any]], key: str, *, rep: int) -> Any:
    return xs[rep].get(key) if rep < len(xs) else None


def outside_table(results: dict[str, Any]) -> str:
    """Issue #16: every repetition of the daemon's CPU per warm poll and of the warm `once`."""
    lines = [
        "| N | rep | daemon ms CPU / poll, 304 | same, unchanged 200 | aiohttp ms CPU / 304 "
        "| aiohttp / 200 | ratio 304 | ratio 200 | polls per tick | warm `once` N − 1: wall s "
        "| CPU s | aiohttp warm pass: wall s | CPU s | `once` files rewritten |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, m in results.items():
        d304, d200 = m.get("ours.daemon304", []), m.get("ours.daemon200", [])
        f304, f200 = m.get("floor.aiohttp.polls304", []), m.get("floor.aiohttp.polls200", [])
        once, warm = m.get("ours.once_warm_delta", []), m.get("floor.aiohttp.warm", [])
        for rep in range(max(len(d304), len(once))):
            at = functools.partial(_at, rep=rep)
            ours304, ours200 = at(d304, "cpu_per_poll_ms"), at(d200, "cpu_per_poll_ms")
            fl304, fl200 = at(f304, "cpu_per_request_ms"), at(f200, "cpu_per_request_ms")
            r304 = ours304 / fl304 if ours304 and fl304 else None
            r200 = ours200 / fl304 if ours200 and fl304 else None
            lines.append(
                f"| {n} | {rep + 1} | {_num(ours304)} | {_num(ours200)} | {_num(fl304)} "
                f"| {_num(fl200)} | {_num(r304, 2)} | {_num(r200, 2)} "
                f"| {_num(at(d304, 'polls_per_tick'), 0)} | {_num(at(once, 'wall_s'))} "
                f"| {_num(at(once, 'cpu_s'))} | {_num(at(warm, 'wall_s'))} "
                f"| {_num(at(warm, 'cpu_s'))} | {at(once, 'files_rewritten')} |"
            )
    return "\n".join(lines)


def scale_table(results: dict[str, Any]) -> str:
    """bench/scale.py: the cold ingest, the warm ticks and memory of one daemon over N sources."""
    lines = [
        "| N | cold ingest s (ticks) | cold peak RSS MB | warm tick median s | aiohttp warm pass s "
        "(before, after) | warm peak RSS MB | peak PSS MB | RSS tick 1 → 5 → last MB "
        "| DB MB per 1,000 entries | entries stored |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, m in results.items():
        cold, long = m.get("ours.scale.cold"), m.get("ours.scale.long")
        if not cold or not long or "db_entries" not in long[0]:
            continue
        c, r = cold[0], long[0]
        rss, floors = r["rss_after_tick_mb"], [f["wall_s"] for f in m.get("floor.aiohttp.warm", [])]
        lines.append(
            f"| {n} | {c['wall_s']:.1f} ({c['ticks']}) | {c['rss_mb']:.0f} "
            f"| {statistics.median(r['tick_wall_s']):.2f} "
            f"| {', '.join(f'{x:.2f}' for x in floors)} | {r['peak_rss_warm_mb']:.0f} "
            f"| {r['peak_pss_mb']:.0f} | {rss[0]:.0f} → {rss[min(4, len(rss) - 1)]:.0f} "
            f"→ {rss[-1]:.0f} | {_num(r['db_mb_per_1000_entries'])} | {r['db_entries']:,} |"
        )
    return "\n".join(lines)


def headline(summary: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| N | scenario | ours median s | floor median s | reader median s | ours / floor "
        "| ours / reader | ours peak RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, stats in summary.items():
        for name, ours_key, floor_key, peer_key in (
            ("cold ingest", "ours.cold", "floor.cold", "peer.cold"),
            ("warm tick (304)", "ours.warm", "floor.aiohttp.warm", "peer.warm"),
            ("5 % churn tick", "ours.churn", "floor.aiohttp.warm", ""),
            ("render (4 formats)", "ours.render", "", ""),
        ):
            ours, floor, peer = stats.get(ours_key), stats.get(floor_key), stats.get(peer_key)
            if not ours:
                continue
            lines.append(
                f"| {n} | {name} | {_num(ours['wall_med'])} "
                f"| {_num(floor['wall_med']) if floor else '—'} "
                f"| {_num(peer['wall_med']) if peer else '—'} | {_num(_ratio(ours, floor), 2)} "
                f"| {_num(_ratio(ours, peer), 2)} | {_num(ours['rss_med'], 0)} |"
            )
    return "\n".join(lines)


def markdown(results: dict[str, Any], meta: dict[str, Any]) -> str:
    summary = summarise(results)
    parts = [
        "# Benchmark results\n",
        f"Aggregator measured: {meta.get('aggregator', 'working tree')}.\n",
        *[f"Note: {note}\n" for note in meta.get("notes", [])],
        *(
            ["Packages: " + ", ".join(f"{k} {v}" for k, v in meta["packages"].items()) + ".\n"]
            if meta.get("packages")
            else []
        ),
        f"Command: `{meta['command']}`; {meta['cores']} cores; {meta['entries']} entries per feed "
        f"of ~{meta['entry_bytes']} bytes of HTML; reps {meta['reps']} "
        f"(at N ≥ {meta['large_from']:,}: {meta['large_reps']}); skipped: "
        f"{', '.join(meta.get('skip') or ['nothing'])}; took {meta['elapsed_s'] / 60:.1f} min. "
        "Times are wall seconds; '× floor' and '× reader' are ours / theirs (median wall): "
        "below 1 is faster. The 'reps' column gives the repetitions behind each number.\n",
        "## Headline\n",
        headline(summary),
        "\n## Targets\n",
        target_rows(summary, results),
    ]
    for n, stats in summary.items():
        parts.append(f"\n## N = {int(n):,} sources\n")
        for title, rows, floor_key, peer_key in SCENARIOS:
            parts += [f"### {title}\n", scenario_table(stats, rows, floor_key, peer_key), ""]
        errors = results[n].get("errors") or []
        parts += [f"Errors: {'; '.join(errors)}\n" if errors else ""]
    parts += ["\n## Render of the merged outputs (limit 100, 4 formats)\n"]
    parts += [render_table(summary, results), "\n## Long daemon run\n", long_table(results)]
    parts += ["\n## Measured from outside: `aggregator run` and `aggregator once` (issue #16)\n"]
    parts += [outside_table(results), "\n## One node (bench/scale.py)\n", scale_table(results)]
    return "\n".join(parts) + "\n"


def write_all(results: dict[str, Any], meta: dict[str, Any], out: Path) -> str:
    """Write results.json, results.md and bench.png into ``out``; return the headline."""
    from plot import plot

    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(results)
    targets = verdicts(summary, results)
    raw = {"meta": meta, "targets": targets, "summary": summary, "raw": results}
    (out / "results.json").write_text(json.dumps(raw, indent=1, default=str), encoding="utf-8")
    (out / "results.md").write_text(markdown(results, meta), encoding="utf-8")
    plot(summary, results, out / "bench.png")
    return "\n".join([headline(summary), "", target_rows(summary, results)])


def main() -> None:
    """Rewrite results.md and bench.png from a results.json: ``python bench/report.py [PATH]``."""
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results"
    path = path / "results.json" if path.is_dir() else path
    data = json.loads(path.read_text(encoding="utf-8"))
    print(write_all(data["raw"], data["meta"], path.parent))


if __name__ == "__main__":
    main()
