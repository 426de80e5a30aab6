"""Every speed-up equals the plain path it stands for (STYLE.md section 8).

The caches and fast paths and where their own proofs live:
- the lxml fast path vs feedparser: tests/test_fastxml.py (every seed and corpus feed);
- SQLite datetime texts (and their cache) vs SQLAlchemy's DATETIME: tests/test_store.py;
- BulkInsert / BulkExecute vs the Core statements: tests/test_store.py;
- entry_uid vs uuid.uuid5: tests/test_store.py;
- fetch.header_dict vs httpx's Headers.items(): tests/test_fetch.py;
- Deadlines vs asyncio.timeout: tests/test_deadlines.py;
- the text of cleaned HTML read without a second sanitiser pass: tests/test_process.py;
- here: the reused conditional request, the transport's URL cache, the reusable nh3 cleaner,
  ``quick_init``'s constructors vs the dataclasses' own, and a repeat's shared history marker
  (``pipeline.REPEAT``) vs the history it stands for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import typing
from dataclasses import replace
from functools import partial

import httpx
import nh3
import pytest
import yarl
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator import schedule, types
from aggregator.fetch import Http
from aggregator.process import html
from aggregator.quickinit import quick_init
from aggregator.transport import AiohttpTransport

from .conftest import ROOT

URLS = [
    "https://a.example/feed",
    "https://a.example/feed?x=1&y=%20z",
    "http://[::1]:8080/f",
    "https://xn--fiqs8s.example/路径?q=虎嗅",
    "https://a.example/p%C3%A4th#frag",
]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize(
    ("etag", "modified"), [(None, None), ('"v1"', None), (None, "Wed, 25 Nov 2026 10:00:00 GMT")]
)
def test_a_reused_request_is_the_request_built_afresh(
    url: str, etag: str | None, modified: str | None
) -> None:
    http = Http(httpx.MockTransport(lambda r: httpx.Response(304)), user_agent="ua/1")
    http.request(url, None, None)  # a request for the URL is already kept
    reused = http.request(url, etag, modified)
    assert http.request(url, etag, modified) is reused
    headers = {"User-Agent": "ua/1", **http.headers}
    if etag:
        headers["If-None-Match"] = etag
    if modified:
        headers["If-Modified-Since"] = modified
    plain = httpx.Request("GET", url, headers=headers)
    assert (reused.method, reused.url) == (plain.method, plain.url)
    assert list(reused.headers.multi_items()) == list(plain.headers.multi_items())


def test_the_transports_parsed_urls_are_yarls_own() -> None:
    async def parse_all() -> list[tuple[yarl.URL, yarl.URL]]:
        transport = AiohttpTransport()
        try:
            return [
                (transport._parse(str(httpx.URL(u))), yarl.URL(str(httpx.URL(u)), encoded=True))
                for u in URLS * 2  # the second round comes from the cache
            ]
        finally:
            await transport.aclose()

    for cached, plain in asyncio.run(parse_all()):
        assert cached == plain and str(cached) == str(plain)


def _fragments() -> list[str]:
    corpus = ROOT / "tests" / "data"
    texts = [p.read_text("utf-8", "replace") for p in sorted(corpus.rglob("*")) if p.is_file()]
    return [t[i : i + 4000] for t in texts[:40] for i in range(0, min(len(t), 12000), 4000)]


def test_the_reusable_cleaner_equals_a_cleaner_built_per_call() -> None:
    """One ``nh3.Cleaner`` reads the entry's base URL from a ContextVar; a cleaner built for
    each call with the base bound into its filter gives the same output."""
    bases = [None, "https://e.example/a/b.html", "http://x.example/"]
    for base in bases:
        for fragment in _fragments():

            def per_call_filter(tag: str, attr: str, value: str, base: str | None) -> str | None:
                token = html._BASE.set(base)
                try:
                    return html._filter_attribute(tag, attr, value)
                finally:
                    html._BASE.reset(token)

            fresh = nh3.Cleaner(
                tags=html._TAGS,
                attributes=html._ATTRIBUTES,
                attribute_filter=partial(per_call_filter, base=base),
                url_schemes=html._SCHEMES,
                strip_comments=True,
                link_rel="noopener noreferrer",
                set_tag_attribute_values={"img": {"referrerpolicy": "no-referrer"}},
            )
            token = html._BASE.set(base)
            try:
                reused = html._sanitise(html._CLEANER, fragment)
            finally:
                html._BASE.reset(token)
            assert reused == html._sanitise(fresh, fragment)


# -- quick_init: the same objects as the dataclasses' own __init__ -------------------------------

QUICK = sorted(
    (c for m in (types, schedule) for c in vars(m).values()
     if isinstance(c, type) and "__dataclass_init__" in c.__dict__),
    key=lambda c: c.__name__,
)  # fmt: skip


def test_the_hot_value_types_have_quick_init() -> None:
    names = {c.__name__ for c in QUICK}
    assert {"Fetched", "Entry", "PollRecord", "PollOutcome", "PollState", "NextCheck"} <= names


@pytest.mark.parametrize("cls", QUICK, ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_quick_init_builds_what_the_dataclass_builds(cls: type, data: st.DataObject) -> None:
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    required = [f for f in fields if f.default is f.default_factory is dataclasses.MISSING]
    given_fields = required + [f for f in fields if f not in required and data.draw(st.booleans())]
    values = {f.name: data.draw(st.from_type(hints[f.name])) for f in given_fields}
    positional = [] if data.draw(st.booleans()) else [
        values.pop(f.name) for f in fields[: len(required)] if not f.kw_only
    ]  # fmt: skip
    plain: object = object.__new__(cls)
    cls.__dataclass_init__(plain, *positional, **values)  # type: ignore[attr-defined]
    quick = cls(*positional, **values)
    for f in dataclasses.fields(cls):  # every slot, compared or not
        mine, theirs = getattr(quick, f.name), getattr(plain, f.name)
        assert mine is theirs or mine == theirs, f.name  # (the same object, or made alike)
    assert quick == plain
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(quick, fields[0].name, None)


def test_quick_init_keeps_defaults_factories_and_errors() -> None:
    @quick_init
    @dataclasses.dataclass(frozen=True, slots=True)
    class Sample:
        a: int
        b: list[int] = dataclasses.field(default_factory=list)
        c: str = "c"
        d: int = dataclasses.field(default=4, init=False)
        e: int = dataclasses.field(default=5, kw_only=True)
        seen: list[int] = dataclasses.field(default_factory=list, init=False, compare=False)

        def __post_init__(self) -> None:
            self.seen.append(self.a)

    one, two = Sample(1), Sample(2, [9], "x", e=7)
    assert (one.b, one.c, one.d, one.e, one.seen) == ([], "c", 4, 5, [1])
    assert (two.b, two.c, two.d, two.e, two.seen) == ([9], "x", 4, 7, [2])
    assert Sample(1).b is not one.b  # a new list each time, as the factory gives
    bad: tuple[object, ...]
    for bad in ((), (1, [], "c", 4)):
        with pytest.raises(TypeError):
            Sample(*bad)
    with pytest.raises(TypeError, match="frozen, slotted"):
        quick_init(dataclasses.dataclass(frozen=False, slots=True)(type("Loose", (), {})))


def test_quick_init_refuses_what_it_cannot_build() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class WithInitVar:
        a: int
        b: dataclasses.InitVar[int] = 0

    with pytest.raises(TypeError, match="cannot build"):
        quick_init(WithInitVar)


# -- a repeat's shared history marker vs the history it stands for -----------------------------

_VALIDATORS = st.sampled_from([None, '"a"', '"b"', "Mon, 05 Jan 2026 18:00:00 GMT"])


@settings(max_examples=300, deadline=None)
@given(
    status=st.sampled_from([304, 200]),
    redirects=st.sampled_from([(), ("301 https://b.test/f",)]),
    state=st.none() | st.tuples(_VALIDATORS, _VALIDATORS),
    got=st.tuples(_VALIDATORS, _VALIDATORS),
)
def test_a_repeat_is_what_its_history_would_say(
    status: int,
    redirects: tuple[str, ...],
    state: tuple[str | None, str | None] | None,
    got: tuple[str | None, str | None],
) -> None:
    from datetime import UTC, datetime

    from aggregator.config import PollConfig, SourceConfig
    from aggregator.pipeline import REPEAT, history, unchanged
    from aggregator.schedule import Planner
    from aggregator.store.history import is_repeat
    from aggregator.types import Fetched, PollRecord, PollState

    source = SourceConfig(id="s", url="https://a.test/f")
    polled = None if state is None else PollState("s", source.url, state[0], state[1], None, 0)
    headers = {k: v for k, v in (("etag", got[0]), ("last-modified", got[1])) if v is not None}
    fetched = Fetched("s", source.url, status, None, headers, redirects=redirects)
    planner = Planner(PollConfig(), datetime(2026, 11, 28, tzinfo=UTC))
    record, _ = unchanged(planner, source, polled, fetched, started=0.0, keep=True)
    plain = PollRecord("s", "not_modified", planner.now, None, http_status=status,
                       history=history(source, polled, fetched, started=0.0))  # fmt: skip
    assert is_repeat(record) == is_repeat(plain)
    assert (record.history is REPEAT) == is_repeat(plain)
    if record.history is not REPEAT:
        assert record.history is not None
        assert record.history == replace(plain.history, duration_ms=record.history.duration_ms)


# -- the parse workers' per-entry work (issue #16) -----------------------------------------------

_TEXT = st.text(st.characters(codec="utf-8"), max_size=30)
_ODD = st.floats(allow_nan=False) | st.booleans() | st.dictionaries(_TEXT, st.integers())
_ENCLOSURE = st.tuples(
    st.none() | _TEXT, st.none() | _TEXT, st.none() | st.integers() | st.booleans() | _ODD
)
_VALUE = (
    _TEXT | st.none() | st.lists(_TEXT, max_size=4) | st.lists(_ENCLOSURE, max_size=3)
    | st.lists(_TEXT | _ENCLOSURE | _ODD, max_size=3) | _ODD
)  # fmt: skip


@given(values=st.tuples(*[_VALUE] * 8))
def test_content_hashes_are_content_hash_and_hash_fields(values: tuple[object, ...]) -> None:
    """One encoding of each value gives the hashes stored with every item: the same strings as
    encoding the whole tuple and each value apart (``hashed``'s shapes and any other)."""
    from aggregator.process.dedup import content_hash, content_hashes, hash_fields

    assert content_hashes(values) == (content_hash(values), hash_fields(values))


@given(html_text=st.text(st.sampled_from("ab <>&;/\"'=p\n\t\xa0\u200bx#3"), max_size=60))
def test_a_summary_line_is_the_one_line_of_its_text(html_text: str) -> None:
    """The summary skips ``_one_line`` for text that is already one clean line."""
    from aggregator.process import _one_line, _summary_line
    from aggregator.process.html import clean_html, cleaned_html_to_text, html_to_text

    for text in (html_to_text(html_text), cleaned_html_to_text(clean_html(html_text, base=None))):
        assert _summary_line(text) == _one_line(text)
