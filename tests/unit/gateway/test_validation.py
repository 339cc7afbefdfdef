"""The gateway's activity checks: the exact error texts of spec section 7, G2, normalisation."""

from __future__ import annotations

import contextlib
import copy
from datetime import UTC
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.validation import (
    MAX_DEPTH,
    ActivityError,
    ValidatedActivity,
    validate_activity_object,
    validate_credentials,
    validate_message,
)
from schemas.platform_registry import (
    AS_CONTEXT_URL,
    BUILTIN_PLATFORMS,
    SOCKETHUB_CONTEXT_URL,
    PlatformRegistry,
    canonical_context,
    context_url,
)

# With the fault verbs: the fuzzed activities below use every verb the dummy can have.
REGISTRY = PlatformRegistry(BUILTIN_PLATFORMS, server_version="1.2.3", dummy_faults=True)
PERSON = {"id": "alice@irc.example.org", "type": "person"}


def activity(platform: str = "dummy", verb: Any = "echo", **fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "@context": canonical_context(platform),
        "type": verb,
        "actor": dict(PERSON),
    }
    payload.update(fields)
    return payload


def with_context(context: list[str], **fields: Any) -> dict[str, Any]:
    return {**activity(**fields), "@context": context}


def message_error(payload: object) -> str:
    with pytest.raises(ActivityError) as caught:
        validate_message(payload, REGISTRY)
    return caught.value.message


def credentials_error(payload: object) -> str:
    with pytest.raises(ActivityError) as caught:
        validate_credentials(payload, REGISTRY)
    return caught.value.message


# --- spec section 7, one test per validation row ---------------------------------------------


@pytest.mark.parametrize("payload", ["hello", 42, None, ["a"], True])
def test_not_an_object(payload: object) -> None:
    assert message_error(payload) == "message received is not an object."
    assert credentials_error(payload) == "message received is not an object."


def test_no_context() -> None:
    payload = activity()
    del payload["@context"]
    assert message_error(payload) == "activity stream must contain an @context array."


def test_no_type() -> None:
    payload = activity()
    del payload["type"]
    assert message_error(payload) == "activity stream must contain a type property."


def test_no_actor() -> None:
    payload = activity()
    del payload["actor"]
    assert message_error(payload) == "activity stream must contain an actor property."


def test_unregistered_platform_url() -> None:
    url = "https://sockethub.org/ns/context/platform/foobar111/v1.jsonld"
    payload = with_context([AS_CONTEXT_URL, SOCKETHUB_CONTEXT_URL, url])
    assert message_error(payload) == (
        "platform context URL not registered with this Sockethub instance. "
        f"Unregistered platform @context value: {url}"
    )


def test_only_base_contexts() -> None:
    payload = with_context([AS_CONTEXT_URL, SOCKETHUB_CONTEXT_URL])
    assert message_error(payload) == (
        "platform context URL not registered with this Sockethub instance. "
        "No platform @context values were provided."
    )


def test_two_platform_contexts() -> None:
    urls = [context_url("dummy"), context_url("irc")]
    payload = with_context([AS_CONTEXT_URL, SOCKETHUB_CONTEXT_URL, *urls])
    assert message_error(payload) == (
        "platform context URL not registered with this Sockethub instance. "
        f"Multiple platform @context values were provided: {urls[0]}, {urls[1]}."
    )


def test_verb_the_platform_lacks() -> None:
    assert message_error(activity(verb="fetch")) == (
        "[dummy] /type: must be equal to one of the allowed values"
    )


@pytest.mark.parametrize("verb", ["hang", "exit1", "sigkill"])
def test_dummy_fault_verbs_only_when_enabled(verb: str) -> None:
    production = PlatformRegistry(["dummy"])
    with pytest.raises(ActivityError) as caught:
        validate_message(activity(verb=verb), production)
    assert caught.value.message == "[dummy] /type: must be equal to one of the allowed values"
    assert verb not in production.payload()["platforms"][0]["types"]
    validate_message(activity(verb=verb), REGISTRY)


def test_extra_top_level_key() -> None:
    assert message_error(activity(foo="bar")) == (
        "[dummy] activity stream: must NOT have additional properties: foo"
    )


def test_bad_actor_type() -> None:
    assert message_error(activity(actor={"id": "x", "type": "foo"})) == (
        "[dummy] /actor: must match exactly one schema in oneOf: "
        "person, room, service, feed, website"
    )


def test_credentials_object_type_not_credentials() -> None:
    payload = activity(
        "irc", "credentials", object={"type": "message", "nick": "alice", "server": "irc.x"}
    )
    assert credentials_error(payload) == (
        "credential activity streams must have credentials set as type"
    )


def test_feeds_object_unknown_key() -> None:
    payload = activity("feeds", "fetch", actor={"id": "https://x.example/feed.xml", "type": "feed"})
    payload["object"] = {"bogus": 1}
    assert message_error(payload) == "[feeds] /object: must NOT have additional properties: bogus"


def test_metadata_with_object() -> None:
    payload = activity(
        "metadata", "fetch", actor={"id": "https://x.example/", "type": "website"}, object={}
    )
    assert message_error(payload) == "[metadata] /object: boolean schema is false"


# --- ordering between simultaneous failures --------------------------------------------------


def test_top_level_additional_property_before_nested_errors() -> None:
    payload = activity(verb="nope", foo=1, actor={"id": "x", "type": "foo"})
    assert message_error(payload) == (
        "[dummy] activity stream: must NOT have additional properties: foo"
    )


def test_verb_before_actor_and_object_rules() -> None:
    payload = activity("feeds", "nope", actor={"id": "nope", "type": "feed"}, object={"x": 1})
    assert message_error(payload) == "[feeds] /type: must be equal to one of the allowed values"


def test_first_additional_property_in_javascript_key_order() -> None:
    payload = activity()
    payload.update({"zed": 1, "10": 2, "2": 3})
    assert message_error(payload) == (
        "[dummy] activity stream: must NOT have additional properties: 2"
    )


def test_context_checked_before_type() -> None:
    payload = activity(verb="nope")
    payload["@context"] = [SOCKETHUB_CONTEXT_URL, AS_CONTEXT_URL, context_url("dummy")]
    assert message_error(payload) == "[dummy] /@context/0: must be equal to constant"


# --- reasons in AJV's words ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            activity(actor={"type": "person", "name": "dood"}),
            "[dummy] /actor: must have required property 'id'",
        ),
        (
            activity("feeds", "fetch", actor={"id": "example.org/feed", "type": "feed"}),
            '[feeds] /actor/id: must match format "uri"',
        ),
        (
            activity(published="yesterday"),
            '[dummy] /published: must match format "date-time"',
        ),
        (activity(id=5), "[dummy] /id: must be string"),
        (activity(verb=7), "[dummy] /type: must be string"),
        (activity(object=[1]), "[dummy] /object: must be object"),
        (
            activity(target={"id": "r", "type": "planet"}),
            "[dummy] /target: must match exactly one schema in oneOf: "
            "person, room, service, feed, website, address, calendar, addressBook",
        ),
        (
            activity(
                "feeds",
                "fetch",
                actor={"id": "https://x.example/f", "type": "feed"},
                object={"limit": 0},
            ),
            "[feeds] /object/limit: must be >= 1",
        ),
        (
            activity(
                "feeds",
                "fetch",
                actor={"id": "https://x.example/f", "type": "feed"},
                object={"limit": 1.5},
            ),
            "[feeds] /object/limit: must be integer",
        ),
        (
            activity(
                "feeds",
                "fetch",
                actor={"id": "https://x.example/f", "type": "feed"},
                object={"since": "2026-02-30T00:00:00Z"},
            ),
            '[feeds] /object/since: must match format "date-time"',
        ),
        (
            activity("xmpp", "update", object={"type": "presence", "presence": "afk"}),
            "[xmpp] /object/presence: must be equal to one of the allowed values: "
            "away, chat, dnd, xa, offline, online",
        ),
        (
            activity("irc", "send", object={"type": "message"}),
            "[irc] /object: must have required property 'content'",
        ),
        (
            activity("irc", "update", object={"type": "topic", "topic": "goats", "content": "g"}),
            "[irc] /object: must NOT have additional properties: topic",
        ),
        (
            activity("irc", "send", object={"content": "hi"}),
            "[irc] /object: must match exactly one schema in oneOf: "
            "message, address, topic, attendance",
        ),
        (
            with_context([*canonical_context("dummy"), AS_CONTEXT_URL]),
            "[dummy] /@context: must NOT have more than 3 items",
        ),
    ],
)
def test_schema_failure_texts(payload: dict[str, Any], expected: str) -> None:
    assert message_error(payload) == expected


# --- credentials -----------------------------------------------------------------------------

IRC_CREDENTIALS = {"type": "credentials", "nick": "alice", "server": "irc.example.org"}
XMPP_CREDENTIALS = {
    "type": "credentials",
    "userAddress": "alice@example.org",
    "password": "s3cret",
    "resource": "laptop",
}


def test_valid_credentials_pass() -> None:
    irc = validate_credentials(activity("irc", "credentials", object=IRC_CREDENTIALS), REGISTRY)
    xmpp = validate_credentials(activity("xmpp", "credentials", object=XMPP_CREDENTIALS), REGISTRY)
    dummy = validate_credentials(
        activity("dummy", "credentials", object={"type": "credentials", "any": 1}), REGISTRY
    )
    assert (irc.platform, xmpp.platform, dummy.platform) == ("irc", "xmpp", "dummy")
    assert irc.verb == "credentials"


def test_credentials_need_credentials_as_activity_type() -> None:
    payload = activity("irc", "send", object=IRC_CREDENTIALS)
    assert credentials_error(payload) == (
        "credential activity streams must have credentials set as type"
    )


def test_credentials_without_object() -> None:
    assert credentials_error(activity("irc", "credentials")) == (
        "credential activity streams must have credentials set as type"
    )


@pytest.mark.parametrize(
    ("platform", "credentials", "expected"),
    [
        (
            "irc",
            {"type": "credentials", "nick": "a"},
            "/object: must have required property 'server'",
        ),
        ("irc", {**IRC_CREDENTIALS, "port": "6667"}, "/object/port: must be integer"),
        (
            "irc",
            {**IRC_CREDENTIALS, "pass": "x"},
            "/object: must NOT have additional properties: pass",
        ),
        (
            "irc",
            {**IRC_CREDENTIALS, "saslMechanism": "SCRAM"},
            "/object/saslMechanism: must be equal to one of the allowed values: PLAIN, OAUTHBEARER",
        ),
        ("irc", {**IRC_CREDENTIALS, "password": "p", "token": "t"}, "/object: must NOT be valid"),
        (
            "xmpp",
            {k: v for k, v in XMPP_CREDENTIALS.items() if k != "resource"},
            "/object: must have required property 'resource'",
        ),
    ],
)
def test_credentials_schema_failures(
    platform: str, credentials: dict[str, Any], expected: str
) -> None:
    payload = activity(platform, "credentials", object=credentials)
    assert credentials_error(payload) == f"[{platform}] {expected}"


def test_irc_credentials_accept_every_optional_field() -> None:
    full = {
        **IRC_CREDENTIALS,
        "port": 6697,
        "secure": True,
        "token": "t",
        "sasl": True,
        "saslMechanism": "OAUTHBEARER",
        "username": "alice",
    }
    validate_credentials(activity("irc", "credentials", object=full), REGISTRY)


def test_platform_without_credentials() -> None:
    payload = activity("feeds", "credentials", object={"type": "credentials"})
    assert credentials_error(payload) == "[feeds] this platform does not take credentials"


def test_credentials_verb_is_not_a_message() -> None:
    payload = activity("irc", "credentials", object=IRC_CREDENTIALS)
    assert message_error(payload) == "[irc] /type: must be equal to one of the allowed values"


# --- normalisation ---------------------------------------------------------------------------


def test_string_actor_target_object_are_expanded() -> None:
    payload = activity(actor="alice", target="room", object="hello")
    # A bare {"id": ...} actor lacks a type, so it fails the schema as on Sockethub.
    assert message_error(payload) == (
        "[dummy] /actor: must match exactly one schema in oneOf: "
        "person, room, service, feed, website"
    )
    payload = activity(object="hello", target={"id": "#room", "type": "room"})
    result = validate_message(payload, REGISTRY)
    assert result.activity["object"] == {"content": "hello"}


def test_string_target_becomes_id_object() -> None:
    payload = activity(target="bob")
    assert message_error(payload).startswith("[dummy] /target: must match exactly one schema")


def test_g3_result_shape_and_input_untouched() -> None:
    payload = activity(id="corr-1", object="hi")
    before = copy.deepcopy(payload)
    result = validate_message(payload, REGISTRY)
    assert payload == before
    assert result == ValidatedActivity(
        platform="dummy",
        verb="echo",
        activity={**before, "object": {"content": "hi"}},
        dialect="g3",
        correlation_id="corr-1",
    )
    assert result.activity["@context"] == canonical_context("dummy")


def test_g3_strings_are_not_looked_up() -> None:
    def lookup(object_id: str) -> dict[str, Any] | None:
        raise AssertionError("G3 activities never consult registered objects")

    payload = activity(object="hi")
    assert validate_message(payload, REGISTRY, lookup_object=lookup).activity["object"] == {
        "content": "hi"
    }


# --- G2 --------------------------------------------------------------------------------------

STORED = {
    "alice@irc.example.org": {"id": "alice@irc.example.org", "type": "person", "name": "alice"},
    "#room@irc.example.org": {"id": "#room@irc.example.org", "type": "room", "name": "#room"},
}


def g2_lookup(object_id: str) -> dict[str, Any] | None:
    return STORED.get(object_id)


def test_g2_detected_and_normalised() -> None:
    payload = {
        "context": "irc",
        "type": "send",
        "actor": "alice@irc.example.org",
        "target": "#room@irc.example.org",
        "object": {"type": "message", "content": "hi"},
    }
    result = validate_message(payload, REGISTRY, lookup_object=g2_lookup)
    assert result.dialect == "g2"
    assert result.platform == "irc"
    assert result.activity == {
        "@context": canonical_context("irc"),
        "type": "send",
        "actor": STORED["alice@irc.example.org"],
        "target": STORED["#room@irc.example.org"],
        "object": {"type": "message", "content": "hi"},
    }
    assert "context" in payload and isinstance(payload["actor"], str)
    assert result.activity["actor"] is not STORED["alice@irc.example.org"]


def test_g2_unknown_ids_expand_as_in_g3() -> None:
    payload = {
        "context": "dummy",
        "type": "echo",
        "actor": {"id": "x", "type": "person"},
        "object": "unknown-id",
    }
    result = validate_message(payload, REGISTRY, lookup_object=g2_lookup)
    assert result.activity["object"] == {"content": "unknown-id"}
    payload["actor"] = "nobody"
    assert message_error(payload).startswith("[dummy] /actor: must match exactly one schema")


def test_g2_unknown_platform() -> None:
    payload = {"context": "nope", "type": "send", "actor": PERSON}
    assert message_error(payload) == (
        "platform context nope not registered with this Sockethub instance."
    )


def test_g2_credentials() -> None:
    payload = {
        "context": "irc",
        "type": "credentials",
        "actor": "alice@irc.example.org",
        "object": IRC_CREDENTIALS,
    }
    result = validate_credentials(payload, REGISTRY, lookup_object=g2_lookup)
    assert (result.dialect, result.verb) == ("g2", "credentials")


def test_at_context_wins_over_context() -> None:
    payload = activity(context="irc")
    assert message_error(payload) == (
        "[dummy] activity stream: must NOT have additional properties: context"
    )


def test_activity_object() -> None:
    obj = {"id": "alice@irc.example.org", "type": "person", "name": "alice", "extra": [1]}
    assert validate_activity_object(obj) == obj
    with pytest.raises(ActivityError) as caught:
        validate_activity_object({"type": "person"})
    assert caught.value.message == (
        "activity-object schema validation failed: must have required property 'id'"
    )
    with pytest.raises(ActivityError) as caught:
        validate_activity_object({"id": 1, "type": "person"})
    assert caught.value.message == "activity-object schema validation failed: /id: must be string"
    with pytest.raises(ActivityError) as caught:
        validate_activity_object("alice")
    assert caught.value.message == "message received is not an object."


# --- depth -----------------------------------------------------------------------------------


def nested(depth: int) -> dict[str, Any]:
    """An object nesting exactly ``depth`` objects, counting itself."""
    inner: Any = {"leaf": 1}
    for _ in range(depth - 1):
        inner = {"x": inner}
    return inner  # type: ignore[no-any-return]


def test_depth_limit() -> None:
    # The activity and its object are the first two levels.
    at_limit = activity(object={"type": "note", "deep": nested(MAX_DEPTH - 2)})
    validate_message(at_limit, REGISTRY)
    too_deep = activity(object={"type": "note", "deep": nested(MAX_DEPTH - 1)})
    assert message_error(too_deep) == "activity stream is nested too deeply."


def test_very_deep_payload_does_not_blow_the_stack() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert message_error(activity(object={"x": deep})) == "activity stream is nested too deeply."
    with pytest.raises(ActivityError):
        validate_activity_object({"id": "a", "type": "b", "x": deep})


# --- properties ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)
KEYS = st.sampled_from(
    ["@context", "context", "type", "actor", "target", "object", "id", "published", "foo"]
)
activity_like = st.dictionaries(
    KEYS,
    json_values
    | st.sampled_from([canonical_context(p) for p in BUILTIN_PLATFORMS])
    | st.sampled_from([*BUILTIN_PLATFORMS, "fetch", "echo", "send", "credentials"])
    | st.fixed_dictionaries({"id": st.text(), "type": st.sampled_from(["person", "feed", "x"])}),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, activity_like))
def test_arbitrary_json_only_raises_activity_error(payload: object) -> None:
    for check in (validate_message, validate_credentials):
        try:
            check(payload, REGISTRY, lookup_object=g2_lookup)
        except ActivityError as error:
            assert isinstance(error.message, str) and error.message
    with contextlib.suppress(ActivityError):
        validate_activity_object(payload)


texts = st.text(min_size=1, max_size=20)
people = st.fixed_dictionaries(
    {"id": texts, "type": st.sampled_from(["person", "room", "service", "platform"])},
    optional={"name": st.text(max_size=10)},
)
urls = st.from_regex(r"https://[a-z]{1,10}\.example/[a-z0-9]{0,10}", fullmatch=True)
date_times = st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())


def envelope(platform: str, verb: Any, actor: Any, **optional: Any) -> Any:
    return st.fixed_dictionaries(
        {"@context": st.just(canonical_context(platform)), "type": verb, "actor": actor},
        optional={"id": texts, "published": date_times, **optional},
    )


platform_activities = st.one_of(
    envelope(
        "dummy",
        st.sampled_from(["echo", "greet", "fail", "throw", "hang", "exit1", "sigkill"]),
        people,
        object=st.fixed_dictionaries({}, optional={"type": texts, "content": st.text()}),
        target=people,
    ),
    envelope(
        "feeds",
        st.just("fetch"),
        st.fixed_dictionaries({"id": urls, "type": st.just("feed")}),
        object=st.fixed_dictionaries(
            {}, optional={"since": date_times, "limit": st.integers(min_value=1)}
        ),
    ),
    envelope(
        "metadata",
        st.just("fetch"),
        st.fixed_dictionaries({"id": urls, "type": st.just("website")}),
    ),
    envelope(
        "irc",
        st.sampled_from(["connect", "update", "join", "leave", "send", "query", "disconnect"]),
        people,
        target=people,
        object=st.one_of(
            st.fixed_dictionaries({"type": st.just("message"), "content": st.text()}),
            st.fixed_dictionaries({"type": st.sampled_from(["address", "attendance"])}),
            st.fixed_dictionaries({"type": st.just("topic"), "content": st.text()}),
        ),
    ),
    envelope(
        "xmpp",
        st.sampled_from(["connect", "join", "send", "update", "make-friend", "query"]),
        people,
        target=people,
        object=st.one_of(
            st.fixed_dictionaries({"type": st.just("message"), "content": st.text()}),
            st.fixed_dictionaries(
                {
                    "type": st.just("presence"),
                    "presence": st.sampled_from(["away", "chat", "dnd", "xa", "offline", "online"]),
                },
                optional={"content": st.text()},
            ),
            st.fixed_dictionaries({"type": st.sampled_from(["attendance", "room-info"])}),
        ),
    ),
)


@settings(max_examples=300)
@given(platform_activities)
def test_generated_valid_activities_pass(payload: dict[str, Any]) -> None:
    result = validate_message(payload, REGISTRY)
    assert result.activity == payload
    assert result.verb == payload["type"]
    assert payload["@context"][2].endswith(f"/{result.platform}/v1.jsonld")
