"""The fault suite of issue #11: the real aggregator against a hostile server of our own.

Each test serves attacks from ``tests/hostile_server.py`` (127.0.0.1 only) and polls them
through the real tick (``run_once``: real sockets, aiohttp, a SQLite file, every renderer) or
the real CLI in a subprocess, then checks that the attack was bounded, failed its source alone
and left nothing executable or invalid in the outputs. Above each test, "Guard:" names the
protection it exercises and says why the test fails without it.

Covered elsewhere, not repeated here:
- kill -9 of ``once`` leaves no worker process behind:
  tests/test_workers.py::test_kill_9_of_the_parent_leaves_no_process_behind;
- a public-looking source redirected to 127.0.0.1 is refused:
  tests/test_ssrf.py::test_redirect_from_public_host_to_loopback_is_refused. Every source
  here *is* 127.0.0.1 and configured, so it is trusted by design, and so are its redirects
  within the same host: that is why the redirect attacks below reach their targets at all.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from lxml import etree

from aggregator.cli import main
from aggregator.config import Config, load_config, parse_config
from aggregator.process.html import MAX_DEPTH, MAX_HTML_CHARS
from aggregator.report import TickReport
from aggregator.scheduler import run_once
from aggregator.store import SqlStore, open_store
from aggregator.types import PollOutcome, StoredEntry

from . import hostile_server as h
from .hostile_server import HostileServer, running_hostile_server

pytestmark = pytest.mark.slow  # real sockets, and subprocesses
log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
FORMATS = ["atom", "rss", "json", "markdown"]
SLACK_S = 4.0  # on top of a deadline: a shared, busy 2-core machine


# -- harness --------------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[HostileServer]:
    """The whole catalogue on port 0; ports 1-4 serve it too (hosts of their own)."""
    with running_hostile_server(ports=5) as s:
        s.routes.update(h.hostile_routes(s))
        yield s


@dataclass
class Polled:
    report: TickReport
    elapsed_s: float

    def __getitem__(self, source_id: str) -> PollOutcome:
        (outcome,) = (o for o in self.report.outcomes if o.source_id == source_id)
        return outcome


class Poller:
    """Polls sources of the hostile server through the real tick, into one SQLite file."""

    def __init__(self, server: HostileServer, tmp_path: Path) -> None:
        self.server = server
        self.tmp = tmp_path
        self.public = tmp_path / "public"
        self.store: SqlStore = open_store(f"sqlite:///{tmp_path / 'state' / 'db.sqlite'}")
        self.now = NOW

    def config(self, sources: Mapping[str, str], **poll: object) -> Config:
        """Config over ``sources`` (id -> URL) and the control source on port 0."""
        listed = {"control": self.server.url("/control"), **sources}
        data = {
            "storage": {"url": "sqlite:///unused.db"},  # run_once is handed self.store
            "output": {"dir": str(self.public), "formats": FORMATS},
            "poll": {"jitter": 0, "parse_workers": 1, **poll},
            "sources": [{"id": i, "url": u} for i, u in listed.items()],
        }
        return parse_config(data, path=self.tmp / "aggregator.toml")

    def poll(self, sources: Mapping[str, str], *, force: bool = False, **poll: object) -> Polled:
        config = self.config(sources, **poll)
        started = time.monotonic()
        report = run_once(config, self.store, now=self.now, offline=False, force=force)
        return Polled(report, time.monotonic() - started)

    def entries(self, source_id: str) -> tuple[StoredEntry, ...]:
        return self.store.recent_entries([source_id], limit=100_000)

    def outputs(self) -> dict[str, bytes]:
        """Every output file, by path relative to the output directory."""
        return {
            str(p.relative_to(self.public)): p.read_bytes()
            for p in sorted(self.public.rglob("*"))
            if p.is_file()
        }


@pytest.fixture
def poller(server: HostileServer, tmp_path: Path) -> Iterator[Poller]:
    p = Poller(server, tmp_path)
    yield p
    p.store.close()


def fails_alone(polled: Polled, source_id: str, *fragments: str) -> str:
    """``source_id`` failed for the reason ``fragments`` name; the control source did not."""
    outcome = polled[source_id]
    error = outcome.error or ""
    assert outcome.status == "failed", (outcome.status, error)
    assert "internal error" not in error  # a crash caught by the runner is not a refusal
    for fragment in fragments:
        assert fragment in error, error
    assert polled["control"].status == "ok" and polled["control"].result.new == 2
    return error


def all_text(poller: Poller, source_id: str) -> str:
    """Everything stored of ``source_id``'s entries, as one string."""
    return "\n".join(repr(e) for e in poller.entries(source_id))


# -- XML attacks ----------------------------------------------------------------------------------


# Guard: no XML parser here expands a billion laughs. fastxml declines every document with a
# DOCTYPE (its lxml parser also has resolve_entities=False), so feedparser reads it: its
# replace_doctype drops the <!ENTITY> declarations that start a line (then &lol9; is undefined),
# and when they share one line expat's amplification limit (expat >= 2.4) stops the expansion.
# Without them the title is 10**9 "lol"s (3 GB): memory runs out or the poll runs for minutes,
# and the size and time checks below fail.
# (The one-line variant costs expat ~2-4 s before its limit trips: it runs in the whole-set run
# below, which checks the same.)
def test_billion_laughs_is_never_expanded(poller: Poller, server: HostileServer) -> None:
    polled = poller.poll({"laughs": server.url("/xml/billion-laughs")})
    assert polled["laughs"].status in ("ok", "failed")
    assert "internal error" not in (polled["laughs"].error or "")
    assert "lollol" not in all_text(poller, "laughs")
    assert all(b"lollol" not in data for data in poller.outputs().values())
    assert polled.elapsed_s < 15
    assert polled["control"].status == "ok"


# Guard: nothing opens a SYSTEM entity. feedparser turns expat's external general entities
# off (feature_external_ges = 0) and strips the declaration when it starts a line; the lxml
# path declines DOCTYPEs and has no_network/resolve_entities=False. Without it, /etc/passwd
# ("root:x:0:0") lands in the title, the database and every output.
@pytest.mark.parametrize("path", ["/xml/xxe-file", "/xml/xxe-file-one-line"])
def test_external_entity_to_a_file_is_never_read(
    poller: Poller, server: HostileServer, path: str
) -> None:
    polled = poller.poll({"xxe": server.url(path)})
    assert polled["xxe"].status == "ok"
    assert all(e.title.startswith("Entity [") for e in poller.entries("xxe"))
    assert "root:" not in all_text(poller, "xxe")
    assert all(b"root:" not in data for data in poller.outputs().values())


# Guard: as above, for an entity naming a URL: resolving it would be a request to our own
# /canary/xxe route (an SSRF from inside the parser). The canary must never be asked.
def test_external_entity_to_a_url_is_never_fetched(poller: Poller, server: HostileServer) -> None:
    polled = poller.poll({"xxe": server.url("/xml/xxe-url")})
    assert polled["xxe"].status == "ok" and poller.entries("xxe")
    assert server.count("/canary") == 0


# Guard: no external DTD subset or parameter entity is loaded (expat's external entities off in
# feedparser, load_dtd=False and no_network in lxml). Loading either asks /canary/dtd or
# /canary/pe of our server.
def test_external_dtd_and_parameter_entities_are_never_fetched(
    poller: Poller, server: HostileServer
) -> None:
    polled = poller.poll({"dtd": server.url("/xml/external-dtd")})
    assert polled["dtd"].status in ("ok", "failed")
    assert "internal error" not in (polled["dtd"].error or "")
    assert server.count("/canary") == 0


@pytest.fixture(scope="module")
def deep_polled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Polled]:
    """One poll of the 100k-deep document (seconds of CPU: shared by the next two tests), with
    a neighbour on another host that is in flight before the document is even sent and answers
    in 0.2 s, well within its 2 s."""
    with running_hostile_server(ports=2) as server:
        server.routes.update(h.hostile_routes(server))
        server.routes["/deep-after-neighbour"] = h.document(h.deep_xml(), after="/neighbour")
        server.routes["/neighbour"] = h.document(h.plain_feed("neighbour"), delay_s=0.2)
        poller = Poller(server, tmp_path_factory.mktemp("deep"))
        try:
            yield poller.poll(
                {"deep": server.url("/deep-after-neighbour"),
                 "neighbour": server.url("/neighbour", 1)},
                timeout="2s",
            )  # fmt: skip
        finally:
            poller.store.close()


# Guard (missing): "the document fails or parses, quickly, the source fails alone". It does not
# crash (lxml stops at its depth limit, huge_tree=False, so fastxml declines; feedparser's expat
# is iterative: no RecursionError; the whole-set run below checks it parses), but it is slow:
# every element fastxml does not know costs feedparser ~40-80 us (mixin.unknown_starttag/pop,
# make_safe_absolute_uri), deep or flat, so 100k of them (700 KB) take 4-8 s, and the 10 MB a
# body may be would take minutes. Nothing bounds the elements or the time before feedparser.
def test_100k_deep_xml_fails_or_parses_quickly(deep_polled: Polled) -> None:
    assert deep_polled["deep"].status in ("ok", "failed")
    assert "internal error" not in (deep_polled["deep"].error or "")
    assert deep_polled.elapsed_s < 2


# Guard (missing): a document that takes seconds to parse must not make other sources time out.
# Ticks under POOL_MIN_SOURCES (64) sources, and parse_workers = 1, prepare documents inline,
# on the fetch loop: while the deep document is parsed no response is read and every request in
# flight passes its total deadline, so an honest neighbour on another host fails "total
# timeout" (and that host is given up for the rest of the tick).
def test_a_document_slow_to_parse_does_not_time_out_its_neighbours(deep_polled: Polled) -> None:
    assert deep_polled["neighbour"].status == "ok", deep_polled["neighbour"].error
    assert deep_polled["control"].status == "ok", deep_polled["control"].error


# -- transport abuse ------------------------------------------------------------------------------


# Guard: fetch._read_capped counts *decoded* bytes (httpx decodes; aiohttp's auto_decompress is
# off) against [poll] max_bytes. Counting the bytes on the wire (16 KB, 136 for brotli) would
# accept the 16 MB and 64 MB bodies.
@pytest.mark.parametrize(
    "path", ["/transport/gzip-bomb", "/transport/deflate-bomb", "/transport/brotli-bomb"]
)
def test_compression_bombs_are_refused_at_the_decoded_cap(
    poller: Poller, server: HostileServer, path: str
) -> None:
    polled = poller.poll({"bomb": server.url(path)}, max_bytes=1 << 20)
    fails_alone(polled, "bomb", "over the 1048576-byte cap (decoded)")


# Guard (missing): the decoded cap is checked only after each network chunk has been decoded
# whole: httpx's decoders take no output limit. One chunk of gzip or deflate (up to 64 KB off
# the wire) becomes up to 64 MB at once, and brotli has no ratio limit at all: its 136-byte bomb
# is 64 MB in one call (a few KB would be gigabytes, and the process killed). Measured as the
# peak of Python's allocations (tracemalloc) during the poll, with a 1 MB cap: a plain poll
# peaks at ~3 MB, these at 45 MB (gzip, deflate: the 16 MB bomb in one piece) and 64 MB (br).
@pytest.mark.parametrize(
    "path", ["/transport/gzip-bomb", "/transport/deflate-bomb", "/transport/brotli-bomb"]
)
def test_a_bomb_never_holds_much_more_than_the_cap(
    poller: Poller, server: HostileServer, path: str
) -> None:
    poller.poll({})  # a first poll (imports, caches) out of the measure
    tracemalloc.start()
    try:
        polled = poller.poll({"bomb": server.url(path)}, max_bytes=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert polled["bomb"].status == "failed" and "cap (decoded)" in (polled["bomb"].error or "")
    assert peak < 16 << 20, f"{peak >> 20} MB held at once for a 1 MB cap"


# Guard: the same cap on a chunked body that never ends. Without it the read goes on until the
# total deadline (30 s here): the error would be a timeout, not the cap, and come late.
def test_endless_body_is_cut_at_the_cap(poller: Poller, server: HostileServer) -> None:
    polled = poller.poll({"endless": server.url("/transport/endless")}, max_bytes=1 << 20)
    fails_alone(polled, "endless", "over the 1048576-byte cap")
    assert polled.elapsed_s < 15


# Guard: the total deadline ([poll] timeout, fetch.fetch's Deadlines.within). A few bytes every
# 0.1 s never trip the read timeout (20 s between reads) nor the cap for minutes: without the
# total deadline this poll lasts until the server gives up (30 s).
def test_endless_slow_body_is_cut_at_the_total_timeout(
    poller: Poller, server: HostileServer
) -> None:
    polled = poller.poll({"slow": server.url("/transport/endless-slow", 1)}, timeout="2s")
    fails_alone(polled, "slow", "total timeout")
    assert polled["slow"].timed_out and polled.elapsed_s < 2 + SLACK_S


# Guard: aiohttp's payload length check (ClientPayloadError -> httpx.ReadError -> FetchError).
# The bytes sent are a complete, valid feed: a client that took "connection closed" as the end
# of the body would store its 2 entries.
def test_content_length_longer_than_the_body_fails(poller: Poller, server: HostileServer) -> None:
    polled = poller.poll({"more": server.url("/transport/length-more")})
    fails_alone(polled, "more")
    assert poller.entries("more") == ()


# Guard: the body is exactly Content-Length bytes. What follows (an extra item, then a whole
# second response) is never read as part of the feed: aiohttp's parser refuses the response
# outright ("Data after `Connection: close`"); a client that took exactly the declared bytes
# would store the 2 declared entries. Reading to the end of the connection would store
# "SMUGGLED entry".
def test_bytes_past_content_length_are_not_read(poller: Poller, server: HostileServer) -> None:
    polled = poller.poll({"less": server.url("/transport/length-less")})
    less = polled["less"]
    assert (less.status, less.result.new) in (("ok", 2), ("failed", 0)), less.error
    assert "internal error" not in (less.error or "")
    assert "SMUGGLED" not in all_text(poller, "less")


# Guard: the total deadline again, this time before any header is complete: one byte a second
# resets the read timeout every time, so without it the poll lasts as long as the server
# drips (4 KB of headers: over an hour; our server stops at 30 s).
def test_headers_one_byte_a_second_are_cut_at_the_total_timeout(
    poller: Poller, server: HostileServer
) -> None:
    polled = poller.poll({"drip": server.url("/transport/drip-headers", 1)}, timeout="2s")
    fails_alone(polled, "drip", "total timeout")
    assert polled["drip"].timed_out and polled.elapsed_s < 2 + SLACK_S


# Guard (missing): what a server says never reaches the operator's terminal raw. The reason
# phrase of an error status goes into the error as it came (fetch._error_for), and `once`
# prints "FAILED <error>", `sources` its "Last errors", without escaping: ESC [2J clears the
# screen, ESC ]0; retitles the window (and other sequences do worse in some terminals). The
# log line is safe: it writes error=%r.
def test_a_servers_words_never_reach_the_terminal_raw(
    server: HostileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, {"esc": server.url("/transport/escape-reason")}, poll={})
    assert main(["-c", str(config), "--log-level", "WARNING", "once"]) == 0
    assert main(["-c", str(config), "sources"]) == 0
    printed = capsys.readouterr()
    assert "HTTP 500" in printed.err
    assert [c for c in "\x1b\x07\x9b" if c in printed.out + printed.err] == []


# Guard: the total deadline (2 s) ends the wait for an answer that never comes, well before the
# read timeout (20 s), which would be what ends it without the deadline.
def test_a_server_that_never_answers_is_cut_at_the_total_timeout(
    poller: Poller, server: HostileServer
) -> None:
    polled = poller.poll({"silent": server.url("/transport/silent", 1)}, timeout="2s")
    fails_alone(polled, "silent", "total timeout")
    assert polled["silent"].timed_out and polled.elapsed_s < 2 + SLACK_S


# Guard: fetch.MAX_REDIRECTS (5): the first request and 5 redirects, then a refusal. Without it
# the loop goes on until the total deadline, thousands of requests.
def test_redirect_loop_stops_after_five_redirects(poller: Poller, server: HostileServer) -> None:
    polled = poller.poll({"loop": server.url("/redirect/loop/a")})
    fails_alone(polled, "loop", "more than 5 redirects")
    assert server.count("/redirect/loop/") == 6


# Guard: MAX_REDIRECTS again: a chain of 10 is refused after 6 requests (its last 5 hops and
# the feed at the end never asked), a chain of exactly 5 is followed to its feed.
def test_a_chain_of_ten_redirects_is_refused_a_chain_of_five_followed(
    poller: Poller, server: HostileServer
) -> None:
    polled = poller.poll({"chain10": server.url("/redirect/chain10/10"),
                          "chain5": server.url("/redirect/chain5/5")})  # fmt: skip
    fails_alone(polled, "chain10", "more than 5 redirects")
    assert server.count("/redirect/chain10/") == 6 and server.count("/redirect/chain10/4") == 0
    assert polled["chain5"].status == "ok" and polled["chain5"].result.new == 2


# Guard: fetch._check_scheme refuses every hop that is not http(s), before any request. Without
# it the message would be aiohttp's (or, for a data: URL a client can read, the feed inside it
# would be stored; gopher: would send our server a raw request for /canary/gopher).
@pytest.mark.parametrize("scheme", ["file", "data", "ftp", "gopher"])
def test_redirects_to_other_schemes_are_refused(
    poller: Poller, server: HostileServer, scheme: str
) -> None:
    polled = poller.poll({"scheme": server.url(f"/redirect/to-{scheme}")})
    fails_alone(polled, "scheme", "refusing to fetch non-http(s) URL", f"'{scheme}:")
    assert poller.entries("scheme") == () and server.count("/canary") == 0


# -- content abuse --------------------------------------------------------------------------------


# Guard: prepare.newest keeps a document's newest [poll] max_entries_per_feed (default 1000)
# entries by date. The flood's dates are shuffled, so document order is no shortcut: without the
# cap all 20,000 are stored; a cap that kept the first 1000 would keep the wrong ones.
def test_a_flood_of_entries_keeps_exactly_the_newest_thousand(
    poller: Poller, server: HostileServer
) -> None:
    polled = poller.poll({"flood": server.url("/content/flood")})
    assert polled["flood"].status == "ok" and polled["flood"].result.new == 1000
    stored = poller.entries("flood")
    assert len(stored) == 1000
    newest = {f"t{i}" for i in range(20_000) if h.flood_age_min(i) < 1000}
    assert {e.title for e in stored} == newest


# Guard: process.html.MAX_HTML_CHARS (1M characters): longer entry HTML is cut, at a tag
# boundary, before the sanitiser. Without it the 3 MB entry is stored and served whole.
def test_an_entry_of_several_megabytes_is_bounded(poller: Poller, server: HostileServer) -> None:
    polled = poller.poll({"huge": server.url("/content/huge-entry")})
    assert polled["huge"].status == "ok"
    (entry,) = poller.entries("huge")
    assert 0.9 * MAX_HTML_CHARS < len(entry.content_html) <= MAX_HTML_CHARS + 16
    assert entry.content_html.endswith("</p>")
    assert all(len(data) < 4 * MAX_HTML_CHARS for data in poller.outputs().values())


# Guard: process.html.MAX_DEPTH (100): deeper HTML is flattened to its text before nh3, whose
# time grows with the square of the depth (100k <div>: 23 s, issue #11). Without it the entry
# keeps 100,000 nested divs and the poll takes far longer than the bound.
def test_100k_nested_divs_are_flattened(poller: Poller, server: HostileServer) -> None:
    polled = poller.poll({"divs": server.url("/content/deep-divs")})
    assert polled["divs"].status == "ok"
    (entry,) = poller.entries("divs")
    assert entry.content_html.count("<div") <= MAX_DEPTH and "deep words" in entry.content_html
    assert polled.elapsed_s < 15


# Guard: bytes not valid in the declared UTF-8 are read as what they are (parse/_charset.py:
# a mostly-UTF-8 document stays UTF-8, the broken sequences replaced by U+FFFD). Without it
# feedparser re-reads the whole document as windows-1252 ("GrÃ¼ÃŸe"); the outputs must stay
# valid UTF-8 and well-formed either way.
def test_invalid_utf8_bytes_do_not_garble_the_rest(poller: Poller, server: HostileServer) -> None:
    polled = poller.poll({"utf8": server.url("/content/invalid-utf8")})
    assert polled["utf8"].status == "ok" and polled["utf8"].result.new == 4
    titles = {e.title for e in poller.entries("utf8")}
    assert {f"{h.UTF8_TEXT} {i}" for i in range(3)} <= titles
    outputs = poller.outputs()
    for name in ("all.atom", "all.rss"):
        etree.fromstring(outputs[name])  # well-formed (and so valid UTF-8)
    assert h.UTF8_TEXT in outputs["all.json"].decode("utf-8")


# Guard (too narrow): the same with 12 invalid sequences among 192 valid multi-byte characters.
# _charset._mostly_utf8 wants 20 valid ones per invalid one (_UTF8_VALID_PER_ERROR); at 16 the
# document goes to charset-normalizer, which picks mac-greek: every non-ASCII character of the
# feed, the 192 good ones included, is stored and served as mojibake ("GrÎŸÎ¦Îue").
def test_more_invalid_utf8_bytes_still_do_not_garble_the_rest(
    poller: Poller, server: HostileServer
) -> None:
    polled = poller.poll({"utf8": server.url("/content/invalid-utf8-dense")})
    assert polled["utf8"].status == "ok"
    titles = {e.title for e in poller.entries("utf8")}
    assert {f"{h.UTF8_TEXT} {i}" for i in range(3)} <= titles


# Guard: parse._HTML_START refuses a page whose first element is <!DOCTYPE html>/<html> with a
# message that says so. Without it feedparser reads the page leniently and the error, if any,
# would be about a missing RSS root, not "an HTML page".
def test_an_html_page_fails_alone_with_a_clear_message(
    poller: Poller, server: HostileServer
) -> None:
    polled = poller.poll({"page": server.url("/content/html-page")})
    fails_alone(polled, "page", "not a feed (looks like an HTML page)")


# Guard: parse/jsonfeed.py checks the type of every field it reads (a wrong one is ignored with
# a warning; an entry with nothing usable is skipped; items that are not a list fail the
# document). Without the checks `.get`/`.strip` on an int or a list raise AttributeError or
# TypeError, which the runner reports as "internal error" (and logs as a crash).
def test_json_feed_with_wrong_types_everywhere(poller: Poller, server: HostileServer) -> None:
    polled = poller.poll({"notlist": server.url("/content/json-items-not-a-list"),
                          "wrong": server.url("/content/json-wrong-types")})  # fmt: skip
    fails_alone(polled, "notlist", "not a JSON Feed: no 'items' list")
    assert polled["wrong"].status == "ok", polled["wrong"].error
    assert "The good one" in {e.title for e in poller.entries("wrong")}


# Guard: process.dedup: an entry with a new guid but the same link and title from the same
# source is a duplicate of the stored one, not a new entry. Without it the second poll stores
# 3 "new" entries and rewrites every output.
def test_guids_that_change_on_every_poll_add_nothing_the_second_time(
    poller: Poller, server: HostileServer
) -> None:
    first = poller.poll({"fickle": server.url("/content/fickle-guids")})
    assert first["fickle"].result.new == 3
    before = poller.outputs()
    poller.now += timedelta(hours=1)
    second = poller.poll({"fickle": server.url("/content/fickle-guids")})
    assert server.count("/content/fickle-guids") == 2
    assert (second["fickle"].result.new, second["fickle"].result.updated) == (0, 0)
    assert poller.outputs() == before and len(poller.entries("fickle")) == 3


# -- XSS in every field of every format -----------------------------------------------------------


class _Html(HTMLParser):
    """Collects what would run if this HTML were shown: script-ish elements, on* attributes,
    and URL attributes whose scheme is not http(s)/mailto."""

    EXECUTABLE = frozenset({"script", "iframe", "object", "embed", "form", "base", "meta", "link",
                            "style", "svg", "math", "frame", "frameset", "applet"})  # fmt: skip
    URL_ATTRS = frozenset({"href", "src", "action", "formaction", "poster", "data", "srcset",
                           "background", "xlink:href", "cite"})  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.EXECUTABLE:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on") or name == "style":
                self.found.append(f"{tag}@{name}")
            elif name in self.URL_ATTRS and value and not safe_url(value, relative=True):
                self.found.append(f"{tag}@{name}={value}")


def executable_html(html: str) -> list[str]:
    parser = _Html()
    parser.feed(html)
    parser.close()
    return parser.found


def safe_url(url: str, *, relative: bool = False) -> bool:
    """http(s) or mailto (read as a browser reads it: whitespace and controls dropped)."""
    squeezed = re.sub(r"[\x00-\x20]", "", url).lower()
    scheme = urlsplit(squeezed).scheme
    return scheme in ("http", "https", "mailto") or (relative and scheme == "")


ATOM = "{http://www.w3.org/2005/Atom}"
MEDIA = "{http://search.yahoo.com/mrss/}"


@dataclass
class Fields:
    """What the outputs carry, by kind: HTML, URLs of entries, URLs of sources, plain text."""

    html: list[str]
    entry_urls: list[str]
    source_urls: list[str]
    text: list[str]


def output_fields(outputs: dict[str, bytes]) -> Fields:
    """Every field of all.atom, all.rss, all.json and the Markdown posts, by kind."""
    f = Fields([], [], [], [])
    atom = etree.fromstring(outputs["all.atom"])  # raises unless well-formed
    for entry in atom.iter(f"{ATOM}entry"):
        f.html += [e.text or "" for e in entry.iter(f"{ATOM}content")]
        f.text += [e.text or "" for e in entry.iter(f"{ATOM}title", f"{ATOM}summary",
                                                     f"{ATOM}name")]  # fmt: skip
        f.text += [c.get("term", "") for c in entry.iter(f"{ATOM}category")]
        for link in entry.findall(f"{ATOM}link"):
            f.entry_urls.append(link.get("href", ""))
        f.entry_urls += [t.get("url", "") for t in entry.iter(f"{MEDIA}thumbnail")]
        for source in entry.iter(f"{ATOM}source"):
            f.source_urls += [link.get("href", "") for link in source.iter(f"{ATOM}link")]
    rss = etree.fromstring(outputs["all.rss"])
    for item in rss.iter("item"):
        f.html += [d.text or "" for d in item.iter("description")]
        f.text += [
            t.text or ""
            for t in item.iter(
                "title", "category", "source", "{http://purl.org/dc/elements/1.1/}creator"
            )
        ]
        f.entry_urls += [t.text or "" for t in item.iter("link")]
        f.entry_urls += [e.get("url", "") for e in item.iter("enclosure", f"{MEDIA}thumbnail")]
        f.source_urls += [s.get("url", "") for s in item.iter("source")]
    for item in json.loads(outputs["all.json"])["items"]:
        f.html.append(item["content_html"])
        f.text += [item["title"], item.get("summary", ""), *item.get("tags", ())]
        f.text += [a["name"] for a in item["authors"]]
        f.entry_urls += [item.get("url", ""), item.get("image", "")]
        f.entry_urls += [a["url"] for a in item.get("attachments", ())]
        for source in item["_aggregator"]["sources"]:
            f.text.append(source["title"])
            f.source_urls += [source["url"], source["link"] or ""]
    for name, data in outputs.items():
        if name.startswith("markdown/"):
            _, front, body = data.decode("utf-8").split("---\n", 2)
            meta = yaml.safe_load(front)
            f.html.append(body)
            f.text += [meta["title"], meta["author"], *meta["categories"]]
            f.entry_urls.append(meta.get("thumbnail", ""))
    return f


@pytest.fixture
def xss_outputs(poller: Poller, server: HostileServer) -> dict[str, bytes]:
    polled = poller.poll({"xss-rss": server.url("/xss/rss"), "xss-atom": server.url("/xss/atom"),
                          "xss-json": server.url("/xss/json")})  # fmt: skip
    assert {o.status for o in polled.report.outcomes} == {"ok"}
    assert polled.report.new == 2 + 3 + 4 + 3
    return poller.outputs()


# Guard: process.html.clean_html's nh3 allowlist (no script/iframe/object/form/svg/style, no
# on* or style attributes, URL schemes http/https/mailto only), applied to the content and the
# summary of every format before storing. Without it every payload of XSS_HTML is served as is.
def test_no_executable_html_in_any_output(xss_outputs: dict[str, bytes]) -> None:
    fields = output_fields(xss_outputs)
    assert len(fields.html) >= 4 * 10 and any("Hello" in x for x in fields.html)
    found = {hit for html in fields.html for hit in executable_html(html)}
    assert found == set()


# Guard: process._http_or_none (entry link, image), process._enclosures (http(s) only) and the
# first image of already-sanitised content for thumbnails. Without them the javascript:,
# vbscript: and data: links, enclosures and thumbnails of every entry reach the outputs.
def test_entry_urls_in_every_output_are_http(xss_outputs: dict[str, bytes]) -> None:
    urls = [u for u in output_fields(xss_outputs).entry_urls if u]
    assert urls and [u for u in urls if not safe_url(u, relative=True)] == []


# Guard (missing): the feed's own link (RSS channel <link>, Atom alternate link, JSON Feed
# home_page_url) is stored as the source's feed_link without a scheme check
# (prepare.prepare: link=feed.link) and served as atom:source/link[@rel="alternate"]/@href.
def test_source_urls_in_every_output_are_http(xss_outputs: dict[str, bytes]) -> None:
    urls = [u for u in output_fields(xss_outputs).source_urls if u]
    assert urls and [u for u in urls if not safe_url(u)] == []


# Guard (partly missing): plain-text fields carry no markup a reader could render as HTML.
# Titles (and source titles) go through html_to_text, which drops tags, scripts included; but
# author names and categories only through clean_text, so `<script>...</script><img src=x
# onerror=...>` reaches dc:creator and category in all.rss and authors/tags in all.json
# (escaped as text, which each format's spec says they are: harmless to a reader that follows
# the spec, executable in one that renders RSS text fields as HTML, as many do for titles).
def test_plain_text_fields_carry_no_markup(xss_outputs: dict[str, bytes]) -> None:
    text = output_fields(xss_outputs).text
    assert [t for t in text if executable_html(t)] == []


# -- the cases of "Measured on the current main" --------------------------------------------------


# Case 1. Guard: aggregator.text.clean_text (plain text) and clean_markup (everything else),
# applied by process and again by the renderers. Without them DEL, the bidi overrides/isolates
# and U+200B of the title, author, category and feed title are written out as they came.
# (U+200B stays in HTML on purpose, a line-break hint: see aggregator/text.py.)
def test_control_and_bidi_characters_reach_no_output(poller: Poller, server: HostileServer) -> None:
    polled = poller.poll({"bidi": server.url("/text/bidi")})
    assert polled["bidi"].status == "ok"
    outputs = poller.outputs()
    assert no_bidi(outputs) == []
    for name in ("all.atom", "all.rss", "all.json"):
        assert "Invoice gnp.exe paid now isolated" in outputs[name].decode("utf-8")


def no_bidi(outputs: dict[str, bytes]) -> list[str]:
    """Where a character of BIDI_CHARS is: a whole feed (U+200B aside), or a plain-text field."""
    found = []
    for name in ("all.atom", "all.rss", "all.json"):
        text = outputs[name].decode("utf-8")
        found += [f"{name}: {c!r}" for c in h.BIDI_CHARS if c in text and c != "\u200b"]
    text_fields = output_fields(outputs).text
    found += [f"text: {t!r}" for t in text_fields if any(c in t for c in h.BIDI_CHARS)]
    return found


# Case 5. Guard: parse/_charset.redecode (charset-normalizer) when the bytes are not valid in
# the declared UTF-8. Without it feedparser falls back to windows-1252: "ÄãºÃÊÀ½ç" mojibake.
def test_gb18030_declared_utf8_is_read_as_gb18030(poller: Poller, server: HostileServer) -> None:
    polled = poller.poll({"gb": server.url("/text/gb18030")})
    assert polled["gb"].status == "ok"
    titles = sorted(e.title for e in poller.entries("gb"))
    assert titles == [f"{h.GB18030_TITLE}{i}" for i in range(3)]
    assert h.GB18030_TEXT in poller.entries("gb")[0].content_html
    assert h.GB18030_TITLE in poller.outputs()["all.json"].decode("utf-8")


# -- the real CLI ---------------------------------------------------------------------------------


def cli(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "aggregator", "-c", str(config), *args]


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "TERM": "dumb"}


def write_config(where: Path, sources: Mapping[str, str], *, poll: Mapping[str, object]) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    lines = [
        "[storage]", f'url = "sqlite:///{where / "state" / "db.sqlite"}"',
        "[output]", f'dir = "{where / "public"}"', f"formats = {json.dumps(FORMATS)}",
        "[poll]", 'interval = "30m"', "jitter = 0",
        *(f"{k} = {json.dumps(v)}" for k, v in poll.items()),
    ]  # fmt: skip
    for source_id, url in sources.items():
        lines += ["[[sources]]", f'id = "{source_id}"', f'url = "{url}"']
    path = where / "aggregator.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Run:
    status: int
    out: str
    err: str
    elapsed_s: float

    def polls(self) -> dict[str, dict[str, str]]:
        """The `poll source=...` log lines, by source: status, http, duration_ms, error."""
        found = {}
        for m in re.finditer(
            r"poll source=(\S+) status=(\S+) http=(\S+) .*?duration_ms=(\d+)(?: error=(.*))?$",
            self.err,
            re.M,
        ):
            found[m[1]] = {"status": m[2], "http": m[3], "ms": m[4], "error": m[5] or ""}
        return found


def run_cli(config: Path, *args: str, timeout_s: float = 60) -> Run:
    started = time.monotonic()
    done = subprocess.run(cli(config, *args), capture_output=True, text=True,
                          timeout=timeout_s, env=cli_env())  # fmt: skip
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def poll_in_process(config: Path) -> TickReport:
    """What `once` does, in this process (cheaper than a CLI run where only the state matters)."""
    loaded = load_config(config)
    store = open_store(loaded.storage.url)
    try:
        return run_once(loaded, store, now=datetime.now(UTC), offline=False)
    finally:
        store.close()


# Case 2. Guard: the store's due_states: a gone source is never due, and `--force` adds only
# sources that are merely not yet due, never one waiting out a Retry-After. Without it the
# second `once` (or `--force`) asks both again, as measured on main before the fix. (The CLI's
# own code, in this process: `once` is cli.main's, its start-up is not what is tested here.)
def test_once_honours_410_and_retry_after_even_with_force(
    server: HostileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, {"gone": server.url("/status/gone"),
                                     "busy": server.url("/status/busy"),
                                     "control": server.url("/control")}, poll={})  # fmt: skip
    summaries = []
    for args in (["once"], ["once"], ["once", "--force"]):
        assert main(["-c", str(config), "--log-level", "WARNING", *args]) == 0
        summaries.append(capsys.readouterr().out)
    assert "sources: 1 ok, 2 failed;" in summaries[0]  # gone and busy
    assert "sources: 0 ok, 0 failed;" in summaries[1]  # nothing due
    assert "sources: 1 ok, 0 failed;" in summaries[2]  # the control's 304 only
    assert (server.count("/status/gone"), server.count("/status/busy")) == (1, 1)
    assert server.count("/control") == 2


# Case 3. Guards: the total deadline per request ([poll] timeout = 3s); a host whose request
# timed out is given up for the rest of the tick (runner._Slot / TickRun.gave_up: its queued
# sources come back "deferred", not failed, and are not asked); a poll's duration starts once
# it holds a slot (pipeline.poll_source). Without the deadline the drip and the stream run until
# our server stops them (30 s each); without giving the host up the last three slow sources
# take two more rounds of 3 s and fail; with durations from the tick's start the late 304s
# (queued behind the others while the slow one holds the host's other slot) would log
# duration_ms over 800.
def test_forty_sources_on_one_host_with_five_that_never_finish(
    server: HostileServer, tmp_path: Path
) -> None:
    paths = [f"/many/{i}" for i in range(40)]
    for i, path in enumerate(paths):  # a busy but honest server: 30 ms an answer
        server.routes[path] = h.document(h.plain_feed(f"many{i}", 1), delay_s=0.03)
    config = write_config(tmp_path, {f"m{i:02}": server.url(p, 2) for i, p in enumerate(paths)},
                          poll={"timeout": "3s", "per_host": 2})  # fmt: skip
    assert poll_in_process(config).ok == 40  # every source has an ETag now
    # First in line one that hangs, last four that hang, drip and stream forever: 35 fast 304s
    # pass through the other slot while the first one holds its slot.
    slow = {0: h.silent(), 36: h.drip(), 37: h.endless(chunk=256, every_s=0.1),
            38: h.silent(), 39: h.drip()}  # fmt: skip
    for i, route in slow.items():
        server.routes[paths[i]] = route
    mark = len(server.requests)
    run = run_cli(config, "--log-level", "DEBUG", "once", "--force")
    assert run.status == 0, run.err
    assert run.elapsed_s < 25, run.elapsed_s  # 40 x 3 s = 120 s without the bounds
    assert "sources: 35 ok, 2 failed, 3 deferred;" in run.out, run.out
    polls = run.polls()
    deferred = sorted(k for k, v in polls.items() if v["status"] == "deferred")
    assert deferred == ["m37", "m38", "m39"]
    assert all("timed out earlier in this tick: deferred" in polls[k]["error"] for k in deferred)
    assert all("total timeout" in polls[k]["error"] for k in ("m00", "m36"))
    asked = server.requests[mark:]
    assert {r.path for r in asked} == {p for i, p in enumerate(paths) if i not in (37, 38, 39)}
    fast = [k for k, v in polls.items() if v["status"] == "not_modified"]
    assert len(fast) == 35 and all(int(polls[k]["ms"]) < 500 for k in fast), polls
    arrivals = [r.at for r in asked if r.path in {paths[int(k[1:])] for k in fast}]
    assert max(arrivals) - min(r.at for r in asked) > 0.8  # the last 304s were queued that long


# The whole hostile set in one `aggregator once`, timed: each slow route on a host (port) of its
# own, and 30 plain feeds so the tick is large enough (POOL_MIN_SOURCES) to parse in worker
# processes, as a real one is (the inline case is the xfail above).
EXPECTED: dict[str, tuple[str, str]] = {  # path -> (statuses, a piece of the error)
    "/control": ("ok", ""),
    "/xml/billion-laughs": ("ok", ""),
    "/xml/billion-laughs-one-line": ("ok", ""),
    "/xml/xxe-file": ("ok", ""),
    "/xml/xxe-file-one-line": ("ok", ""),
    "/xml/xxe-url": ("ok", ""),
    "/xml/external-dtd": ("ok", ""),
    "/xml/deep": ("failed", "deeper than"),  # refused before feedparser (MAX_XML_DEPTH)
    "/transport/gzip-bomb": ("failed", "cap (decoded)"),
    "/transport/deflate-bomb": ("failed", "cap (decoded)"),
    "/transport/brotli-bomb": ("failed", "cap (decoded)"),
    "/transport/endless": ("failed", "cap"),
    "/transport/endless-slow": ("failed", "total timeout"),
    "/transport/length-more": ("failed", ""),
    "/transport/length-less": ("ok|failed", ""),  # aiohttp refuses it whole; fine too
    "/transport/drip-headers": ("failed", "total timeout"),
    "/transport/escape-reason": ("failed", "HTTP 500"),
    "/transport/silent": ("failed", "total timeout"),
    "/redirect/loop/a": ("failed", "more than 5 redirects"),
    "/redirect/chain10/10": ("failed", "more than 5 redirects"),
    "/redirect/chain5/5": ("ok", ""),
    "/redirect/to-file": ("failed", "non-http(s)"),
    "/redirect/to-data": ("failed", "non-http(s)"),
    "/redirect/to-ftp": ("failed", "non-http(s)"),
    "/redirect/to-gopher": ("failed", "non-http(s)"),
    "/content/flood": ("ok", ""),
    "/content/huge-entry": ("ok", ""),
    "/content/deep-divs": ("ok", ""),
    "/content/invalid-utf8": ("ok", ""),
    "/content/invalid-utf8-dense": ("ok", ""),
    "/content/html-page": ("failed", "looks like an HTML page"),
    "/content/json-items-not-a-list": ("failed", "no 'items' list"),
    "/content/json-wrong-types": ("ok", ""),
    "/content/fickle-guids": ("ok", ""),
    "/xss/rss": ("ok", ""),
    "/xss/atom": ("ok", ""),
    "/xss/json": ("ok", ""),
    "/text/bidi": ("ok", ""),
    "/text/gb18030": ("ok", ""),
    "/status/gone": ("gone", "HTTP 410"),
    "/status/busy": ("failed", "HTTP 429"),
}


def source_id(path: str) -> str:
    return path.strip("/").replace("/", "-")


def test_the_whole_hostile_set_in_one_cli_once(
    server: HostileServer, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    sources = {
        source_id(p): server.url(p, 1 + h.SLOW.index(p) if p in h.SLOW else 0) for p in EXPECTED
    }
    sources |= {f"plain-{i}": server.url("/control", 4) for i in range(30)}
    config = write_config(tmp_path, sources, poll={"timeout": "2s"})
    run = run_cli(config, "once")
    assert run.status == 0, run.err
    polls = run.polls()
    got = {p: (polls[source_id(p)]["status"], polls[source_id(p)]["error"]) for p in EXPECTED}
    wrong = {p: got[p] for p, (status, piece) in EXPECTED.items()
             if got[p][0] not in status.split("|") or piece not in got[p][1]}  # fmt: skip
    assert wrong == {}
    assert "internal error" not in run.err and "Traceback" not in run.err
    assert server.count("/canary") == 0
    outputs = {
        str(p.relative_to(tmp_path / "public")): p.read_bytes()
        for p in (tmp_path / "public").rglob("*")
        if p.is_file()
    }
    fields = output_fields(outputs)  # every output well-formed and readable
    assert {hit for html in fields.html for hit in executable_html(html)} == set()
    assert no_bidi(outputs) == []
    assert all(b"lollol" not in data and b"root:" not in data for data in outputs.values())
    # Bounded: the slow routes run side by side (2 s each); start-up, the bombs, the parses
    # (the 100k-deep document's, mostly: 4-10 s of CPU, see its xfail) and the render on top:
    # 13 s on this 2-core machine under a load of 4, 29 s under 7. For the note of issue #11:
    # `pytest --log-cli-level=INFO` shows it, --junitxml records it.
    record_property("once_s", round(run.elapsed_s, 1))
    log.info("once over the hostile set (%d sources): %.1f s", len(sources), run.elapsed_s)
    assert run.elapsed_s < 60
