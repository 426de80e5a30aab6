"""`aggregator sources list/show/add/remove`, errors a person understands, progress (issue #12)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from aggregator import USER_AGENT, progress
from aggregator.cli import main
from aggregator.config import load_config
from aggregator.sourceview import FIELDS

from .conftest import ROOT
from .feedserver import Route, rss, running_feed_server

REQUIRED = {"id", "url", "title", "group", "enabled", "status", "http_status", "last_poll",
            "next_check", "entries", "failures", "last_error"}  # fmt: skip
HTML = "text/html; charset=utf-8"


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "seeds", tmp_path / "seeds")
    shutil.copytree(ROOT / "config", tmp_path / "config")
    return tmp_path / "config" / "aggregator.toml"


def run(cfg: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["-c", str(cfg), "--log-level", "WARNING", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_before_any_poll_reads_the_config_and_writes_nothing(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(cfg, capsys, "sources")
    assert code == 0
    rows = out.splitlines()
    assert rows[0].split()[:4] == ["ID", "STATUS", "HTTP", "LAST"]
    assert rows[1].split()[:3] == ["huxiu", "new", "-"]
    assert not (cfg.parent.parent / "state").exists()  # no database created by a listing
    assert run(cfg, capsys, "sources", "list") == (0, out, "")


def test_list_show_and_json_after_a_poll(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(cfg, capsys, "once", "--offline")[0] == 0
    code, out, _ = run(cfg, capsys, "sources", "list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["id"] for r in rows] == [s.id for s in load_config(cfg).sources]
    assert all(set(r) >= REQUIRED and set(r) == set(FIELDS) for r in rows)
    fireball = next(r for r in rows if r["id"] == "daringfireball")
    assert fireball["status"] == "ok" and fireball["http_status"] == 200
    assert fireball["title"] == "Daring Fireball" and fireball["group"] == "tech"
    assert fireball["entries"] > 0 and fireball["failures"] == 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", fireball["next_check"])
    assert fireball["next_check_why"]
    broken = next(r for r in rows if r["id"] == "reuters-broken")
    assert broken["status"] == "failed" and "not a readable feed" in broken["last_error"]

    code, out, _ = run(cfg, capsys, "sources", "show", "daringfireball")
    assert code == 0
    details, history = out.split("\n\n", 1)  # the details, then the recent polls (#14)
    lines = dict(line.split(":", 1) for line in details.splitlines())
    assert lines["status"].strip() == "ok (HTTP 200)"
    assert history.startswith("recent polls (newest first):") and " ok HTTP 200 " in history
    assert lines["next check"].strip().endswith(f"({fireball['next_check_why']})")
    assert lines["group"].strip() == "tech"
    code, out, _ = run(cfg, capsys, "sources", "show", "reuters-broken", "--json")
    assert json.loads(out)["failures"] == 1

    code, _, err = run(cfg, capsys, "sources", "show", "nope")
    assert code == 2
    assert err.startswith("error: no source 'nope' in ") and len(err.splitlines()) == 1


def test_the_fast_listing_equals_the_plain_one(
    cfg: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sources list` reads SQLite without SQLAlchemy; through the store it says the same."""
    assert run(cfg, capsys, "once", "--offline")[0] == 0
    fast = run(cfg, capsys, "sources", "list", "--json")
    monkeypatch.setattr("aggregator.store.peek.peek_source_states", lambda url: None)
    assert run(cfg, capsys, "sources", "list", "--json") == fast


def test_add_without_fetching_and_its_errors(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(cfg, capsys, "sources", "add", "https://www.blog.example/feed/",
                       "--no-fetch", "--group", "tech", "--title", "A blog")  # fmt: skip
    assert code == 0
    assert out.splitlines() == [
        f"added source 'a-blog' (https://www.blog.example/feed/) to {cfg}",  # from --title
        "a running daemon applies it once it reloads its config: `systemctl reload aggregator`, "
        "or `kill -HUP <pid of aggregator run>`",
    ]
    blog = load_config(cfg).source("a-blog")
    assert (blog.url, blog.group, blog.title) == (
        "https://www.blog.example/feed/",
        "tech",
        "A blog",
    )
    code, out, _ = run(cfg, capsys, "sources", "list")
    assert "a-blog " in out and " new " in out  # listed at once, polled after a reload
    code, out, _ = run(cfg, capsys, "sources", "add", "https://www.other.example/f", "--no-fetch")
    assert code == 0 and out.startswith("added source 'other' ")  # no title: from the host
    for args, message in [
        (("http://blog.example/feed?utm_source=x",), "is already configured as source 'a-blog'"),
        (("ftp://x.example/f",), "URL: must be an http(s) URL, got 'ftp://x.example/f'"),
        (("https://x.example/f", "--id", "No Caps"), "--id: must match [a-z0-9_-]+"),
        (("https://x.example/f", "--id", "huxiu"), "the id 'huxiu' is taken"),
    ]:
        code, _, err = run(cfg, capsys, "sources", "add", *args, "--no-fetch")
        assert code == 2, args
        assert message in err and len(err.splitlines()) == 1 and err.startswith("error: ")


def test_remove_keeps_entries_and_purge_deletes_them(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(cfg, capsys, "once", "--offline")[0] == 0
    code, out, _ = run(cfg, capsys, "sources", "remove", "ibash")
    assert code == 0 and "its stored entries stay" in out and "systemctl reload" in out
    assert "ibash" not in [s.id for s in load_config(cfg).sources]
    rows = {r["id"]: r for r in json.loads(run(cfg, capsys, "sources", "list", "--json")[1])}
    assert rows["ibash"]["configured"] is False and rows["ibash"]["entries"] == 50
    assert "ok (removed)" in run(cfg, capsys, "sources")[1]

    code, out, _ = run(cfg, capsys, "sources", "remove", "ibash", "--purge")  # stored only
    assert code == 0 and "purged 'ibash': 50 stored entries" in out
    code, out, _ = run(cfg, capsys, "sources", "remove", "scripting-gd", "--purge")
    assert code == 0 and "removed source 'scripting-gd'" in out and "purged 'scripting-gd'" in out
    ids = {r["id"] for r in json.loads(run(cfg, capsys, "sources", "list", "--json")[1])}
    assert not {"ibash", "scripting-gd"} & ids

    code, _, err = run(cfg, capsys, "sources", "remove", "ibash")
    assert code == 2 and "no source with id 'ibash'" in err
    code, _, err = run(cfg, capsys, "sources", "remove", "ibash", "--purge")
    assert code == 2 and "no source 'ibash'" in err


def test_a_failure_is_one_line_and_traceback_shows_the_rest(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(cfg, capsys, "sources", "remove", "nosuch")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    code, _, err = run(cfg, capsys, "--traceback", "sources", "remove", "nosuch")
    assert code == 2 and "Traceback (most recent call last)" in err
    assert err.splitlines()[-1].startswith("error: ")
    code, _, err = run(cfg, capsys, "--log-level", "DEBUG", "sources", "remove", "nosuch")
    assert "Traceback (most recent call last)" in err


def test_a_bug_is_still_one_line(
    cfg: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr("aggregator.sourceview.source_views", broken)
    code, _, err = run(cfg, capsys, "sources")
    assert code == 1
    assert err == (
        "error: unexpected KeyError: 'boom' (a bug: run again with --traceback and report what "
        "it shows)\n"
    )


def test_once_draws_a_progress_bar_on_a_terminal(
    cfg: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "is_terminal", lambda: True)
    code, out, err = run(cfg, capsys, "once", "--offline")
    assert code == 0
    assert "polling" in err and "16/16" in err and "\x1b[" in err  # rich, on stderr
    assert out.startswith("sources: 15 ok, 1 failed")  # stdout stays plain


def test_once_off_a_terminal_is_plain_log_lines(
    cfg: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    code = main(["-c", str(cfg), "once", "--offline"])
    _, err = capsys.readouterr()
    assert code == 0 and "\x1b[" not in err
    assert "poll source=huxiu status=ok" in caplog.text


def test_the_bar_counts_steps_and_logs_print_above_it(capsys: pytest.CaptureFixture[str]) -> None:
    with progress.progress_bar("working", total=3, force=True) as bar:
        assert bar.drawn
        for _ in range(3):
            bar.advance()
    assert "working" in capsys.readouterr().err
    with progress.progress_bar("quiet", total=3) as bar:  # stderr is no terminal here
        assert not bar.drawn
        bar.advance()
    assert capsys.readouterr().err == ""


# -- discovery through the daemon's own client, over loopback --------------------------------------


def page(links: str) -> bytes:
    return f"<!DOCTYPE html><html><head>{links}</head><body>blog</body></html>".encode()


@pytest.mark.slow  # a real HTTP server on 127.0.0.1
def test_add_a_page_with_two_feeds_needs_yes(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with running_feed_server() as srv:
        srv.routes["/"] = Route(
            page('<link rel="alternate" type="application/rss+xml" href="/posts.rss">'
                 '<link rel="alternate" type="application/rss+xml" href="/comments.rss">'),
            content_type=HTML,
        )  # fmt: skip
        srv.routes["/posts.rss"] = Route(rss("Jane's Posts", [("1", "a")]))
        srv.routes["/comments.rss"] = Route(rss("Comments on Jane's Posts", [("2", "b")]))
        code, out, err = run(cfg, capsys, "sources", "add", srv.url("/"))
        assert code == 2 and out == ""
        assert f"several feeds found at {srv.url('/')}:" in err
        assert f"  {srv.url('/posts.rss')}  (Jane's Posts, rss20)" in err
        assert f"  {srv.url('/comments.rss')}  (Comments on Jane's Posts, rss20)" in err
        assert err.splitlines()[-1].startswith("error: which one?")
        assert len(load_config(cfg).sources) == 16  # nothing written

        code, out, err = run(cfg, capsys, "sources", "add", srv.url("/"), "--yes", "--group", "x")
        assert code == 0, err
        assert f"added source 'jane-s-posts' ({srv.url('/posts.rss')})" in out
        assert load_config(cfg).source("jane-s-posts").group == "x"
        assert {r.headers["user-agent"] for r in srv.requests} == {USER_AGENT}


@pytest.mark.slow
def test_add_finds_a_feed_at_a_common_path(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with running_feed_server() as srv:
        srv.routes["/"] = Route(page(""), content_type=HTML)
        srv.routes["/atom.xml"] = Route(rss("静かな日記", [("1", "a")]))
        code, out, err = run(cfg, capsys, "sources", "add", srv.url("/"))
        assert code == 0, err
        # The title has no ASCII: the id comes from the host.
        assert f"added source '127-0-0-1' ({srv.url('/atom.xml')})" in out


@pytest.mark.slow
def test_discovery_is_held_to_the_ssrf_policy(
    cfg: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The address typed is trusted; a feed a page points to on another host is a redirect:
    it may not reach a private address (``[fetch]``, issue #11)."""
    with running_feed_server() as srv:
        srv.routes["/"] = Route(
            page('<link rel="alternate" type="application/rss+xml" href="http://10.0.0.7/f">'),
            content_type=HTML,
        )
        code = main(["-c", str(cfg), "--log-level", "INFO", "sources", "add", srv.url("/")])
        err = capsys.readouterr().err
    assert code == 1
    assert "discover url=http://10.0.0.7/f found=no error='refused: " in caplog.text
    assert err.splitlines()[-1].startswith(f"error: no feed found at {srv.url('/')}")


@pytest.mark.slow
def test_add_an_address_that_fails(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with running_feed_server() as srv:
        code, _, err = run(cfg, capsys, "sources", "add", srv.url("/gone"))
    assert code == 1
    assert err == f"error: cannot fetch {srv.url('/gone')}: HTTP 404 Not Found\n"
