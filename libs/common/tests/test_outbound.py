"""lienthong_common.outbound: which hosts an outbound request may reach, however they are written."""

from __future__ import annotations

import ipaddress
import socket
import ssl

import httpx
import pytest

from lienthong_common.outbound import (
    OutboundPolicy,
    OutboundRefused,
    address_kind,
    checked_client,
    failure_reason,
    literal_address,
    numeric_ipv4,
    status_reason,
)


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("10.0.0.1", "10.0.0.1"),
        ("4294967295", "255.255.255.255"),
    ],
)
def test_numeric_hosts_are_read_as_the_c_resolver_reads_them(host: str, address: str) -> None:
    assert numeric_ipv4(host) == ipaddress.IPv4Address(address)
    try:  # the same answer as the system's resolver, where it accepts the form
        assert socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)[0][4][0] == address
    except socket.gaierror:
        pass


@pytest.mark.parametrize(
    "host", ["4294967296", "256.1.1.1", "1.2.3.4.5", "08.1.1.1", "vanthu.gov.vn", "1..1"]
)
def test_names_and_impossible_numbers_are_not_addresses(host: str) -> None:
    assert numeric_ipv4(host) is None


def test_ipv6_literals_with_brackets_and_zones() -> None:
    assert literal_address("[::1]") == ipaddress.IPv6Address("::1")
    assert literal_address("fe80::1%eth0") == ipaddress.IPv6Address("fe80::1")
    assert literal_address("vanthu.gov.vn") is None


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "a loopback"),
        ("::1", "a loopback"),
        ("0.0.0.0", "an unspecified"),
        ("::", "an unspecified"),
        ("10.0.0.1", "a private"),
        ("172.16.0.1", "a private"),
        ("192.168.1.1", "a private"),
        ("fd00::1", "a private"),
        ("fc00::1", "a private"),
        ("100.64.0.1", "a shared (CGNAT)"),
        ("169.254.169.254", "a cloud metadata"),
        ("169.254.1.1", "a link-local"),
        ("fe80::1", "a link-local"),
        ("fec0::1", "a site-local"),
        ("224.0.0.1", "a multicast"),
        ("ff02::1", "a multicast"),
        ("240.0.0.1", "a reserved"),
        ("::ffff:127.0.0.1", "a loopback"),
        ("::ffff:10.1.1.1", "a private"),
        ("2002:a00:1::", "a private"),
        ("64:ff9b::7f00:1", "a loopback"),
        ("192.0.2.1", "a private"),
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
        ("64:ff9b::808:808", None),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind


def test_the_allow_list_lets_its_networks_through_but_never_metadata() -> None:
    policy = OutboundPolicy.from_cidrs(["127.0.0.0/8", "10.20.0.0/16", "169.254.0.0/16"])
    assert policy.check_host("127.0.0.1", 80) == ["127.0.0.1"]
    assert policy.check_host("[::ffff:10.20.3.4]", 80) == ["::ffff:a14:304"]
    assert policy.check_host("169.254.1.1", 80) == ["169.254.1.1"]
    for host in ("169.254.169.254", "metadata.google.internal", "10.21.0.1", "localhost"):
        with pytest.raises(OutboundRefused):
            policy.check_host(host, 80)  # localhost is also ::1, which is not allowed
    with pytest.raises(ValueError, match="not a network"):
        OutboundPolicy.from_cidrs(["10.0.0.0/40"])


def test_a_name_is_refused_when_any_address_is() -> None:
    policy = OutboundPolicy(resolver=lambda host, port: ["8.8.8.8", "192.168.0.2"])
    with pytest.raises(OutboundRefused, match=r"vanthu\.gov\.vn is a private address"):
        policy.check_host("vanthu.gov.vn", 443)
    with pytest.raises(OutboundRefused, match="does not resolve"):
        OutboundPolicy(resolver=lambda host, port: []).check_host("vanthu.gov.vn", 443)


def test_urls_must_be_absolute_http() -> None:
    policy = OutboundPolicy(resolver=lambda host, port: ["8.8.8.8"])
    assert policy.check_url("https://vanthu.gov.vn/hook").host == "vanthu.gov.vn"
    for url in ("ftp://vanthu.gov.vn/", "/relative", "file:///etc/passwd", "http://"):
        with pytest.raises(OutboundRefused):
            policy.check_url(url)


def test_the_client_refuses_before_connecting_and_reports_fixed_reasons() -> None:
    with checked_client(OutboundPolicy(), timeout=2) as client, pytest.raises(OutboundRefused) as refused:
        client.post("http://127.0.0.1:9/hook", content=b"{}")
    assert failure_reason(refused.value).startswith("refused: the host is a loopback address")
    assert failure_reason(httpx.ConnectTimeout("secret detail")) == "timed out"
    assert failure_reason(httpx.ConnectError("[Errno 111] Connection refused")) == "connection failed"
    wrapped = httpx.ConnectError("x")
    wrapped.__cause__ = ssl.SSLCertVerificationError("hostname mismatch")
    assert failure_reason(wrapped) == "TLS certificate not valid for the host"
    assert status_reason(301) == "HTTP 301 (redirects are not followed)" and status_reason(503) == "HTTP 503"
