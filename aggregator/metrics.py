"""Prometheus metrics for the daemon, on a registry of their own (no module-level singletons).

Polls are counted in batches (``observe_polls``): the scheduler hands over its outcomes every
``Scheduler.METRICS_BATCH`` polls and at the end of a tick, so a warm poll does not take
prometheus_client's locks four times (issue #16: that was 3 % of a 304's CPU).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from .types import PollOutcome

FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Durations(Collector):
    """A histogram fed many observations at a time (prometheus_client's ``Histogram`` takes
    one per call, under a lock each time); exposed through the public collector API."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name, self.documentation = name, documentation
        self.bounds = tuple(float(b) for b in buckets)
        self._counts = [0] * (len(self.bounds) + 1)  # the last: above every bound (+Inf)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe_many(self, values: Sequence[float]) -> None:
        bounds, spread = self.bounds, [0] * (len(self.bounds) + 1)
        for value in values:
            spread[bisect_left(bounds, value)] += 1  # a value on a bound counts in its bucket
        total = sum(values)
        with self._lock:
            for i, n in enumerate(spread):
                self._counts[i] += n
            self._sum += total

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, buckets = 0, []
        for bound, n in zip((*map(str, self.bounds), "+Inf"), counts, strict=True):
            cumulative += n
            buckets.append((bound, float(cumulative)))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets,
                                    sum_value=total)  # fmt: skip


class Metrics:
    """The daemon's metrics; build one in ``cli`` and pass it to the scheduler and the server."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.polls = Counter("aggregator_polls", "Polls by outcome status", ["status"], registry=r)
        self.entries = Counter(
            "aggregator_entries", "Entries stored by action", ["action"], registry=r
        )
        self.fetch_seconds = Durations(
            "aggregator_fetch_seconds",
            "Time to poll one source (fetch, parse, store)",
            FETCH_BUCKETS,
        )
        r.register(self.fetch_seconds)
        self.sources_failing = Gauge(
            "aggregator_sources_failing", "Sources whose last poll failed", registry=r
        )
        self.last_render = Gauge(
            "aggregator_last_render_timestamp_seconds",
            "Unix time of the last successful render",
            registry=r,
        )
        self.last_tick = Gauge(
            "aggregator_last_tick_timestamp_seconds", "Unix time the last tick finished", registry=r
        )
        self.ticks = Counter("aggregator_ticks", "Scheduler ticks run", registry=r)
        # Every series exists from the start; the children are kept (``labels`` looks its
        # argument up under a lock, per poll otherwise).
        self._polls = {
            s: self.polls.labels(s) for s in ("ok", "not_modified", "failed", "gone", "deferred")
        }
        self._entries = {a: self.entries.labels(a) for a in ("new", "updated", "duplicate")}

    def observe_polls(self, outcomes: Sequence[PollOutcome]) -> None:
        """Count ``outcomes``: polls by status, entries by action, each poll's duration."""
        for status, n in Tally(o.status for o in outcomes).items():
            (self._polls.get(status) or self.polls.labels(status)).inc(n)
        for action in ("new", "updated", "duplicate"):
            count = sum(getattr(o.result, action) for o in outcomes)
            if count:
                self._entries[action].inc(count)
        self.fetch_seconds.observe_many([o.duration_s for o in outcomes])
