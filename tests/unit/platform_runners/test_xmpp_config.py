"""Credentials to connection settings: where to dial, which TLS, never the password in repr."""

from __future__ import annotations

import pytest

from platform_runners.xmpp.config import ConfigError, XmppSettings, config_from

OPTIONS = XmppSettings.model_validate({})


def creds(**obj: object) -> dict[str, object]:
    base: dict[str, object] = {
        "type": "credentials",
        "userAddress": "alice@example.org",
        "password": "hunter2",
        "resource": "web",
    }
    base.update(obj)
    return {"type": "credentials", "object": base}


def test_defaults_dial_the_domain_directly() -> None:
    config = config_from(creds(), OPTIONS)
    assert (config.host, config.port, config.direct_tls) == ("example.org", 5222, False)
    assert config.jid == "alice@example.org" and config.resource == "web"
    assert "hunter2" not in repr(config)


@pytest.mark.parametrize(
    ("server", "port", "expected"),
    [
        ("xmpp://127.0.0.1:5333", None, ("127.0.0.1", 5333, False)),
        ("xmpps://chat.example.org", None, ("chat.example.org", 5223, True)),
        ("chat.example.org:5000", None, ("chat.example.org", 5000, False)),
        ("xmpp://chat.example.org:5000", 6000, ("chat.example.org", 6000, False)),
        ("chat.example.org", None, ("chat.example.org", 5222, False)),
    ],
)
def test_server_and_port(server: str, port: int | None, expected: tuple[str, int, bool]) -> None:
    extra: dict[str, object] = {"server": server}
    if port is not None:
        extra["port"] = port
    config = config_from(creds(**extra), OPTIONS)
    assert (config.host, config.port, config.direct_tls) == expected


@pytest.mark.parametrize("address", ["alice", "@example.org", "alice@", "alice@x/y"])
def test_bad_user_address(address: str) -> None:
    with pytest.raises(ConfigError, match="userAddress"):
        config_from(creds(userAddress=address), OPTIONS)


def test_bad_server_scheme() -> None:
    with pytest.raises(ConfigError, match="expected xmpp://host:port"):
        config_from(creds(server="http://example.org"), OPTIONS)
