"""The Atom writer writes text (``render_atom``) in the very bytes lxml writes for the same tree
(``render_atom_tree``, the plain path): any value, any links, archive pages and current
documents alike (issue #16: the first render of a large store writes every archive page)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.render._common import FeedLinks
from aggregator.render.archive import page_links, render_archive_page
from aggregator.render.atom import render_atom, render_atom_tree
from aggregator.types import Channel, Enclosure, Provenance, StoredEntry

from . import strategies as s

optional_texts = st.none() | s.texts
MOMENT = datetime(2021, 3, 22, 4, 4, tzinfo=UTC)

enclosures = st.builds(
    Enclosure,
    url=s.texts,
    type=st.none() | st.sampled_from(["audio/mpeg", "bogus", "", "a/b\n"]) | s.texts,
    length=st.none() | st.integers(-5, 10**12),
)
provenances = st.builds(
    Provenance,
    source_id=s.words,
    source_title=s.texts,
    source_url=s.urls,
    feed_link=st.none() | s.urls,
    link=st.none() | s.urls,
    guid=optional_texts,
)
entries = st.builds(
    StoredEntry,
    uid=s.texts,
    title=s.texts,
    link=st.none() | s.urls,
    author=optional_texts,
    published_at=s.moments,
    updated_at=s.moments,
    content_html=st.one_of(s.html_inputs, s.texts),
    summary=s.texts | st.sampled_from(["", "  \n", " a "]),
    thumbnail=st.none() | s.urls,
    categories=st.lists(s.texts | s.words, max_size=3).map(tuple),
    enclosures=st.lists(enclosures, max_size=2).map(tuple),
    group=st.none() | s.words,
    sources=st.lists(provenances, max_size=2).map(tuple),
)
channels = st.builds(
    Channel,
    name=s.words,
    title=s.texts,
    base_url=st.sampled_from(["http://127.0.0.1:8080/", "https://example.org/a b/&x/"]),
    subtitle=optional_texts,
)
links = st.builds(
    FeedLinks,
    hub=st.none() | s.urls,
    alternate=st.none() | s.urls,
    prev_archive=st.none() | s.urls,
    current=st.none() | s.urls,
    self_href=st.none() | s.urls,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(channel=channels, items=st.lists(entries, max_size=4), feed_links=links)
def test_the_text_writer_writes_what_lxml_writes(
    channel: Channel, items: list[StoredEntry], feed_links: FeedLinks
) -> None:
    assert render_atom(channel, items, links=feed_links) == render_atom_tree(
        channel, items, links=feed_links
    )


@settings(max_examples=50, deadline=None)
@given(channel=channels, items=st.lists(entries, min_size=1, max_size=3), page=st.integers(1, 3))
def test_archive_pages_are_the_same_bytes(
    channel: Channel, items: list[StoredEntry], page: int
) -> None:
    expected = render_atom_tree(
        channel, tuple(reversed(items)), links=page_links(channel, page, alternate="http://a/")
    )
    assert render_archive_page(channel, items, page, alternate="http://a/") == expected


def test_every_branch_at_once() -> None:
    """One entry with every optional part, and characters each escape must handle."""
    odd = "a&b<c>d\"e'f\r\ng\th ]]> é 中文 \U0001f600"
    source = Provenance("s", odd, f"http://x/{odd}", f"http://y/{odd}", None, None)
    entry = StoredEntry(
        uid=odd, title=odd, link=f"http://z/{odd}", author=odd, published_at=MOMENT,
        updated_at=MOMENT, content_html=f"<p>{odd}</p>", summary=odd, thumbnail=odd,
        categories=(odd, "", "  "), sources=(source, source), group="g",
        enclosures=(Enclosure(odd, "audio/mpeg", 12), Enclosure("", "x/y"), Enclosure(odd, "no")),
    )  # fmt: skip
    channel = Channel("all", odd, "http://127.0.0.1/", subtitle=odd)
    every = FeedLinks(hub=odd, alternate=odd, prev_archive=odd, current=odd, self_href=odd)
    for feed_links in (every, FeedLinks()):
        data = render_atom(channel, [entry, entry], links=feed_links)
        assert data == render_atom_tree(channel, [entry, entry], links=feed_links)
    assert b"&#13;" in data and b"&quot;" in data and b"&#10;" in data and b"&#9;" in data
    assert render_atom(channel, []) == render_atom_tree(channel, [])
