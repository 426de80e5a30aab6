"""Errors survive pickling: parse errors come back from worker processes."""

from __future__ import annotations

import pickle

from aggregator.errors import ConfigError, FetchError, ParseError, SourceError


def test_errors_round_trip_through_pickle() -> None:
    fetch = pickle.loads(pickle.dumps(FetchError("s", "HTTP 429", status=429, retry_after_s=60.0)))
    assert (type(fetch), str(fetch), fetch.status, fetch.retry_after_s) == (
        FetchError, "s: HTTP 429", 429, 60.0,
    )  # fmt: skip
    parse = pickle.loads(pickle.dumps(ParseError("s", "not a feed")))
    assert (type(parse), parse.source_id, parse.detail) == (ParseError, "s", "not a feed")
    assert isinstance(parse, SourceError)
    config = pickle.loads(pickle.dumps(ConfigError(["a: bad", "b: worse"], path="c.toml")))
    assert config.problems == ("a: bad", "b: worse") and config.path == "c.toml"
    assert "2 problems" in str(config)
