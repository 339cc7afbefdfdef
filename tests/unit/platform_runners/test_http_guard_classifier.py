"""The address classifier and allow-list, as pure code: no socket is opened here."""

from __future__ import annotations

import ipaddress

import pytest

from platform_runners.http_guard import (
    classify_address,
    content_type_charset,
    is_allowed,
    parse_allowlist,
)

ip = ipaddress.ip_address

BLOCKED = [
    # unspecified
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("::", "unspecified"),
    # private
    ("10.0.0.0", "private"),
    ("10.255.255.255", "private"),
    ("172.16.0.0", "private"),
    ("172.31.255.255", "private"),
    ("192.168.0.1", "private"),
    ("192.168.255.255", "private"),
    ("fc00::", "unique local (private)"),
    ("fd12:3456:789a::1", "unique local (private)"),
    ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "unique local (private)"),
    # loopback
    ("127.0.0.1", "loopback"),
    ("127.0.0.2", "loopback"),
    ("127.255.255.255", "loopback"),
    ("::1", "loopback"),
    # link-local (cloud metadata endpoints live here)
    ("169.254.0.0", "link-local"),
    ("169.254.169.254", "link-local"),
    ("169.254.255.255", "link-local"),
    ("fe80::1", "link-local"),
    ("febf:ffff::1", "link-local"),
    # carrier-grade NAT
    ("100.64.0.0", "carrier-grade NAT"),
    ("100.127.255.255", "carrier-grade NAT"),
    # multicast
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("ff0e::101", "multicast"),
    # reserved and broadcast
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    # other special-purpose ranges
    ("192.0.0.8", "IETF protocol assignments"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    ("2001:db8::1", "documentation"),
    ("100::1", "discard-only"),
    ("fec0::1", "site-local (deprecated)"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "IETF protocol assignments"),  # Teredo
    ("::7f00:1", "IPv4-compatible (deprecated)"),
]


@pytest.mark.parametrize(("address", "reason"), BLOCKED)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    assert classify_address(ip(address)) == reason
    assert not is_allowed(ip(address))


@pytest.mark.parametrize(
    "address",
    [
        "1.1.1.1",
        "8.8.8.8",
        "9.255.255.255",  # just below 10/8
        "11.0.0.0",  # just above 10/8
        "100.63.255.255",  # just below 100.64/10
        "100.128.0.0",  # just above 100.64/10
        "126.255.255.255",
        "128.0.0.0",
        "169.253.255.255",
        "169.255.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.167.255.255",
        "192.169.0.0",
        "223.255.255.255",  # just below multicast
        "2606:4700:4700::1111",
        "2a00:1450:4001:82a::200e",
        "2002:0808:0808::1",  # 6to4 of 8.8.8.8
        "64:ff9b::808:808",  # NAT64 of 8.8.8.8
        "::ffff:8.8.8.8",
    ],
)
def test_public_addresses_pass(address: str) -> None:
    assert classify_address(ip(address)) is None
    assert is_allowed(ip(address))


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("::ffff:127.0.0.1", "loopback (embedded in IPv6)"),
        ("::ffff:7f00:1", "loopback (embedded in IPv6)"),
        ("::ffff:10.1.2.3", "private (embedded in IPv6)"),
        ("::ffff:169.254.169.254", "link-local (embedded in IPv6)"),
        ("::ffff:0.0.0.0", "unspecified (embedded in IPv6)"),
        ("::ffff:100.64.0.1", "carrier-grade NAT (embedded in IPv6)"),
        ("::ffff:224.0.0.1", "multicast (embedded in IPv6)"),
        ("64:ff9b::7f00:1", "loopback (embedded in IPv6)"),
        ("64:ff9b::a9fe:a9fe", "link-local (embedded in IPv6)"),
        ("64:ff9b::c0a8:101", "private (embedded in IPv6)"),
        ("2002:7f00:1::", "loopback (embedded in IPv6)"),
        ("2002:c0a8:101::1", "private (embedded in IPv6)"),
        ("2002:a9fe:a9fe::", "link-local (embedded in IPv6)"),
    ],
)
def test_ipv6_embedding_a_non_public_ipv4_is_judged_by_it(address: str, reason: str) -> None:
    assert classify_address(ip(address)) == reason
    assert not is_allowed(ip(address))


def test_local_use_nat64_prefix_is_refused() -> None:
    assert classify_address(ip("64:ff9b:1::808:808")) == "local-use NAT64"


def test_allowlist_parsing() -> None:
    nets = parse_allowlist(" 127.0.0.2/32, 10.0.0.0/8 ,,fd00::/8, 192.168.1.5 ")
    assert [str(n) for n in nets] == ["127.0.0.2/32", "10.0.0.0/8", "fd00::/8", "192.168.1.5/32"]
    assert parse_allowlist("") == ()
    assert parse_allowlist(["127.0.0.0/8"]) == (ipaddress.ip_network("127.0.0.0/8"),)
    # a host address with host bits set is taken as its network, not refused
    assert parse_allowlist("10.1.2.3/8") == (ipaddress.ip_network("10.0.0.0/8"),)
    with pytest.raises(ValueError):
        parse_allowlist("not-a-cidr")


def test_allowlist_opens_exactly_its_ranges() -> None:
    nets = parse_allowlist("127.0.0.2/32,10.0.0.0/8,fd00::/8")
    assert is_allowed(ip("127.0.0.2"), nets)
    assert not is_allowed(ip("127.0.0.1"), nets)
    assert not is_allowed(ip("127.0.0.3"), nets)
    assert is_allowed(ip("10.9.8.7"), nets)
    assert not is_allowed(ip("192.168.0.1"), nets)
    assert is_allowed(ip("fd00::1"), nets)
    assert not is_allowed(ip("fc00::1"), nets)
    assert not is_allowed(ip("::1"), nets)
    # the allow-list applies to the IPv4 address an IPv6 one embeds
    assert is_allowed(ip("::ffff:127.0.0.2"), nets)
    assert not is_allowed(ip("::ffff:127.0.0.1"), nets)
    # public addresses stay allowed with or without an allow-list
    assert is_allowed(ip("8.8.8.8"), nets)


def test_content_type_charset() -> None:
    assert content_type_charset("text/html; charset=ISO-8859-1") == "iso-8859-1"
    assert content_type_charset('application/rss+xml;charset="utf-8"') == "utf-8"
    assert content_type_charset("text/html; boundary=x; Charset=Shift_JIS") == "shift_jis"
    assert content_type_charset("text/html") is None
    assert content_type_charset("text/html; charset=") is None
    assert content_type_charset("") is None
