"""The SSRF policy (``aggregator.netpolicy``) as ``fetch`` and the aiohttp transport apply it.

Real servers on 127.0.0.1 only, and a resolver the test controls: ``public.test``,
``evil.test`` and friends are names it maps to loopback (or to wherever the test says). Every
``connect()`` is recorded, and one to anything but loopback fails before a packet leaves, so a
test can say "no connection was attempted" and a broken policy cannot reach the network.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine, Iterator
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from aggregator.config import parse_config
from aggregator.errors import ConfigError, FetchError
from aggregator.fetch import Http, fetch, make_http
from aggregator.netpolicy import (
    DEFAULT_POLICY,
    NetPolicy,
    literal_address,
    special_kind,
)
from aggregator.transport import CONFIGURED_URL, PolicyResolver
from aggregator.types import Fetched

from .feedserver import FeedServer, Route, rss, running_feed_server

FEED = rss("t", [("a", "A")])
ALLOW_LOOPBACK = NetPolicy(allowed_networks=(ip_network("127.0.0.0/8"),))
Answer = list[str] | Callable[[], list[str]]


class FakeResolver(AbstractResolver):
    """Answers from ``names`` (a list of addresses, or a function called per lookup); numeric
    hosts ("0x7f.1") as the C library reads them, without DNS; anything else: no such host."""

    def __init__(self, names: dict[str, Answer] | None = None) -> None:
        self.names = names or {}
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        answer = self.names.get(host)
        if answer is None:
            infos = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
            )
            addresses = [str(info[4][0]) for info in infos]
        else:
            addresses = answer() if callable(answer) else answer
        return [
            {
                "hostname": host,
                "host": a,
                "port": port,
                "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for a in addresses
        ]

    async def close(self) -> None:
        pass


@pytest.fixture(autouse=True)
def connects(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every address a socket connects to; a non-loopback one is refused before any packet."""
    seen: list[tuple[str, int]] = []
    real = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        seen.append((address[0], address[1]))
        if not ip_address(address[0]).is_loopback:
            raise ConnectionRefusedError(f"test: no network beyond loopback ({address[0]})")
        real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


def run(coro: Coroutine[Any, Any, Fetched]) -> Fetched:
    # asyncio's selector loop, whose sock_connect calls socket.connect (the spy above).
    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        return runner.run(coro)


def poll(
    url: str,
    *,
    policy: NetPolicy = DEFAULT_POLICY,
    resolver: FakeResolver | None = None,
    configured_url: str | None = None,
) -> Fetched:
    async def go() -> Fetched:
        http = make_http(user_agent="ua", policy=policy, resolver=resolver or FakeResolver())
        try:
            return await fetch(http, "s", url, configured_url=configured_url, timeout_s=10)
        finally:
            await http.aclose()

    return run(go())


def refusal(url: str, **kwargs: Any) -> str:
    with pytest.raises(FetchError) as info:
        poll(url, **kwargs)
    return str(info.value)


@pytest.fixture
def origin() -> Iterator[FeedServer]:
    """The feed a source is configured with (reached as ``public.test``)."""
    with running_feed_server() as s:
        yield s


@pytest.fixture
def target() -> Iterator[FeedServer]:
    """What a redirect points at: it must see nothing when the policy refuses."""
    with running_feed_server() as s:
        s.routes["/secret"] = Route(body=FEED)
        yield s


def names(**extra: Answer) -> FakeResolver:
    return FakeResolver({"public.test": ["127.0.0.1"], **extra})


def redirect_to(origin: FeedServer, location: str) -> str:
    """Make ``origin`` answer its feed with a 302 to ``location``; the feed's public URL."""
    origin.routes["/feed"] = Route(status=302, location=location)
    return f"http://public.test:{origin.port}/feed"


def untouched(target: FeedServer, connects: list[tuple[str, int]]) -> bool:
    return not target.requests and all(port != target.port for _, port in connects)


# Redirects out of a public feed ----------------------------------------------------------------


@pytest.mark.slow
def test_redirect_from_public_host_to_loopback_is_refused(
    origin: FeedServer, target: FeedServer, connects: list[tuple[str, int]]
) -> None:
    url = redirect_to(origin, target.url("/secret"))
    message = refusal(url, resolver=names())
    assert message == (
        "s: refused: redirect to loopback address 127.0.0.1 "
        "(ssrf policy, see [fetch] allow_private_redirects)"
    )
    assert origin.count("/feed") == 1 and untouched(target, connects)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("http://10.0.0.1/x", "redirect to private address 10.0.0.1"),
        ("http://172.16.5.4/x", "redirect to private address 172.16.5.4"),
        ("http://192.168.1.1/x", "redirect to private address 192.168.1.1"),
        ("http://100.64.0.1/x", "redirect to shared (CGNAT) address 100.64.0.1"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata address 169.254.169.254"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "cloud metadata address fd00:ec2::254"),
        ("http://100.100.100.200/latest/meta-data/", "cloud metadata address 100.100.100.200"),
        ("http://169.254.1.1/x", "redirect to link-local address 169.254.1.1"),
        ("http://[fe80::1%25eth0]/x", "redirect to link-local address fe80::1"),
        ("http://[fc00::1]/x", "redirect to unique-local address fc00::1"),
        ("http://[fd12:3456::1]/x", "redirect to unique-local address fd12:3456::1"),
        ("http://[::1]:{port}/secret", "redirect to loopback address ::1"),
        ("http://0.0.0.0:{port}/secret", "redirect to unspecified address 0.0.0.0"),
        ("http://[::]:{port}/secret", "redirect to unspecified address ::"),
        ("http://224.0.0.1/x", "redirect to multicast address 224.0.0.1"),
        ("http://[ff02::1]/x", "redirect to multicast address ff02::1"),
        ("http://240.0.0.1/x", "redirect to reserved address 240.0.0.1"),
        ("http://192.0.2.1/x", "redirect to special-purpose address 192.0.2.1"),
        ("http://[64:ff9b::a00:1]/x", "redirect to private address 10.0.0.1"),  # NAT64
    ],
)
def test_redirect_into_special_ranges_is_refused_before_connecting(
    origin: FeedServer,
    target: FeedServer,
    connects: list[tuple[str, int]],
    location: str,
    expected: str,
) -> None:
    url = redirect_to(origin, location.format(port=target.port))
    assert expected in refusal(url, resolver=names())
    assert connects == [("127.0.0.1", origin.port)]  # the feed itself, nothing else
    assert untouched(target, connects)


@pytest.mark.slow
def test_hostname_resolving_to_a_private_address_is_refused_on_redirect(
    origin: FeedServer, target: FeedServer, connects: list[tuple[str, int]]
) -> None:
    resolver = names(**{"evil.test": ["127.0.0.1"], "intra.test": ["10.1.2.3"]})
    url = redirect_to(origin, f"http://evil.test:{target.port}/secret")
    assert "redirect to evil.test at loopback address 127.0.0.1" in refusal(url, resolver=resolver)
    url = redirect_to(origin, "http://intra.test/x")
    assert "redirect to intra.test at private address 10.1.2.3" in refusal(url, resolver=resolver)
    assert untouched(target, connects) and resolver.lookups.count("evil.test") == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "location",
    [
        "http://2130706433:{port}/secret",  # decimal
        "http://[::ffff:127.0.0.1]:{port}/secret",  # IPv4-mapped IPv6
        "http://[::ffff:7f00:1]:{port}/secret",
        "http://0x7f.1:{port}/secret",  # hex, short: a name to aiohttp, its resolver reads it
    ],
)
def test_other_spellings_of_loopback_are_refused(
    origin: FeedServer, target: FeedServer, connects: list[tuple[str, int]], location: str
) -> None:
    url = redirect_to(origin, location.format(port=target.port))
    assert "loopback address 127.0.0.1" in refusal(url, resolver=names())
    assert untouched(target, connects)


@pytest.mark.slow
def test_octal_loopback_is_an_invalid_url_not_a_crash(
    origin: FeedServer, target: FeedServer, connects: list[tuple[str, int]]
) -> None:
    """httpx refuses to read "0177.0.0.1" at all: a FetchError for the source, not a bug."""
    url = redirect_to(origin, f"http://0177.0.0.1:{target.port}/secret")
    assert "invalid URL" in refusal(url, resolver=names())
    assert untouched(target, connects)


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("fe80::1%25eth0", "fe80::1"),
        ("10.0.0.1", "10.0.0.1"),
    ],
)
def test_literal_spellings_are_read_as_the_os_reads_them(host: str, address: str) -> None:
    parsed = literal_address(host)
    assert parsed == ip_address(address)
    assert special_kind(parsed) in ("loopback", "link-local", "private")


@pytest.mark.parametrize("host", ["0x7f.1", "public.test", "localhost", "127.0.0.1.evil.test"])
def test_names_are_left_to_the_resolver(host: str) -> None:
    assert literal_address(host) is None


def test_a_host_that_looks_numeric_but_is_no_address_is_refused() -> None:
    with pytest.raises(ValueError, match="not an IPv4 address"):
        literal_address("1.2.3.4.5")
    assert "unreadable address '1.2.3.4.5'" in refusal("http://1.2.3.4.5/feed")


# What the admin configured --------------------------------------------------------------------


@pytest.mark.slow
def test_configured_local_url_and_its_redirects_on_the_same_host_are_allowed(
    origin: FeedServer,
) -> None:
    origin.routes["/feed"] = Route(status=301, location="/moved")
    origin.routes["/moved"] = Route(body=FEED)
    got = poll(origin.url("/feed"))
    assert (got.status, got.body, got.permanent_url) == (200, FEED, origin.url("/moved"))
    # A name the admin chose may resolve to a private address, and keep its host on redirect.
    origin.routes["/feed"] = Route(status=302, location=f"http://intra.test:{origin.port}/moved")
    got = poll(
        f"http://intra.test:{origin.port}/feed",
        resolver=FakeResolver({"intra.test": ["127.0.0.1"]}),
    )
    assert got.body == FEED


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://100.100.100.200/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://[fd00:ec2::254%25eth0]/latest/meta-data/",
        "http://metadata.test/computeMetadata/v1/",
    ],
)
def test_metadata_is_refused_even_when_configured(
    url: str, connects: list[tuple[str, int]]
) -> None:
    resolver = FakeResolver({"metadata.test": ["169.254.169.254"]})
    for policy in (DEFAULT_POLICY, NetPolicy(allow_private_redirects=True)):
        message = refusal(url, resolver=resolver, policy=policy)
        assert "cloud metadata address" in message and "never fetched" in message
    assert connects == []


@pytest.mark.slow
def test_a_moved_feed_is_held_to_the_redirect_rules(
    target: FeedServer, connects: list[tuple[str, int]]
) -> None:
    """The stored URL of a feed that moved (301) is not the admin's: only its host's own."""
    resolver = FakeResolver({"evil.test": ["127.0.0.1"]})
    moved = f"http://evil.test:{target.port}/secret"
    message = refusal(moved, resolver=resolver, configured_url="http://public.test/feed")
    assert "redirect to evil.test at loopback address 127.0.0.1" in message
    assert untouched(target, connects)
    assert poll(moved, resolver=resolver, configured_url="http://EVIL.test/").body == FEED


# Settings --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_allow_private_redirects_lets_the_redirect_through_but_not_to_metadata(
    origin: FeedServer, target: FeedServer
) -> None:
    policy = NetPolicy(allow_private_redirects=True)
    resolver = names(**{"evil.test": ["127.0.0.1"]})
    for location in (target.url("/secret"), f"http://evil.test:{target.port}/secret"):
        assert poll(redirect_to(origin, location), policy=policy, resolver=resolver).body == FEED
    assert target.count("/secret") == 2
    url = redirect_to(origin, "http://169.254.169.254/latest/meta-data/")
    assert "cloud metadata address" in refusal(url, policy=policy, resolver=resolver)


@pytest.mark.slow
def test_allowed_networks_open_those_networks_only(origin: FeedServer, target: FeedServer) -> None:
    resolver = names(**{"evil.test": ["127.0.0.1"]})
    url = redirect_to(origin, f"http://evil.test:{target.port}/secret")
    assert poll(url, policy=ALLOW_LOOPBACK, resolver=resolver).body == FEED
    url = redirect_to(origin, "http://10.0.0.1/x")
    assert "private address 10.0.0.1" in refusal(url, policy=ALLOW_LOOPBACK, resolver=resolver)
    link_local = NetPolicy(allowed_networks=(ip_network("169.254.0.0/16"),))
    url = redirect_to(origin, "http://169.254.169.254/latest/meta-data/")
    assert "cloud metadata address" in refusal(url, policy=link_local, resolver=resolver)


def test_fetch_table_in_the_config(tmp_path: Path) -> None:
    assert parse_config({}, path=tmp_path / "a.toml").fetch == NetPolicy()
    config = parse_config(
        {
            "fetch": {
                "allow_private_redirects": True,
                "allowed_networks": ["10.1.0.0/16", "fd12::/16"],
            }
        },
        path=tmp_path / "a.toml",
    )
    assert config.fetch == NetPolicy(
        allow_private_redirects=True,
        allowed_networks=(ip_network("10.1.0.0/16"), ip_network("fd12::/16")),
    )


def test_bad_fetch_settings_are_listed(tmp_path: Path) -> None:
    raw = {
        "fetch": {
            "allow_private_redirects": "yes",
            "allowed_networks": ["10.1.2.3/24", "fd00::/200", "10.0.0.0/8"],
            "allow_private": True,
        }
    }
    with pytest.raises(ConfigError) as info:
        parse_config(raw, path=tmp_path / "a.toml")
    problems = "\n".join(info.value.problems)
    for expected in (
        "fetch.allow_private_redirects: must be true or false",
        "fetch.allowed_networks: 10.1.2.3/24 has host bits set; ",
        "fetch.allow_private: unknown key",
    ):
        assert expected in problems
    assert len(info.value.problems) == 3
    with pytest.raises(ConfigError, match=r"fetch.allowed_networks: must be a list of networks"):
        parse_config({"fetch": {"allowed_networks": "10.0.0.0/8"}}, path=tmp_path / "a.toml")


# DNS and the connection pool --------------------------------------------------------------------


@pytest.mark.slow
def test_dns_rebinding_cannot_slip_between_check_and_connect(
    origin: FeedServer, target: FeedServer, connects: list[tuple[str, int]]
) -> None:
    """A name that answers an allowed address once, then loopback: the connection goes to the
    address that was checked (one lookup per connection), and the next lookup is checked too.

    127.0.0.2 stands for "public": the policy is told so; nothing listens there.
    """
    answers = iter([["127.0.0.2"], ["127.0.0.1"]])
    resolver = names(**{"rebind.test": lambda: next(answers)})
    policy = NetPolicy(allowed_networks=(ip_network("127.0.0.2/32"),))
    url = redirect_to(origin, f"http://rebind.test:{target.port}/secret")
    assert "ConnectError" in refusal(url, policy=policy, resolver=resolver)  # 127.0.0.2: nobody
    assert ("127.0.0.2", target.port) in connects and resolver.lookups.count("rebind.test") == 1
    message = refusal(url, policy=policy, resolver=resolver)
    assert "redirect to rebind.test at loopback address 127.0.0.1" in message
    assert resolver.lookups.count("rebind.test") == 2 and not target.requests


@pytest.mark.slow
def test_a_configured_hosts_pooled_connection_carries_no_redirect_there(
    origin: FeedServer, target: FeedServer
) -> None:
    """Source b is configured at intra.test (allowed); source a's redirect there is not, even
    while b's keep-alive connection to it sits in the pool."""
    resolver = names(**{"intra.test": ["127.0.0.1"]})
    intra = f"http://intra.test:{target.port}/secret"
    url = redirect_to(origin, intra)

    async def go() -> tuple[Fetched, BaseException | Fetched]:
        http = make_http(user_agent="ua", resolver=resolver)
        try:
            b = await fetch(http, "b", intra)
            try:
                a: BaseException | Fetched = await fetch(http, "a", url)
            except FetchError as exc:
                a = exc
            return b, a
        finally:
            await http.aclose()

    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        b, a = runner.run(go())
    assert isinstance(b, Fetched) and b.body == FEED
    assert isinstance(a, FetchError) and "redirect to intra.test at loopback" in str(a)
    assert target.count("/secret") == 1


def test_policy_resolver_keeps_the_allowed_answers_only() -> None:
    base = FakeResolver({"mixed.test": ["8.8.8.8", "10.0.0.1", "169.254.169.254", "::1"]})

    async def answers(redirect: bool) -> list[str]:
        resolver = PolicyResolver(base, DEFAULT_POLICY, redirect=redirect)
        return [info["host"] for info in await resolver.resolve("mixed.test", 80)]

    assert asyncio.run(answers(True)) == ["8.8.8.8"]
    assert asyncio.run(answers(False)) == ["8.8.8.8", "10.0.0.1", "::1"]


def test_only_requests_off_the_configured_host_carry_the_configured_url() -> None:
    """The warm poll's request has no extension (nothing to check per poll); hops elsewhere do."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/feed":
            return httpx.Response(302, headers={"Location": "https://cdn.example/f"})
        return httpx.Response(200, content=FEED)

    async def go() -> Fetched:
        http = Http(httpx.MockTransport(handler), user_agent="ua")
        return await fetch(http, "s", "https://feeds.example/feed")

    assert asyncio.run(go()).body == FEED
    assert [r.extensions.get(CONFIGURED_URL) for r in seen] == [
        None,
        "https://feeds.example/feed",
    ]


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("64:ff9b::808:808", None),  # NAT64 of a public address stays public
        ("::ffff:8.8.8.8", None),
        ("127.0.0.53", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("100.127.255.255", "shared (CGNAT)"),
        ("255.255.255.255", "reserved"),
        ("2001:db8::1", "special-purpose"),
        ("198.18.0.1", "special-purpose"),
    ],
)
def test_special_kinds(address: str, kind: str | None) -> None:
    assert special_kind(ip_address(address)) == kind
