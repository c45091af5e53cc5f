"""Outbound HTTP to URLs others chose (webhooks), that cannot be turned on the platform's own network.

A URL an agency registers is fetched by the platform from inside its network, so without care
it is a server-side request forgery: `http://10.0.3.7:50051/`, `http://169.254.169.254/` (the
cloud's metadata service), `http://2130706433/` (127.0.0.1 written as a number). The rules:

- A host's addresses are all checked, after resolution, at registration and again on every
  connection. One refused address refuses the host: a name that resolves to a public and a
  private address is not "mostly public".
- Refused: loopback, unspecified (`0.0.0.0`, `::`), private (10/8, 172.16/12, 192.168/16,
  fc00::/7), shared CGNAT (100.64/10), link-local (169.254/16, fe80::/10), site-local
  (fec0::/10), multicast, reserved and every other address not globally routable; IPv4
  addresses inside IPv6 (IPv4-mapped `::ffff:a.b.c.d`, 6to4 `2002::/16`, NAT64 `64:ff9b::/96`)
  are judged as the IPv4 address they carry. Numeric hosts are read the way the C resolver
  reads them (`127.1`, `0x7f.1`, `017700000001`), `localhost` names are loopback without asking
  DNS (RFC 6761), and the cloud metadata names and addresses are refused whatever else is set.
- An operator allow-list of CIDRs (agencies whose receivers really are on a private network)
  lets those addresses through; it never lets a metadata endpoint through.
- The connection goes to the address that was checked (the transport resolves and checks in
  one step, so DNS cannot answer differently between the check and the connect); the Host
  header, TLS SNI and certificate check still use the name. No proxy from the environment,
  no redirects followed.

`OutboundRefused.reason` is safe to show the agency: it names the rule, not what lies behind it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> the addresses it resolves to (text, in the resolver's order)
Resolver = Callable[[str, int], list[str]]

# Names of cloud metadata services (instance credentials): never fetched, allow-list or not.
METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
        "metadata.tencentyun.com",
        "metadata.oraclecloud.com",
    }
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean
        "169.254.170.2",  # AWS ECS task credentials
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure WireServer (a public address)
    )
)
_LOCALHOST = re.compile(r"^(localhost|localhost\.localdomain|ip6-localhost|ip6-loopback)$|\.localhost$")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NUMBER = re.compile(r"^(0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*)$")


class OutboundRefused(Exception):
    """A URL, or an address its host resolves to, that the platform will not fetch."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host:port (TCP), in its order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _number(part: str) -> int:
    if part.startswith("0x"):
        return int(part[2:] or "0", 16)
    return int(part, 8) if len(part) > 1 and part[0] == "0" else int(part)


def numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address a numeric host means to inet_aton: `127.1`, `2130706433`, `0x7f.0.0.1`,
    `0177.0.0.1` all mean 127.0.0.1. None when the host is not numeric in that sense."""
    parts = host.lower().split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMBER.fullmatch(p) for p in parts):
        return None
    values = [_number(p) for p in parts]
    # a.b.c.d; a.b.c (c fills 16 bits); a.b (b fills 24 bits); a (32 bits)
    limits = [256] * (len(values) - 1) + [256 ** (5 - len(values))]
    if any(v >= limit for v, limit in zip(values, limits, strict=True)):
        return None
    number = 0
    for value in values[:-1]:
        number = number * 256 + value
    number = number * limits[-1] + values[-1]
    return ipaddress.IPv4Address(number)


def literal_address(host: str) -> IPAddress | None:
    """The address a URL host names literally (IPv6 with or without brackets and zone, IPv4 in
    any form the C resolver accepts), or None for a name."""
    text = host.strip("[]")
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text.split("%", 1)[0])
        except ValueError:
            return None
    return numeric_ipv4(text)


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_kind(address: IPAddress) -> str | None:
    """Why an address is not public ("loopback", "private", …), or None for a public address."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata"
    inner = embedded_ipv4(address)
    if inner is not None:
        return address_kind(inner)
    checks: list[tuple[bool, str]] = [
        (address.is_unspecified, "an unspecified"),
        (address.is_loopback, "a loopback"),
        (address.is_link_local, "a link-local"),
        (address.is_multicast, "a multicast"),
        (isinstance(address, ipaddress.IPv6Address) and address.is_site_local, "a site-local"),
        (address in _SHARED, "a shared (CGNAT)"),
        (address.is_reserved, "a reserved"),
        (address.is_private, "a private"),
        (not address.is_global, "a non-public"),
    ]
    return next((kind for hit, kind in checks if hit), None)


@dataclass(frozen=True)
class OutboundPolicy:
    """Which addresses outbound requests may reach: public ones, plus `allowed_networks`."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str], resolver: Resolver = system_resolver) -> OutboundPolicy:
        """A policy allowing these CIDRs (`10.20.0.0/16`, `fd12:3456::/48`); ValueError on a bad one."""
        networks = []
        for cidr in cidrs:
            try:
                networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError as error:
                raise ValueError(f"allowed CIDR {cidr!r} is not a network: {error}") from None
        return cls(tuple(networks), resolver)

    def allowed(self, address: IPAddress) -> bool:
        candidates = [a for a in (address, embedded_ipv4(address)) if a is not None]
        return any(
            a in network
            for a in candidates
            for network in self.allowed_networks
            if a.version == network.version
        )

    def address_problem(self, address: IPAddress) -> str | None:
        """None when the platform may connect to `address`, else why not (safe to show)."""
        kind = address_kind(address)
        if kind is None or (kind != "a cloud metadata" and self.allowed(address)):
            return None
        return f"{kind} address"

    def check_host(self, host: str, port: int) -> list[str]:
        """The addresses of host:port, every one checked; OutboundRefused when any is refused."""
        name = host.strip("[]").lower().rstrip(".")
        if not name:
            raise OutboundRefused("the URL has no host")
        if name in METADATA_NAMES:
            raise OutboundRefused(f"{name} is a cloud metadata service")
        literal = literal_address(name)
        if literal is not None:
            addresses: list[IPAddress] = [literal]
        elif _LOCALHOST.search(name):
            addresses = [ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1")]
        else:
            try:
                found = self.resolver(name, port)
            except (OSError, UnicodeError):
                found = []
            if not found:
                raise OutboundRefused(f"{name} does not resolve")
            addresses = []
            for text in found:
                try:
                    addresses.append(ipaddress.ip_address(text.split("%", 1)[0]))
                except ValueError:
                    raise OutboundRefused(f"{name} resolves to something that is not an address") from None
        for address in addresses:
            problem = self.address_problem(address)
            if problem is not None:
                what = name if literal is None else "the host"
                raise OutboundRefused(f"{what} is {problem}; the platform does not connect there")
        return [str(a) for a in addresses]

    def check_url(self, url: str) -> httpx.URL:
        """An absolute http(s) URL whose host may be reached now (resolved and checked)."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError, TypeError) as error:
            raise OutboundRefused(f"{url!r} is not a URL: {error}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise OutboundRefused(f"{url!r} must be an absolute http(s) URL")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self.check_host(parsed.raw_host.decode("ascii"), port)
        return parsed


class _CheckedBackend(httpcore.SyncBackend):
    """Opens TCP connections only to addresses the policy allows: resolves, checks every
    address, then connects to a checked one (never asks DNS again)."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        failure: Exception | None = None
        for address in self._policy.check_host(host, port):
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        assert failure is not None  # check_host returns at least one address or raises
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise OutboundRefused("unix sockets are not reachable from outbound requests")


class CheckedTransport(httpx.HTTPTransport):
    """httpx's transport with every connection checked against an OutboundPolicy."""

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20),
    ) -> None:
        super().__init__(verify=verify, trust_env=False, limits=limits)
        # httpx builds its connection pool without a way to pass a network backend: build the
        # same pool with ours. The transport's request handling (the public part) is unchanged.
        if not isinstance(getattr(self, "_pool", None), httpcore.ConnectionPool):
            raise RuntimeError(f"httpx {httpx.__version__}: HTTPTransport has no connection pool to guard")
        self._pool = httpcore.ConnectionPool(
            ssl_context=verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_CheckedBackend(policy),
        )


def checked_client(
    policy: OutboundPolicy, *, timeout: float, verify: ssl.SSLContext | bool = True
) -> httpx.Client:
    """An httpx client for URLs others chose: checked connections, no redirects, no env proxies."""
    return httpx.Client(
        transport=CheckedTransport(policy, verify=verify),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )


def failure_reason(error: BaseException) -> str:
    """A fixed, short description of a failed outbound request: never the peer's words."""
    if isinstance(error, OutboundRefused):
        return f"refused: {error.reason}"
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return "TLS certificate not valid for the host"
        if isinstance(seen, ssl.SSLError):
            return "TLS handshake failed"
        seen = seen.__cause__ or seen.__context__
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    if isinstance(error, httpx.ConnectError):
        return "connection failed"
    if isinstance(error, httpx.RemoteProtocolError):
        return "the receiver broke the HTTP protocol"
    return f"request failed ({type(error).__name__})"


def status_reason(status: int) -> str:
    """What an HTTP status from a receiver says, without its body (never kept or shown)."""
    if 300 <= status < 400:
        return f"HTTP {status} (redirects are not followed)"
    return f"HTTP {status}"
