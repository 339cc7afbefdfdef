"""Every error row of spec section 7 that the gateway owns, with its exact text."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.gateway import DUMMY_CONTEXT, Client, dummy

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

AS, SH = DUMMY_CONTEXT[0], DUMMY_CONTEXT[1]
UNREGISTERED = "platform context URL not registered with this Sockethub instance."
BOGUS_URL = "https://sockethub.org/ns/context/platform/bogus/v1.jsonld"
FEEDS_URL = "https://sockethub.org/ns/context/platform/feeds/v1.jsonld"
META_URL = "https://sockethub.org/ns/context/platform/metadata/v1.jsonld"


def _without(key: str) -> dict[str, Any]:
    activity = dummy("echo")
    del activity[key]
    return activity


MESSAGE_ERRORS: list[tuple[str, object, str]] = [
    ("string", "hello", "message received is not an object."),
    ("number", 42, "message received is not an object."),
    ("no-context", _without("@context"), "activity stream must contain an @context array."),
    ("no-type", _without("type"), "activity stream must contain a type property."),
    ("no-actor", _without("actor"), "activity stream must contain an actor property."),
    (
        "unregistered",
        dummy("echo", **{"@context": [AS, SH, BOGUS_URL]}),
        f"{UNREGISTERED} Unregistered platform @context value: {BOGUS_URL}",
    ),
    (
        "base-only",
        dummy("echo", **{"@context": [AS, SH]}),
        f"{UNREGISTERED} No platform @context values were provided.",
    ),
    (
        "two-platforms",
        dummy("echo", **{"@context": [AS, SH, DUMMY_CONTEXT[2], FEEDS_URL]}),
        f"{UNREGISTERED} Multiple platform @context values were provided: "
        f"{DUMMY_CONTEXT[2]}, {FEEDS_URL}.",
    ),
    ("verb", dummy("fly"), "[dummy] /type: must be equal to one of the allowed values"),
    (
        "extra-key",
        dummy("echo", foo="bar"),
        "[dummy] activity stream: must NOT have additional properties: foo",
    ),
    (
        "actor-type",
        dummy("echo", actor={"id": "x", "type": "spaceship"}),
        "[dummy] /actor: must match exactly one schema in oneOf: "
        "person, room, service, feed, website",
    ),
    (
        "feeds-object",
        {
            "@context": [AS, SH, FEEDS_URL],
            "type": "fetch",
            "actor": {"id": "https://example.com/feed", "type": "feed"},
            "object": {"bogus": 1},
        },
        "[feeds] /object: must NOT have additional properties: bogus",
    ),
    (
        "metadata-object",
        {
            "@context": [AS, SH, META_URL],
            "type": "fetch",
            "actor": {"id": "https://example.com/", "type": "website"},
            "object": {"type": "page"},
        },
        "[metadata] /object: boolean schema is false",
    ),
]


@pytest.mark.parametrize(
    ("payload", "error"),
    [pytest.param(p, e, id=name) for name, p, e in MESSAGE_ERRORS],
)
async def test_message_errors(ws_client: Client, payload: object, error: str) -> None:
    ack = await ws_client.call("message", payload)
    expected = {**payload, "error": error} if isinstance(payload, dict) else {"error": error}
    assert ack == expected


async def test_credentials_whose_object_type_is_not_credentials(ws_client: Client) -> None:
    payload = dummy("credentials")
    ack = await ws_client.call("credentials", payload)
    assert ack == {
        **payload,
        "error": "credential activity streams must have credentials set as type",
    }


async def test_fail_and_throw_carry_the_platform_error(ws_client: Client) -> None:
    for verb in ("fail", "throw"):
        payload = dummy(verb, "it broke")
        ack = await ws_client.call("message", payload)
        assert ack["error"] == "Error: it broke"
        assert ack["object"] == payload["object"] and ack["type"] == verb
