"""Prometheus metrics for the daemon, on a registry of their own (no module-level singletons)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .types import PollOutcome


class Metrics:
    """The daemon's metrics; build one in ``cli`` and pass it to the scheduler and the server."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.polls = Counter("aggregator_polls", "Polls by outcome status", ["status"], registry=r)
        self.entries = Counter(
            "aggregator_entries", "Entries stored by action", ["action"], registry=r
        )
        self.fetch_seconds = Histogram(
            "aggregator_fetch_seconds",
            "Time to poll one source (fetch, parse, store)",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
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

    def observe_poll(self, outcome: PollOutcome) -> None:
        polls = self._polls.get(outcome.status) or self.polls.labels(outcome.status)
        polls.inc()
        result = outcome.result
        for action, count in (("new", result.new), ("updated", result.updated),
                              ("duplicate", result.duplicate)):  # fmt: skip
            if count:
                self._entries[action].inc(count)
        self.fetch_seconds.observe(outcome.duration_s)
