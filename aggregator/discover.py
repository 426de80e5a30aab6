"""Find the feeds of a web address: the address itself, its ``<link rel="alternate">``, or the
common paths (issue #12). Fetches through the daemon's own client (``fetch.make_http``: its
user agent, byte cap, timeouts and SSRF policy); parses with the daemon's own parser.

The address the person typed is trusted like a configured URL; a feed URL taken from a page
is held to the SSRF policy for redirects (``netpolicy``) unless it is on the same host.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from . import USER_AGENT
from .config import Config
from .errors import AggregatorError, FetchError, ParseError
from .fetch import Http, fetch, make_http
from .parse import parse_document
from .types import Fetched

log = logging.getLogger(__name__)

# What a page's <link rel="alternate" type=...> announces as a feed: RSS, Atom, RDF, JSON Feed
# (application/json is what JSON Feed 1.0 pages used before application/feed+json).
FEED_TYPES = frozenset(
    (
        "application/rss+xml",
        "application/atom+xml",
        "application/rdf+xml",
        "application/feed+json",
        "application/json",
    )
)
COMMON_PATHS = ("/feed", "/rss.xml", "/atom.xml", "/index.xml", "/feed.json")
_ID = "discover"  # the "source id" fetch and parse put in their messages


class DiscoveryError(AggregatorError):
    """No feed could be found at (or through) the address."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A feed found for the address: its URL, its own title, its format ("rss20", "atom10" ...)."""

    url: str
    title: str | None
    format: str
    link: str | None = None  # the site the feed is about (its htmlUrl)


Step = Callable[[str], None]  # told each URL tried: drives a progress bar


async def discover(
    http: Http,
    url: str,
    *,
    max_bytes: int,
    timeout_s: float,
    on_try: Step | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> list[Candidate]:
    """The feeds ``url`` is or names, in the page's order; DiscoveryError when there is none.

    ``on_plan`` is told how many URLs will be tried once that is known; ``on_try`` each URL.
    """
    tried = on_try or (lambda _url: None)
    try:
        fetched = await fetch(http, _ID, url, max_bytes=max_bytes, timeout_s=timeout_s)
    except FetchError as exc:
        raise DiscoveryError(f"cannot fetch {url}: {exc.detail}") from exc
    tried(url)
    here = fetched.permanent_url or url
    feed = _as_feed(fetched, here)
    if feed is not None:
        return [feed]
    links = alternate_links(fetched.body or b"", base=fetched.url)
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(fetched.url))
    guesses = [urljoin(origin, p) for p in COMMON_PATHS if urljoin(origin, p) not in links]
    if on_plan is not None:
        on_plan(1 + len(links) + len(guesses))
    found = await _try_all(http, links, url, max_bytes, timeout_s, tried)
    if found:
        return found
    found = await _try_all(http, guesses, url, max_bytes, timeout_s, tried)
    if found:
        return found
    announced = f"; the feeds it names failed: {', '.join(links)}" if links else ""
    raise DiscoveryError(
        f"no feed found at {url}: it is not a feed, names none that works"
        f"{announced}, and none of {', '.join(COMMON_PATHS)} is one"
    )


async def _try_all(
    http: Http, urls: Sequence[str], page: str, max_bytes: int, timeout_s: float, tried: Step
) -> list[Candidate]:
    found: list[Candidate] = []
    for candidate in urls:
        try:
            fetched = await fetch(http, _ID, candidate, max_bytes=max_bytes, timeout_s=timeout_s,
                                  configured_url=page)  # fmt: skip
        except FetchError as exc:
            log.info("discover url=%s found=no error=%r", candidate, exc.detail)
            tried(candidate)
            continue
        tried(candidate)
        feed = _as_feed(fetched, fetched.permanent_url or candidate)
        if feed is not None and all(f.url != feed.url for f in found):
            found.append(feed)
    return found


def _as_feed(fetched: Fetched, url: str) -> Candidate | None:
    """The document as a feed candidate, or None when it is not a feed we read."""
    try:
        parsed = parse_document(fetched.body or b"", source_id=_ID, headers=fetched.headers,
                                url=fetched.url)  # fmt: skip
    except ParseError as exc:
        log.info("discover url=%s found=no reason=%r", url, exc.detail)
        return None
    log.info("discover url=%s found=%s title=%r", url, parsed.format, parsed.title)
    return Candidate(url, parsed.title, parsed.format, parsed.link)


def alternate_links(body: bytes, *, base: str) -> list[str]:
    """The absolute URLs of a page's ``<link rel="alternate">`` feeds, in page order."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(body, "html.parser")
    base_tag = soup.find("base", href=True)
    if base_tag is not None:
        base = urljoin(base, str(base_tag["href"]))
    urls: list[str] = []
    for link in soup.find_all("link", href=True):
        rel: Any = link.get("rel") or []
        rels = rel.split() if isinstance(rel, str) else list(rel)
        kind = str(link.get("type") or "").split(";")[0].strip().lower()
        if "alternate" not in (r.lower() for r in rels) or kind not in FEED_TYPES:
            continue
        url = urljoin(base, str(link["href"]).strip())
        if urlsplit(url).scheme in ("http", "https") and url not in urls:
            urls.append(url)
    return urls


def discover_feeds(
    url: str,
    config: Config,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    on_try: Step | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> list[Candidate]:
    """``discover`` on an event loop of its own, through the daemon's client built from
    ``[poll]`` and ``[fetch]`` (tests inject a ``transport``)."""
    poll = config.poll

    async def run() -> list[Candidate]:
        if transport is not None:
            http = Http(transport, user_agent=USER_AGENT)
        else:
            http = make_http(
                user_agent=USER_AGENT,
                connect_timeout_s=poll.connect_timeout_s,
                read_timeout_s=poll.read_timeout_s,
                max_connections=poll.per_host,
                policy=config.fetch,
            )
        try:
            return await discover(http, url, max_bytes=poll.max_bytes, timeout_s=poll.timeout_s,
                                  on_try=on_try, on_plan=on_plan)  # fmt: skip
        finally:
            await http.aclose()

    return asyncio.run(run())
