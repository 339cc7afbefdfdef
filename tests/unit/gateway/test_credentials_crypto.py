"""The credential store's crypto: keys per session, associated data, share keys."""

from __future__ import annotations

import os

import pytest

from sockethub.runtime.credentials import (
    CredentialError,
    associated_data,
    decrypt,
    derive_key,
    encrypt,
    share_key,
)

SERVER = b"s" * 32


def test_round_trip_under_the_same_session_platform_and_actor() -> None:
    session_secret = os.urandom(32)
    key = derive_key(SERVER, session_secret, "sid-1")
    aad = associated_data("sid-1", "irc", "nick@irc.example")
    blob = encrypt(key, b'{"password":"hunter2"}', aad)
    assert b"hunter2" not in blob
    assert decrypt(key, blob, aad) == b'{"password":"hunter2"}'


@pytest.mark.parametrize(
    "aad",
    [
        associated_data("sid-2", "irc", "nick@irc.example"),
        associated_data("sid-1", "xmpp", "nick@irc.example"),
        associated_data("sid-1", "irc", "other@irc.example"),
    ],
    ids=["other-session", "other-platform", "other-actor"],
)
def test_wrong_associated_data_fails(aad: bytes) -> None:
    key = derive_key(SERVER, os.urandom(32), "sid-1")
    blob = encrypt(key, b"secret", associated_data("sid-1", "irc", "nick@irc.example"))
    with pytest.raises(CredentialError):
        decrypt(key, blob, aad)


def test_keys_differ_per_session_and_per_server_secret() -> None:
    session_secret = os.urandom(32)
    key = derive_key(SERVER, session_secret, "sid-1")
    assert key != derive_key(SERVER, session_secret, "sid-2")
    assert key != derive_key(SERVER, os.urandom(32), "sid-1")
    assert key != derive_key(b"t" * 32, session_secret, "sid-1")
    aad = associated_data("sid-1", "irc", "a")
    blob = encrypt(key, b"secret", aad)
    with pytest.raises(CredentialError):
        decrypt(derive_key(SERVER, session_secret, "sid-2"), blob, aad)


def test_tampered_or_truncated_ciphertext_fails() -> None:
    key = derive_key(SERVER, os.urandom(32), "sid")
    aad = associated_data("sid", "irc", "a")
    blob = bytearray(encrypt(key, b"secret", aad))
    blob[-1] ^= 1
    with pytest.raises(CredentialError):
        decrypt(key, bytes(blob), aad)
    with pytest.raises(CredentialError):
        decrypt(key, bytes(blob[:10]), aad)


def test_associated_data_is_unambiguous() -> None:
    assert associated_data("a", "bc", "d") != associated_data("ab", "c", "d")


def test_share_key_only_for_secret_bearing_credentials() -> None:
    with_password = {"object": {"type": "credentials", "nick": "n", "password": "p"}}
    assert share_key(SERVER, "irc", "n@s", with_password) is not None
    assert share_key(SERVER, "irc", "n@s", {"object": {"nick": "n", "token": "t"}}) is not None
    assert share_key(SERVER, "irc", "n@s", {"object": {"type": "credentials", "nick": "n"}}) is None
    assert share_key(SERVER, "irc", "n@s", {"object": {"nick": "n", "password": ""}}) is None


def test_share_key_is_stable_and_distinguishes_credentials() -> None:
    a = {"object": {"nick": "n", "password": "p", "server": "s"}}
    reordered = {"object": {"server": "s", "password": "p", "nick": "n"}}
    key = share_key(SERVER, "irc", "n@s", a)
    assert key == share_key(SERVER.decode(), "irc", "n@s", reordered)
    assert key != share_key(SERVER, "irc", "n@s", {"object": {"nick": "n", "password": "q"}})
    assert key != share_key(SERVER, "irc", "m@s", a)
    assert key != share_key(SERVER, "xmpp", "n@s", a)
    assert key != share_key(b"other-server-secret", "irc", "n@s", a)
    assert key is not None and "p" * 8 not in key


def test_a_missing_or_short_server_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="SOCKETHUB_SECRET"):
        share_key(None, "irc", "a", {"object": {"password": "p"}})
    with pytest.raises(ValueError, match="16"):
        share_key("short", "irc", "a", {"object": {"password": "p"}})
