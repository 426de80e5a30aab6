from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.config import load_config, parse_config
from aggregator.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "aggregator.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_config_is_valid_and_offline() -> None:
    config = load_config(ROOT / "config" / "aggregator.toml")
    assert len(config.sources) >= 13
    assert all(s.fixture is not None and s.fixture.exists() for s in config.sources)
    assert [o.name for o in config.outputs] == ["all"]
    assert config.storage.url.startswith("sqlite:////")  # made absolute
    assert config.output.dir.is_absolute()


def test_minimal_config_from_the_issue(tmp_path: Path) -> None:
    (tmp_path / "seeds" / "huxiu").mkdir(parents=True)
    path = write(
        tmp_path,
        """
[storage]
url = "sqlite:///state/aggregator.db"
[output]
dir = "public"
title = "Merged feed"
base_url = "http://127.0.0.1:8080/"
[[sources]]
id = "huxiu"
url = "https://www.huxiu.com/rss/0.xml"
title = "虎嗅 - 首页资讯"
group = "新媒体"
fixture = "seeds/huxiu/"
""",
    )
    config = load_config(path)
    assert config.storage.url == f"sqlite:///{tmp_path}/state/aggregator.db"
    assert config.output.dir == tmp_path / "public"
    (source,) = config.sources
    assert (source.id, source.title, source.group) == ("huxiu", "虎嗅 - 首页资讯", "新媒体")
    assert source.fixture == tmp_path / "seeds" / "huxiu"
    (output,) = config.outputs
    assert (output.name, output.formats, output.limit) == ("all", ("atom", "rss", "json"), 100)


def test_every_problem_is_listed_with_its_key_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
colour = "blue"
[storage]
url = 5
[output]
base_url = "ftp://x/"
limit = 0
[[sources]]
id = "Bad Id"
url = "file:///etc/passwd"
fixture = "missing.xml"
extra = 1
[[sources]]
id = "a"
url = "https://a.example/feed"
[[sources]]
id = "a"
url = "https://b.example/feed"
[[sources]]
url = "https://c.example/feed"
[[outputs]]
name = "x"
formats = ["atom", "pdf"]
sources = ["nope"]
""",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = "\n".join(info.value.problems)
    for expected in (
        "colour: unknown key",
        "storage.url: must be an SQLAlchemy URL",
        "output.base_url: must be an http(s) URL",
        "output.limit: must be a positive integer",
        "sources[0].id: must match",
        "sources[0].url: must be an http(s) URL",
        "sources[0].fixture: no such file or directory",
        "sources[0].extra: unknown key",
        "sources[2].id: duplicate id 'a' (also sources[1])",
        "sources[3].id: is required",
        "outputs[0].formats: unknown formats ['pdf']",
        "outputs[0].sources: unknown source id 'nope'",
    ):
        assert expected in problems
    assert len(info.value.problems) == 12


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[storage\n"))
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_outputs_select_groups_and_sources(tmp_path: Path) -> None:
    config = parse_config(
        {
            "sources": [
                {"id": "a", "url": "https://a.example/", "group": "g1"},
                {"id": "b", "url": "https://b.example/", "group": "g2"},
                {"id": "c", "url": "https://c.example/"},
            ],
            "outputs": [
                {"name": "g1", "title": "G1", "groups": ["g1"], "formats": ["json"], "limit": 5},
                {"name": "pick", "sources": ["c", "b"]},
            ],
        },
        path=tmp_path / "x.toml",
    )
    g1, pick = config.outputs
    assert [s.id for s in config.sources if g1.selects(s)] == ["a"]
    assert [s.id for s in config.sources if pick.selects(s)] == ["b", "c"]
    assert (g1.formats, g1.limit, pick.title) == (("json",), 5, "Merged feed")


def test_output_dir_must_be_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"output.dir: not a writable directory"):
        parse_config({"output": {"dir": "file/public"}}, path=tmp_path / "c.toml")


def test_poll_and_server_settings(tmp_path: Path) -> None:
    config = parse_config(
        {
            "poll": {"interval": "1h", "min_interval": 60, "max_interval": "2d", "jitter": 0.2,
                     "tick": "15s", "per_host": 3, "timeout": "1m30s"},
            "server": {"listen": "0.0.0.0:9090"},
            "storage": {"keep_removed": False},
            "sources": [{"id": "a", "url": "https://a.example/", "interval": "10m"}],
        },
        path=tmp_path / "c.toml",
    )  # fmt: skip
    poll = config.poll
    assert (poll.interval_s, poll.min_interval_s, poll.max_interval_s) == (3600, 60, 172800)
    assert (poll.jitter, poll.tick_s, poll.per_host, poll.timeout_s) == (0.2, 15, 3, 90)
    assert (config.server.host, config.server.port) == ("0.0.0.0", 9090)
    assert config.sources[0].interval_s == 600 and config.storage.keep_removed is False
    defaults = parse_config({}, path=tmp_path / "c.toml")
    assert defaults.poll.interval_s == 1800 and defaults.poll.per_host == 2
    assert (defaults.server.host, defaults.server.port) == ("127.0.0.1", 8080)


def test_bad_poll_and_server_settings_are_listed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            {
                "poll": {
                    "interval": "soon",
                    "jitter": 2,
                    "min_interval": "2h",
                    "max_interval": "1h",
                },
                "server": {"listen": "localhost"},
                "sources": [{"id": "a", "url": "https://a.example/", "interval": "1s"}],
            },
            path=tmp_path / "c.toml",
        )
    problems = "\n".join(info.value.problems)
    assert "poll.interval: must be a positive duration" in problems
    assert "poll.jitter: must be a number from 0 to 1" in problems
    assert "poll.interval: must satisfy min_interval <= interval <= max_interval" in problems
    assert 'server.listen: must be "host:port"' in problems
    assert "sources[0].interval: must be within [poll] min_interval..max_interval" in problems


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("1h30m", 5400),
        ("1d", 86400),
        ("250ms", 0.25),
        (45, 45),
        ("2 h", 7200),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    from aggregator.config import parse_duration

    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "1x", "h", "-5s", 0, True, "1h junk"])
def test_bad_durations(bad: object) -> None:
    from aggregator.config import parse_duration

    assert parse_duration(bad) is None


def test_base_url_defaults_to_the_served_address(tmp_path: Path) -> None:
    config = parse_config({"server": {"listen": "127.0.0.1:9999"}}, path=tmp_path / "c.toml")
    assert config.output.base_url == "http://127.0.0.1:9999/"
    explicit = parse_config(
        {"server": {"listen": "127.0.0.1:9999"}, "output": {"base_url": "https://feeds.example/x"}},
        path=tmp_path / "c.toml",
    )
    assert explicit.output.base_url == "https://feeds.example/x/"


def test_parse_workers(tmp_path: Path) -> None:
    assert parse_config({}, path=tmp_path / "c.toml").poll.parse_workers == 0
    assert (
        parse_config({"poll": {"parse_workers": 1}}, path=tmp_path / "c.toml").poll.parse_workers
        == 1
    )
    with pytest.raises(ConfigError, match=r"poll\.parse_workers: must be a whole number"):
        parse_config({"poll": {"parse_workers": -1}}, path=tmp_path / "c.toml")


def test_request_and_tick_time_limits(tmp_path: Path) -> None:
    poll = parse_config({}, path=tmp_path / "c.toml").poll
    assert (poll.timeout_s, poll.connect_timeout_s, poll.read_timeout_s) == (30.0, 10.0, 20.0)
    assert poll.tick_deadline_s == 300.0
    raw = {"poll": {"tick_deadline": "90s", "timeout": "20s"}}
    poll = parse_config(raw, path=tmp_path / "c.toml").poll
    assert (poll.tick_deadline_s, poll.timeout_s) == (90.0, 20.0)
    with pytest.raises(ConfigError, match=r"poll\.tick_deadline"):
        parse_config({"poll": {"tick_deadline": "soon"}}, path=tmp_path / "c.toml")
