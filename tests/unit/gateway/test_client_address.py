"""The client's address behind trusted proxies, and the key limits count it under."""

from __future__ import annotations

import pytest

from gateway.client_address import ClientAddress, address_key, parse_address, parse_networks
from gateway.settings import GatewaySettings

PROXY = parse_networks("127.0.0.1/32, ::1")


def xff(*values: str) -> list[tuple[bytes, bytes]]:
    return [(b"x-forwarded-for", v.encode()) for v in values]


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert ClientAddress(()).resolve("127.0.0.1", xff("127.0.0.9")) == "127.0.0.1"


def test_the_header_is_believed_only_from_a_trusted_peer() -> None:
    client = ClientAddress(PROXY)
    assert client.resolve("127.0.0.5", xff("127.0.0.9")) == "127.0.0.5"
    assert client.resolve("127.0.0.1", xff("127.0.0.9")) == "127.0.0.9"


def test_the_rightmost_untrusted_entry_wins_over_what_the_client_wrote() -> None:
    client = ClientAddress(parse_networks("127.0.0.1, 127.0.1.0/24"))
    # The client forged "127.0.0.66"; the proxies appended the real hops after it.
    headers = xff("127.0.0.66, 127.0.0.7", "127.0.1.4")
    assert client.resolve("127.0.0.1", headers) == "127.0.0.7"
    assert client.resolve("127.0.0.1", xff("127.0.0.7:5123")) == "127.0.0.7"


def test_garbage_ends_the_walk_at_the_last_trusted_hop() -> None:
    client = ClientAddress(parse_networks("127.0.0.1, 127.0.1.0/24"))
    assert client.resolve("127.0.0.1", xff("127.0.0.9, unknown, 127.0.1.4")) == "127.0.1.4"
    assert client.resolve("127.0.0.1", []) == "127.0.0.1"
    assert client.resolve("127.0.0.1", xff("127.0.1.4")) == "127.0.1.4"  # all trusted


def test_rfc_7239_forwarded_when_chosen() -> None:
    client = ClientAddress(PROXY, "forwarded")
    headers = [
        (b"forwarded", b'for=127.0.0.66, for="[::1]:4711";proto=https'),
        (b"Forwarded", b'For="127.0.0.8:1234";by=127.0.0.1'),
        (b"x-forwarded-for", b"127.0.0.99"),
    ]
    assert client.resolve("::1", headers) == "127.0.0.8"
    # The header not chosen is never read: the proxy passes it on as the client wrote it.
    assert ClientAddress(PROXY).resolve("127.0.0.1", headers[:2]) == "127.0.0.1"


def test_ipv6_is_counted_per_64_and_mapped_ipv4_as_ipv4() -> None:
    assert address_key("::1") == "::/64"
    assert address_key("::ffff:127.0.0.2") == "127.0.0.2"
    assert address_key("127.0.0.2") == "127.0.0.2"
    assert address_key("unknown") == "unknown"
    assert parse_address("[::1]:80") is not None
    assert parse_address("_hidden") is None


def test_the_setting_refuses_a_bad_network() -> None:
    assert GatewaySettings(trusted_proxies="127.0.0.1/32,::1").trusted_proxies
    with pytest.raises(ValueError, match="nonsense"):
        GatewaySettings(trusted_proxies="127.0.0.1, nonsense")
