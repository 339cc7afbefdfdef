"""The compiled (fastjsonschema) check and the jsonschema validator agree on valid/invalid.

The gateway trusts the compiled check's "valid" without asking jsonschema, so a
"valid" from it must never be an "invalid" from jsonschema; and it should not
send valid activities down the slow path either, so the two are expected to agree.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.platform_registry import (
    BUILTIN_PLATFORMS,
    PlatformRegistry,
    SchemaKind,
    _type_dispatch,
    canonical_context,
)
from tests.unit.gateway.test_validation import activity_like, json_values, platform_activities
from tests.unit.schemas.activity_strategies import activities

REGISTRY = PlatformRegistry(BUILTIN_PLATFORMS, server_version="1.2.3")
KINDS: tuple[SchemaKind, ...] = ("messages", "credentials")
for _platform in BUILTIN_PLATFORMS:  # compiled once here, not inside a timed example
    for _kind in KINDS:
        REGISTRY.fast_check(_platform, _kind)

credentials_activities = st.builds(
    lambda platform, actor, obj, extra: {
        "@context": canonical_context(platform),
        "type": "credentials",
        "actor": actor,
        "object": {"type": "credentials", **obj},
        **extra,
    },
    st.sampled_from(BUILTIN_PLATFORMS),
    st.fixed_dictionaries(
        {"id": st.text(max_size=12), "type": st.sampled_from(["person", "service", "room"])}
    ),
    st.dictionaries(
        st.sampled_from(["nick", "password", "server", "port", "secure", "userAddress", "x"]),
        st.text(max_size=8) | st.integers(-5, 70000) | st.booleans(),
        max_size=4,
    ),
    st.dictionaries(
        st.sampled_from(["id", "published", "target", "extra"]), json_values, max_size=2
    ),
)


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """A generated activity with one value somewhere replaced, removed or added."""
    base = draw(
        platform_activities
        | credentials_activities
        | st.sampled_from(BUILTIN_PLATFORMS).flatmap(activities)
    )
    value: Any = copy.deepcopy(base)
    containers = [value]
    stack = [value]
    while stack:
        node = stack.pop()
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                containers.append(child)
                stack.append(child)
    node = draw(st.sampled_from(containers))
    action = draw(st.sampled_from(["keep", "replace", "remove", "add"]))
    replacement = draw(
        json_values
        | st.sampled_from(["person", "room", "feed", "2024-01-02T03:04:05Z", "not a date", "x:y"])
    )
    if isinstance(node, dict):
        keys = list(node)
        if action == "add" or not keys:
            node[draw(st.sampled_from([*keys, "type", "id", "extra", "published"]))] = replacement
        elif action == "replace":
            node[draw(st.sampled_from(keys))] = replacement
        elif action == "remove":
            del node[draw(st.sampled_from(keys))]
    elif node:
        index = draw(st.integers(0, len(node) - 1))
        if action == "replace":
            node[index] = replacement
        elif action == "remove":
            del node[index]
        elif action == "add":
            node.append(replacement)
    return value


def _agree(instance: Any) -> None:
    for platform in REGISTRY.ids():
        for kind in KINDS:
            slow = REGISTRY.validator(platform, kind)
            fast = REGISTRY.fast_check(platform, kind)
            if slow is None:
                assert fast is None
                continue
            assert fast is not None
            before = copy.deepcopy(instance)
            slow_valid = next(slow.iter_errors(instance), None) is None
            assert fast(instance) == slow_valid, (platform, kind, instance)
            assert instance == before  # neither fills in defaults or otherwise changes it


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fast_and_slow_agree_on_generated_activities(instance: Any) -> None:
    _agree(instance)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, activity_like))
def test_fast_and_slow_agree_on_arbitrary_json(instance: Any) -> None:
    _agree(instance)


@pytest.mark.parametrize(
    "published",
    ["2024-02-29T12:00:00Z", "2023-02-29T12:00:00Z", "2024-01-01T23:59:60+00:00", "2024-01-01"],
)
def test_formats_are_the_shared_checks(published: str) -> None:
    activity = {
        "@context": canonical_context("dummy"),
        "type": "echo",
        "actor": {"id": "a", "type": "person"},
        "published": published,
    }
    _agree(activity)


@pytest.mark.parametrize(
    "actor",
    [
        {"id": "x", "type": "platform"},
        {"id": "x", "type": "service", "name": 5},
        {"id": "not a uri", "type": "feed"},
        {"id": "https://example.org/feed", "type": "feed"},
        {"id": "x"},
        {"id": "x", "type": "robot"},
        {"id": "x", "type": ["person"]},
        {"id": "x", "type": 1},
        {"type": "person"},
        "jimmy",
        ["person"],
        None,
    ],
)
@pytest.mark.parametrize("where", ["actor", "target"])
def test_type_dispatched_branches_agree_with_one_of(where: str, actor: Any) -> None:
    instance = {
        "@context": canonical_context("dummy"),
        "type": "echo",
        "actor": {"id": "jimmy", "type": "person"},
        where: actor,
    }
    fast = REGISTRY.fast_check("dummy", "messages")
    slow = REGISTRY.validator("dummy", "messages")
    assert fast is not None and slow is not None
    assert fast(instance) == slow.is_valid(instance)


def test_actor_and_target_one_of_are_dispatched_by_type() -> None:
    schema = REGISTRY.get("irc").messages_schema  # type: ignore[union-attr]
    stripped, dispatch = _type_dispatch(schema)
    assert {"actor", "target"} <= set(dispatch)
    assert dispatch["actor"]["platform"] is dispatch["actor"]["service"]
    assert "oneOf" not in stripped["properties"]["actor"]
    assert "oneOf" in schema["properties"]["actor"]
