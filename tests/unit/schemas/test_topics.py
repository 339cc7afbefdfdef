from __future__ import annotations

import re
import ssl

import pytest
from pydantic import SecretStr

from schemas.topics import (
    MAX_TOPIC_LENGTH,
    REPLY_PARTITIONS,
    TopicLayout,
    TopicSpec,
    sanitise_gateway_id,
    validate_topic_name,
)
from sockethub.runtime.kafka_clients import client_kwargs
from sockethub.runtime.settings import CommonSettings

SETTINGS = CommonSettings(topic_prefix="shub", request_partitions=12, audit_retention_ms=1234)
LEGAL = re.compile(r"[A-Za-z0-9._-]{1,249}")


def test_names() -> None:
    layout = TopicLayout(SETTINGS)
    assert layout.requests("irc") == "shub.requests.irc"
    assert layout.replies("gw-7d9f") == "shub.replies.gw-7d9f"
    assert layout.dead_letters("feeds") == "shub.deadletter.feeds"
    assert layout.connections("xmpp") == "shub.connections.xmpp"
    assert layout.audit() == "shub.audit"


def test_specs() -> None:
    specs = {s.name: s for s in TopicLayout(SETTINGS).specs(["irc", "dummy", "irc"], ["gw-1"])}
    assert set(specs) == {
        "shub.audit",
        "shub.requests.irc",
        "shub.deadletter.irc",
        "shub.connections.irc",
        "shub.requests.dummy",
        "shub.deadletter.dummy",
        "shub.connections.dummy",
        "shub.replies.gw-1",
    }
    requests = specs["shub.requests.irc"]
    assert requests.partitions == 12
    assert requests.config["cleanup.policy"] == "delete"
    assert requests.config["retention.ms"] == "1234"
    reply = specs["shub.replies.gw-1"]
    assert reply.partitions == REPLY_PARTITIONS
    assert reply.config["retention.ms"] == "1234"
    assert specs["shub.connections.irc"].config["cleanup.policy"] == "compact"
    assert "retention.ms" not in specs["shub.connections.irc"].config
    assert specs["shub.audit"].config["cleanup.policy"] == "delete"
    assert isinstance(requests, TopicSpec)


def test_durability_follows_replication() -> None:
    replicated = TopicLayout(CommonSettings(replication_factor=3)).specs(["irc"])
    assert all(s.config["min.insync.replicas"] == "2" for s in replicated)
    single = TopicLayout(CommonSettings(replication_factor=1)).specs(["irc"])
    assert all("min.insync.replicas" not in s.config for s in single)


def test_reply_pattern() -> None:
    layout = TopicLayout(CommonSettings(topic_prefix="a.b"))
    pattern = re.compile(layout.reply_pattern())
    assert pattern.match(layout.replies("gw-1"))
    assert pattern.match(layout.replies("pod_7/x"))
    assert not pattern.match("a.b.requests.irc")
    assert not pattern.match("aXb.replies.gw-1")
    assert not pattern.match("a.b.replies.gw-1.extra")


def test_is_reply_topic() -> None:
    layout = TopicLayout(SETTINGS)
    assert layout.is_reply_topic(layout.replies("gw-1"))
    assert layout.is_reply_topic(layout.replies("pod_7.example"))
    for name in (
        layout.requests("irc"),
        layout.dead_letters("irc"),
        layout.connections("irc"),
        layout.audit(),
        "other.replies.gw-1",
        f"{layout.prefix}.replies.",
        f"{layout.prefix}.replies.gw.x",
        f"{layout.prefix}.replies.gw\n",
        f"{layout.prefix}.replies." + "g" * 250,
    ):
        assert not layout.is_reply_topic(name), name


@pytest.mark.parametrize("gateway_id", ["gw_1", "gw.1", "gw 1", "пасха", "x" * 300, "___", "a/b"])
def test_gateway_ids_are_sanitised(gateway_id: str) -> None:
    name = TopicLayout(SETTINGS).replies(gateway_id)
    assert LEGAL.fullmatch(name)
    assert name.count(".") == 2
    assert "_" not in name


def test_sanitised_ids_stay_distinct() -> None:
    ids = ["gw_1", "gw.1", "gw 1", "gw/1", "gw-1"]
    assert len({sanitise_gateway_id(i) for i in ids}) == len(ids)
    assert sanitise_gateway_id("gw-1") == "gw-1"
    assert sanitise_gateway_id("gw_1") == sanitise_gateway_id("gw_1")
    with pytest.raises(ValueError):
        sanitise_gateway_id("")


@pytest.mark.parametrize("platform", ["", "IRC", "irc.x", "irc_x", "-irc", "a" * 65, "ir c"])
def test_bad_platform_ids_are_refused(platform: str) -> None:
    with pytest.raises(ValueError, match="platform id"):
        TopicLayout(SETTINGS).requests(platform)


@pytest.mark.parametrize("prefix", ["", ".", "..", "a b", "a/b", ".x", "x.", "p" * 250])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError):
        TopicLayout(CommonSettings(topic_prefix=prefix))


def test_validate_topic_name() -> None:
    assert validate_topic_name("a.b-c_d") == "a.b-c_d"
    with pytest.raises(ValueError):
        validate_topic_name("x" * (MAX_TOPIC_LENGTH + 1))


def test_client_kwargs_plaintext() -> None:
    kwargs = client_kwargs(CommonSettings(kafka_bootstrap="127.0.0.1:1, 127.0.0.1:2"))
    assert kwargs == {
        "bootstrap_servers": ["127.0.0.1:1", "127.0.0.1:2"],
        "security_protocol": "PLAINTEXT",
        "retry_backoff_ms": 20,
    }


def test_client_kwargs_sasl_ssl() -> None:
    settings = CommonSettings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password=SecretStr("hunter2-secret"),
    )
    kwargs = client_kwargs(settings)
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "svc"
    assert kwargs["sasl_plain_password"] == "hunter2-secret"
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)


def test_client_kwargs_incomplete_sasl_does_not_echo_secrets() -> None:
    settings = CommonSettings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_password=SecretStr("hunter2-secret"),
    )
    with pytest.raises(ValueError) as caught:
        client_kwargs(settings)
    assert "hunter2" not in str(caught.value)
    assert "kafka_sasl_username" in str(caught.value)


def test_request_key_is_the_session_or_the_connection_owner() -> None:
    from schemas.topics import request_key

    activity = {"type": "send", "actor": {"id": "nick@irc.example", "type": "person"}}
    assert request_key("sid-1", activity, persistent=False) == "sid-1"
    assert request_key("sid-1", activity, persistent=True) == "nick@irc.example"
    assert request_key("sid-1", {"type": "send", "actor": {"id": ""}}, persistent=True) == "sid-1"
    assert request_key("sid-1", {"type": "send", "actor": "x"}, persistent=True) == "sid-1"
