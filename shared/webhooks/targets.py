"""SSRF guard for webhook URLs: which URLs may be called, and at which vetted IP addresses.

A webhook URL is chosen by a tenant, so without a guard the delivery worker becomes a proxy into the
private network (databases, the cloud metadata service, admin panels on loopback). Every address a host
resolves to is checked, because a name may resolve to several and the connection could land on any of them.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from shared.errors import InvalidInput

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}
ALLOW_HINT = "add its network to WEBHOOK_ALLOWED_NETWORKS to allow it"

# NAT64 gateways translate this prefix to the embedded IPv4 address, so it must be judged by that address.
_NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
_CLOUD_METADATA = {ipaddress.IPv4Address("169.254.169.254"), ipaddress.IPv6Address("fd00:ec2::254")}
_SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")


def parse_networks(text: str) -> list[IPNetwork]:
    """Parse a comma-separated list of CIDR networks such as ``"127.0.0.0/8, ::1"``.

    Blank entries are ignored; a bare address means a single host (/32 or /128). Host bits set in a CIDR
    (``"10.1.2.3/8"``) are accepted and cleared, since the intent of such an entry is unambiguous.
    Raises ``ValueError`` naming the first entry that is not a network.
    """
    networks: list[IPNetwork] = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(f"invalid network {entry!r}: expected an IP address or CIDR ({exc})") from None
    return networks


@dataclass(frozen=True)
class Target:
    """A vetted webhook URL: where to connect (``addresses``) and what to ask for once connected.

    ``host`` is the host as written in the URL, lowercased, without IPv6 brackets; it is what goes into the
    ``Host`` header and the TLS server name, while the connection itself goes to one of ``addresses``.
    """

    url: str
    scheme: str
    host: str
    port: int
    path_and_query: str
    addresses: tuple[str, ...]

    @property
    def host_header(self) -> str:
        """The ``Host`` header value: the host, bracketed if IPv6, with the port unless it is the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == DEFAULT_PORTS[self.scheme]:
            return host
        return f"{host}:{self.port}"


def _effective_address(ip: IPAddress) -> IPAddress:
    """The address that will really be reached: IPv4-mapped and NAT64 IPv6 addresses are their IPv4."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64_PREFIX:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def _refusal_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` must not be called by default, or ``None`` when it is a public unicast address."""
    if ip in _CLOUD_METADATA:
        return "a link-local address (cloud metadata service)"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED_ADDRESS_SPACE:
        return "a shared (carrier-grade NAT) address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "not a globally routable address"
    return None


def _is_allowed(ip: IPAddress, effective: IPAddress, allowed_networks: Sequence[IPNetwork]) -> bool:
    # Both forms are checked so "127.0.0.0/8" also covers ::ffff:127.0.0.1 (`in` is False across versions).
    return any(ip in network or effective in network for network in allowed_networks)


def _split(url: str) -> SplitResult:
    if not isinstance(url, str) or not url:
        raise InvalidInput("url", "url must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput("url", f"url must be at most {MAX_URL_LENGTH} characters")
    # Spaces and control characters would be rejected or, worse, reinterpreted (header injection) downstream.
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        raise InvalidInput("url", "url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidInput("url", f"url is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in DEFAULT_PORTS:
        raise InvalidInput("url", "url must use http or https")
    if "@" in parts.netloc:
        raise InvalidInput("url", "url must not contain credentials (user:password@)")
    if not parts.hostname:
        raise InvalidInput("url", "url must have a host")
    return parts


def resolve_target(url: str, allowed_networks: Sequence[IPNetwork]) -> Target:
    """Check a webhook URL and resolve its host to addresses that are safe to connect to.

    Only ``http``/``https`` URLs with a host, without credentials and at most 2048 characters long are
    accepted. The host is resolved (IP literals need no DNS) and the URL is refused if ANY resolved address
    is not globally routable (loopback, private, link-local, multicast, unspecified, reserved...) unless
    that address lies in ``allowed_networks``. Raises ``InvalidInput("url", ...)`` with the reason.
    """
    parts = _split(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise InvalidInput("url", "url port must be a number between 0 and 65535") from None
    if port == 0:
        raise InvalidInput("url", "url port must be between 1 and 65535")
    path_and_query = parts.path or "/"
    if parts.query:
        path_and_query = f"{path_and_query}?{parts.query}"

    addresses = _resolve(host, port)
    literal = len(addresses) == 1 and _as_ip(host) is not None
    for address in addresses:
        ip = ipaddress.ip_address(address)
        effective = _effective_address(ip)
        reason = _refusal_reason(effective)
        if reason is None or _is_allowed(ip, effective, allowed_networks):
            continue
        where = f"url host {host}" if literal else f"url host {host} resolves to {address}, which"
        raise InvalidInput("url", f"{where} is {reason}; {ALLOW_HINT}")

    return Target(
        url=url,
        scheme=scheme,
        host=host,
        port=port,
        path_and_query=path_and_query,
        addresses=addresses,
    )


def _as_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _resolve(host: str, port: int) -> tuple[str, ...]:
    literal = _as_ip(host)
    if literal is not None:
        return (str(literal),)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise InvalidInput("url", f"url host {host} could not be resolved") from None
    addresses: list[str] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise InvalidInput("url", f"url host {host} could not be resolved")
    return tuple(addresses)
