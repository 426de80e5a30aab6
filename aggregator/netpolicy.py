"""Where a fetch may connect (the SSRF policy): which addresses are public, which never are.

Pure: no I/O, no DNS. ``transport`` applies it to every address aiohttp is about to connect to
(resolved names through its resolver, IP literals before the request is sent).

The rule: the admin's config is trusted, a feed's redirect is not. A source's configured host
(and every later request to that same host) may be any address but a cloud metadata one; a
request to another host (where a redirect, or a moved feed, took the fetch) must reach a public
address unless ``[fetch] allow_private_redirects`` or ``allowed_networks`` say otherwise.
Cloud metadata addresses are refused always, configured or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

# Instance metadata services hand out the machine's cloud credentials to anyone who can send it a
# GET: the classic SSRF prize, so no config can reach them.
METADATA = frozenset(
    ip_address(a)
    for a in (
        # AWS EC2 (IPv4 and IPv6), Google Cloud, Azure:
        # https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html
        # https://cloud.google.com/compute/docs/metadata/querying-metadata
        # https://learn.microsoft.com/azure/virtual-machines/instance-metadata-service
        "169.254.169.254",
        "fd00:ec2::254",
        # Alibaba Cloud ECS:
        # https://www.alibabacloud.com/help/en/ecs/user-guide/view-instance-metadata
        "100.100.100.200",
    )
)

# Special-purpose ranges a redirect may not reach, with the word the refusal uses. Anything else
# the IANA registries call non-global (RFC 6890: documentation, benchmarking ...) is
# "special-purpose"; multicast is listed because ``ipaddress`` calls much of it global.
_SPECIAL: tuple[tuple[Network, str], ...] = tuple(
    (ip_network(net), kind)
    for net, kind in (
        ("0.0.0.0/8", "unspecified"),  # RFC 1122 3.2.1.3; Linux connects 0.0.0.0 to itself
        ("10.0.0.0/8", "private"),  # RFC 1918
        ("172.16.0.0/12", "private"),
        ("192.168.0.0/16", "private"),
        ("100.64.0.0/10", "shared (CGNAT)"),  # RFC 6598
        ("127.0.0.0/8", "loopback"),  # RFC 1122
        ("169.254.0.0/16", "link-local"),  # RFC 3927
        ("224.0.0.0/4", "multicast"),  # RFC 5771
        ("240.0.0.0/4", "reserved"),  # RFC 1112, with the broadcast address
        ("::/128", "unspecified"),  # RFC 4291
        ("::1/128", "loopback"),
        ("fe80::/10", "link-local"),
        ("fc00::/7", "unique-local"),  # RFC 4193
        ("ff00::/8", "multicast"),
    )
)
_NAT64 = ip_network("64:ff9b::/96")  # RFC 6052: IPv4 addresses written in IPv6


def parse_address(text: str) -> Address:
    """An address from its text, without an IPv6 zone ("fe80::1%eth0"); ValueError if none."""
    return ip_address(text.partition("%")[0])


def literal_address(host: str) -> Address | None:
    """The address a URL host names without DNS, as the OS reads it; None for a name.

    Mirrors ``aiohttp.helpers.is_ip_address`` (a colon, or only digits and dots): aiohttp hands
    such hosts to the socket without asking its resolver, and the C library reads legacy IPv4
    spellings ("2130706433", "0177.0.0.1", "127.1") as ``inet_aton`` does. ValueError when the
    host looks like an address but is none (nothing would vouch for where it goes).
    """
    if ":" in host:
        return parse_address(host)
    if not host.replace(".", "").isdigit():
        return None
    import socket  # here: ``config`` imports this module, and ``aggregator check`` needs no socket

    try:
        return IPv4Address(socket.inet_aton(host))
    except OSError as exc:
        raise ValueError(f"not an IPv4 address: {host!r}") from exc


def unwrap(address: Address) -> Address:
    """The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d) or NAT64 IPv6 address."""
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def special_kind(address: Address) -> str | None:
    """What kind of non-public address this is ("loopback", "private" ...); None: public."""
    address = unwrap(address)
    for network, kind in _SPECIAL:
        if address in network:
            return kind
    return None if address.is_global else "special-purpose"


@dataclass(frozen=True, slots=True)
class NetPolicy:
    """The ``[fetch]`` table: where requests to hosts other than a source's own may go."""

    allow_private_redirects: bool = False  # any address but cloud metadata
    allowed_networks: tuple[Network, ...] = ()  # reachable by redirects even when private

    @property
    def strict(self) -> bool:
        """True when a redirect is held to more than the metadata check."""
        return not self.allow_private_redirects

    def refusal(self, address: Address, *, redirect: bool, host: str | None = None) -> str | None:
        """Why ``address`` may not be connected to, or None when it may.

        ``redirect``: the request goes to another host than the source's configured one;
        ``host``: the name that resolved to ``address``, for the message.
        """
        address = unwrap(address)
        at = f"{host} at " if host else ""
        if address in METADATA:
            return f"{at}cloud metadata address {address} (ssrf policy: never fetched)"
        if not redirect or not self.strict:
            return None
        kind = special_kind(address)
        if kind is None or any(address in network for network in self.allowed_networks):
            return None
        return (
            f"redirect to {at}{kind} address {address} "
            "(ssrf policy, see [fetch] allow_private_redirects)"
        )


DEFAULT_POLICY = NetPolicy()  # redirects reach public addresses only
