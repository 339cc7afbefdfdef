"""The platform registry: descriptors, composed schemas, the ``schemas`` ack and entry points."""

from __future__ import annotations

import copy
import hashlib
from importlib import metadata
from typing import Any

import pytest

from gateway.validation import validate_message
from schemas.platform_registry import (
    AS_CONTEXT_URL,
    BUILTIN_PLATFORMS,
    ENTRY_POINT_GROUP,
    SOCKETHUB_CONTEXT_URL,
    PlatformRegistry,
    canonical_json,
    context_url,
    is_date_time,
    is_uri,
)

THIRD_PARTY: dict[str, Any] = {
    "id": "mastodon",
    "version": "0.3.0",
    "persistent": True,
    "verbs": ["credentials", "connect", "send"],
    "schemas": {
        "credentials": {
            "required": ["object"],
            "properties": {
                "object": {
                    "type": "object",
                    "required": ["type", "token"],
                    "properties": {
                        "type": {"enum": ["credentials"]},
                        "token": {"type": "string"},
                    },
                }
            },
        },
        "messages": {"properties": {"object": {"type": "object"}}},
    },
}


def third_party_factory() -> dict[str, Any]:
    return copy.deepcopy(THIRD_PARTY)


def use_entry_points(monkeypatch: pytest.MonkeyPatch, **targets: str) -> None:
    points = [
        metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)
        for name, value in targets.items()
    ]

    def entry_points(*, group: str) -> list[metadata.EntryPoint]:
        return [point for point in points if point.group == group]

    monkeypatch.setattr(metadata, "entry_points", entry_points)


def test_payload_shape() -> None:
    registry = PlatformRegistry(BUILTIN_PLATFORMS, server_version="1.2.3")
    payload = registry.payload()
    assert list(payload) == ["fingerprint", "version", "contexts", "platforms"]
    assert payload["version"] == "1.2.3"
    assert payload["contexts"] == {"as": AS_CONTEXT_URL, "sockethub": SOCKETHUB_CONTEXT_URL}
    assert [p["id"] for p in payload["platforms"]] == list(BUILTIN_PLATFORMS)
    irc = payload["platforms"][3]
    assert set(irc) == {
        "id",
        "version",
        "contextUrl",
        "contextVersion",
        "schemaVersion",
        "types",
        "schemas",
    }
    assert irc["contextUrl"] == "https://sockethub.org/ns/context/platform/irc/v1.jsonld"
    assert irc["contextVersion"] == "1"
    assert irc["types"] == [
        "credentials",
        "connect",
        "update",
        "join",
        "leave",
        "send",
        "query",
        "announce",
        "disconnect",
    ]
    assert set(irc["schemas"]) == {"credentials", "messages"}
    feeds = payload["platforms"][1]
    assert set(feeds["schemas"]) == {"messages"}


def test_fingerprint_is_sha256_of_the_rest() -> None:
    registry = PlatformRegistry(BUILTIN_PLATFORMS, server_version="1.2.3")
    payload = registry.payload()
    fingerprint = payload.pop("fingerprint")
    expected = hashlib.sha256(canonical_json(payload)).hexdigest()[:16]
    assert fingerprint == expected == registry.fingerprint
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'.encode()


def test_fingerprint_stable_across_instances_and_copies_are_independent() -> None:
    first = PlatformRegistry(BUILTIN_PLATFORMS, server_version="1.2.3")
    second = PlatformRegistry(list(BUILTIN_PLATFORMS), server_version="1.2.3")
    assert first.fingerprint == second.fingerprint
    payload = first.payload()
    payload["platforms"][0]["schemas"]["messages"]["title"] = "mutated"
    assert first.payload() == second.payload()


def test_fingerprint_changes_with_version_and_platform_set() -> None:
    base = PlatformRegistry(BUILTIN_PLATFORMS, server_version="1.2.3")
    assert PlatformRegistry(BUILTIN_PLATFORMS, server_version="1.2.4").fingerprint != (
        base.fingerprint
    )
    assert PlatformRegistry(["dummy", "irc"], server_version="1.2.3").fingerprint != (
        base.fingerprint
    )
    assert base.payload("9.9.9")["fingerprint"] != base.fingerprint


def test_fingerprint_changes_when_a_schema_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    use_entry_points(monkeypatch, mastodon=f"{__name__}:THIRD_PARTY")
    before = PlatformRegistry(["mastodon"], server_version="1").fingerprint
    changed = copy.deepcopy(THIRD_PARTY)
    changed["schemas"]["messages"]["properties"]["object"]["required"] = ["content"]
    monkeypatch.setattr(f"{__name__}.THIRD_PARTY", changed)
    after = PlatformRegistry(["mastodon"], server_version="1").fingerprint
    assert before != after


def test_schemas_ack_unchanged() -> None:
    registry = PlatformRegistry(BUILTIN_PLATFORMS, server_version="1.2.3")
    fingerprint = registry.fingerprint
    assert registry.schemas_ack(fingerprint) == {"fingerprint": fingerprint, "unchanged": True}
    assert registry.schemas_ack(None) == registry.payload()
    assert registry.schemas_ack("0" * 16) == registry.payload()
    assert registry.schemas_ack({"fingerprint": fingerprint}) == registry.payload()


def test_lookups() -> None:
    registry = PlatformRegistry(["irc", "feeds"])
    irc = registry.get("irc")
    assert irc is not None and irc.persistent and irc.credentials_schema is not None
    assert registry.by_context_url(context_url("irc")) is irc
    assert registry.by_context_url(context_url("dummy")) is None
    assert registry.get("dummy") is None
    assert registry.ids() == ("irc", "feeds")
    feeds = registry.get("feeds")
    assert feeds is not None and not feeds.persistent and feeds.credentials_schema is None
    assert registry.validator("feeds", "credentials") is None
    assert registry.validator("irc", "messages") is registry.validator("irc", "messages")


def test_composed_schema_is_the_envelope_with_platform_rules() -> None:
    registry = PlatformRegistry(["xmpp", "metadata"])
    xmpp = registry.get("xmpp")
    assert xmpp is not None
    schema = xmpp.messages_schema
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["@context", "type", "actor"]
    assert schema["properties"]["@context"]["items"][2] == {"const": context_url("xmpp")}
    assert "credentials" not in schema["properties"]["type"]["enum"]
    assert list(schema["properties"]) == [
        "@context",
        "type",
        "actor",
        "target",
        "object",
        "id",
        "published",
    ]
    assert xmpp.credentials_schema is not None
    assert xmpp.credentials_schema["required"] == ["@context", "type", "actor", "object"]
    assert xmpp.credentials_schema["properties"]["type"]["enum"] == ["credentials"]
    metadata_descriptor = registry.get("metadata")
    assert metadata_descriptor is not None
    assert metadata_descriptor.messages_schema["properties"]["object"] is False


def test_entry_point_dict_and_callable(monkeypatch: pytest.MonkeyPatch) -> None:
    use_entry_points(
        monkeypatch,
        mastodon=f"{__name__}:third_party_factory",
        unused="no.such.module:NOTHING",
    )
    registry = PlatformRegistry(["dummy", "mastodon"])
    descriptor = registry.get("mastodon")
    assert descriptor is not None and descriptor.version == "0.3.0"
    assert registry.by_context_url(context_url("mastodon")) is descriptor
    result = validate_message(
        {
            "@context": [AS_CONTEXT_URL, SOCKETHUB_CONTEXT_URL, context_url("mastodon")],
            "type": "send",
            "actor": {"id": "@alice@example.social", "type": "person"},
        },
        registry,
    )
    assert result.platform == "mastodon"


def test_entry_point_replaces_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    replacement = {**copy.deepcopy(THIRD_PARTY), "id": "irc"}
    monkeypatch.setattr(f"{__name__}.REPLACEMENT", replacement, raising=False)
    use_entry_points(monkeypatch, irc=f"{__name__}:REPLACEMENT")
    irc = PlatformRegistry(["irc"]).get("irc")
    assert irc is not None and irc.version == "0.3.0"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "Bad Id"}, "descriptor id must match"),
        ({"verbs": []}, "verbs must be"),
        ({"verbs": ["send", "send"]}, "verbs must be"),
        ({"persistent": "yes"}, "bool persistent"),
        ({"verbs": ["send"]}, "credentials schema goes with a credentials verb"),
        (
            {"schemas": {**THIRD_PARTY["schemas"], "messages": {"properties": {"extra": {}}}}},
            "envelope forbids: extra",
        ),
        (
            {"schemas": {**THIRD_PARTY["schemas"], "messages": {"anyOf": []}}},
            "unsupported keys",
        ),
        ({"id": "other"}, "declares id other"),
    ],
)
def test_malformed_descriptors_are_refused(
    monkeypatch: pytest.MonkeyPatch, change: dict[str, Any], message: str
) -> None:
    broken = {**copy.deepcopy(THIRD_PARTY), **change}
    monkeypatch.setattr(f"{__name__}.BROKEN", broken, raising=False)
    use_entry_points(monkeypatch, mastodon=f"{__name__}:BROKEN")
    with pytest.raises(ValueError, match=message):
        PlatformRegistry(["mastodon"])


def test_unknown_platform_is_refused() -> None:
    with pytest.raises(ValueError, match="platform nope is enabled but has no schema descriptor"):
        PlatformRegistry(["dummy", "nope"])


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("2026-08-01T12:00:00Z", True),
        ("2026-08-01t12:00:00.123+02:00", True),
        ("2026-08-01 12:00:00-0130", True),
        ("2016-12-31T23:59:60Z", True),
        ("2026-08-01T12:00:00", False),
        ("2026-02-29T00:00:00Z", False),
        ("2024-02-29T00:00:00Z", True),
        ("2026-08-01T24:00:00Z", False),
        ("2026-08-01T12:00:00Z\n", False),
        ("yesterday", False),
    ],
)
def test_date_time_format(value: str, valid: bool) -> None:
    assert is_date_time(value) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("https://example.org/feed.xml", True),
        ("http://[::1]:8080/a?b=c#d", True),
        ("mailto:alice@example.org", True),
        ("example.org/feed.xml", False),
        ("feed", False),
        ("https://exa mple.org/", False),
        ("https://example.org/\n", False),
    ],
)
def test_uri_format(value: str, valid: bool) -> None:
    assert is_uri(value) is valid
