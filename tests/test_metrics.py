"""/metrics: polls counted in batches say what counting them one by one said (issue #16)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from aggregator.metrics import FETCH_BUCKETS, Durations, Metrics
from aggregator.types import PollOutcome, StoreResult


def samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, tuple[str, ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value  # type: ignore[misc]
        for metric in registry.collect()
        if metric.name == name
        for s in metric.samples
    }


def test_durations_equal_prometheus_histogram() -> None:
    values = [0.0, 0.01, 0.05, 0.05000001, 0.1, 0.3, 1.0, 2.5, 7.0, 59.9, 60.0, 61.0, 3600.0]
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    durations = Durations("x_seconds", "doc", FETCH_BUCKETS)
    ours.register(durations)
    histogram = Histogram("x_seconds", "doc", buckets=FETCH_BUCKETS, registry=theirs)
    durations.observe_many(values[:5])
    durations.observe_many(values[5:])
    for value in values:
        histogram.observe(value)
    want = {k: v for k, v in samples(theirs, "x_seconds").items() if k[0] != "x_seconds_created"}
    got = samples(ours, "x_seconds")
    key = ("x_seconds_sum", ())
    assert got.pop(key) == pytest.approx(want.pop(key))  # (added in another order)
    assert got == want


def test_polls_counted_in_batches_reach_the_exposition() -> None:
    metrics = Metrics()
    outcomes = [
        PollOutcome("a", "ok", 200, StoreResult(new=3, duplicate=1), duration_s=0.2),
        PollOutcome("b", "not_modified", 304, duration_s=0.01),
        PollOutcome("c", "not_modified", 304, duration_s=0.02),
        PollOutcome("d", "failed", 500, error="x", duration_s=3.0),
    ]
    metrics.observe_polls(outcomes[:1])
    metrics.observe_polls(outcomes[1:])
    text = generate_latest(metrics.registry).decode()
    assert 'aggregator_polls_total{status="not_modified"} 2.0' in text
    assert 'aggregator_polls_total{status="ok"} 1.0' in text
    assert 'aggregator_polls_total{status="failed"} 1.0' in text
    assert 'aggregator_entries_total{action="new"} 3.0' in text
    assert 'aggregator_entries_total{action="duplicate"} 1.0' in text
    assert 'aggregator_fetch_seconds_bucket{le="0.05"} 2.0' in text
    assert 'aggregator_fetch_seconds_bucket{le="+Inf"} 4.0' in text
    assert "aggregator_fetch_seconds_count 4.0" in text
