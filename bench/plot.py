"""bench/results/bench.png: wall time per scenario and N (ours / floor / reader), RSS per tick."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

PANELS = [
    ("Cold ingest", "ours.cold", "floor.cold", "peer.cold"),
    ("Warm tick (all 304)", "ours.warm", "floor.aiohttp.warm", "peer.warm"),
    ("Tick after 5 % churn", "ours.churn", "floor.aiohttp.warm", None),
    ("Render, 4 formats (limit 100)", "ours.render", None, None),
]
SERIES = (("ours", "tab:blue"), ("floor", "tab:gray"), ("reader", "tab:orange"))


def _bars(ax: Axes, summary: dict[str, Any], keys: tuple[str, str | None, str | None]) -> None:
    sizes = list(summary)
    width = 0.27
    present = [(series, key) for series, key in zip(SERIES, keys, strict=True) if key]
    for j, ((label, color), key) in enumerate(present):
        values = [summary[n].get(key, {}).get("wall_med", 0.0) for n in sizes]
        xs = [i + (j - (len(present) - 1) / 2) * width for i in range(len(sizes))]
        ax.bar(xs, values, width, label=label, color=color)
        for x, v in zip(xs, values, strict=True):
            if v:
                ax.text(x, v, f"{v:.2g}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(sizes)), [f"N={int(n):,}" for n in sizes])
    ax.set_yscale("log")
    ax.set_ylabel("wall s (median)")
    ax.legend(fontsize=8)


def _rss(ax: Axes, results: dict[str, Any]) -> None:
    for n, measured in results.items():
        for run in measured.get("ours.long", []):
            rss = run["rss_after_tick_mb"]
            ax.plot(range(1, len(rss) + 1), rss, marker=".", label=f"N={int(n):,}")
    ax.set_title("Long run: RSS of ours' main process after each tick")
    ax.set_xlabel("tick (1 = cold, then 5 % churn each)")
    ax.set_ylabel("RSS MB")
    ax.axvline(5, color="gray", linestyle=":", linewidth=1)
    if ax.lines[:-1]:
        ax.legend(fontsize=8)


def _ratios(ax: Axes, summary: dict[str, Any]) -> None:
    """Ours / floor and ours / reader (median wall) per scenario and N; 1 = the same time."""
    pairs = [
        ("cold / floor", "ours.cold", "floor.cold"),
        ("warm / floor", "ours.warm", "floor.aiohttp.warm"),
        ("cold / reader", "ours.cold", "peer.cold"),
        ("warm / reader", "ours.warm", "peer.warm"),
    ]
    sizes = list(summary)
    width = 0.8 / len(sizes)
    for j, n in enumerate(sizes):
        stats = summary[n]
        values = [
            stats[a]["wall_med"] / stats[b]["wall_med"] if a in stats and b in stats else 0.0
            for _, a, b in pairs
        ]
        xs = [i + (j - (len(sizes) - 1) / 2) * width for i in range(len(pairs))]
        ax.bar(xs, values, width, label=f"N={int(n):,}")
        for x, v in zip(xs, values, strict=True):
            if v:
                ax.text(x, v, f"{v:.2g}", ha="center", va="bottom", fontsize=7)
    ax.axhline(1, color="black", linewidth=0.8)
    ax.set_xticks(range(len(pairs)), [p[0] for p in pairs])
    ax.set_yscale("log")
    ax.set_title("Ours / theirs (median wall; below 1 = ours faster)")
    ax.legend(fontsize=8)


def plot(summary: dict[str, Any], results: dict[str, Any], path: Path) -> None:
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    flat = list(axes.flat)
    for ax, (title, *keys) in zip(flat, PANELS, strict=False):
        _bars(ax, summary, (keys[0], keys[1], keys[2]))
        ax.set_title(title)
    _rss(flat[4], results)
    _ratios(flat[5], summary)
    fig.suptitle("aggregator benchmark: ours vs floor vs reader (log scale, lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
