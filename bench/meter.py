"""Per-phase wall time, CPU time and peak RSS of this process and its children (Linux).

Peak RSS is reset at the start of each phase (``/proc/PID/clear_refs`` with ``5`` resets
VmHWM), so a phase that follows a heavier one still reports its own peak. CPU time is
user + system of this process, of its live descendants (a process pool) and of children that
ended during the phase.
"""

from __future__ import annotations

import re
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil

_HWM = re.compile(rb"VmHWM:\s+(\d+) kB")
_RSS = re.compile(rb"VmRSS:\s+(\d+) kB")


def _status_kb(pid: int | str, pattern: re.Pattern[bytes]) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            found = pattern.search(f.read())
    except OSError:
        return 0
    return int(found.group(1)) if found else 0


def _reset_peak(pid: int | str) -> None:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # not ours to reset (or gone): its peak then covers its whole life


def rss_mb(pid: int | str = "self") -> float:
    """Current resident set size in MB."""
    return _status_kb(pid, _RSS) / 1024


def _children() -> list[psutil.Process]:
    return psutil.Process().children(recursive=True)


def _cpu_s(proc: psutil.Process) -> float:
    try:
        t = proc.cpu_times()
    except psutil.Error:
        return 0.0
    return t.user + t.system


def _own_cpu_s() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    ended = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + ended.ru_utime + ended.ru_stime


@dataclass
class Phase:
    """What one measured phase cost; filled in when its ``with`` block ends."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    rss_mb: float = 0.0
    self_rss_mb: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        own = {"wall_s": self.wall_s, "cpu_s": self.cpu_s, "rss_mb": self.rss_mb}
        return own | {"self_rss_mb": self.self_rss_mb, **self.extra}


@contextmanager
def measure() -> Iterator[Phase]:
    """Measure the block: wall, CPU (self + children), peak RSS (self + live children)."""
    phase = Phase()
    kids = {p.pid: _cpu_s(p) for p in _children()}
    for pid in ["self", *kids]:
        _reset_peak(pid)
    cpu0, t0 = _own_cpu_s(), time.perf_counter()
    yield phase
    phase.wall_s = time.perf_counter() - t0
    live = _children()
    phase.cpu_s = _own_cpu_s() - cpu0 + sum(_cpu_s(p) for p in live) - sum(kids.values())
    own_kb = _status_kb("self", _HWM)
    phase.self_rss_mb = own_kb / 1024
    phase.rss_mb = (own_kb + sum(_status_kb(p.pid, _HWM) for p in live)) / 1024


def process_peak_mb() -> float:
    """Peak RSS of this process over its whole life (ru_maxrss), for a sanity check."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def watch_tree(proc: psutil.Popen, *, every_s: float = 0.25) -> tuple[float, float]:
    """Wait for ``proc``; return (CPU s, peak RSS MB) of it and every descendant it had.

    Descendants are sampled every ``every_s`` (last CPU time and VmHWM seen per pid), since a
    pool started through a fork server is not always reaped into the parent's rusage; the
    rusage of ``wait4`` is used when it is larger.
    """
    cpu: dict[int, float] = {}
    hwm: dict[int, int] = {}
    while proc.poll() is None:
        try:
            tree = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            tree = []
        for p in tree:
            cpu[p.pid] = max(cpu.get(p.pid, 0.0), _cpu_s(p))
            hwm[p.pid] = max(hwm.get(p.pid, 0), _status_kb(p.pid, _HWM))
        time.sleep(every_s)
    ended = resource.getrusage(resource.RUSAGE_CHILDREN)  # proc is reaped by poll()
    return sum(cpu.values()), max(sum(hwm.values()), ended.ru_maxrss) / 1024
