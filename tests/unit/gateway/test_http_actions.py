"""HTTP actions' parsing, request ids, activity ids, line shapes and ordering."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import ValidationError

from gateway.http_actions import (
    NOT_JSON,
    NOT_PAYLOADS,
    UNSUPPORTED,
    BodyError,
    OrderedLines,
    activity_id,
    credentials_line,
    error_line,
    is_activity,
    is_credentials,
    parse_body,
    pick_request_id,
    too_deep,
)
from gateway.limits import RateLimiter
from gateway.settings import GatewaySettings

JSON = "application/json"
ACTIVITY = {"type": "echo", "actor": {"id": "a@dummy"}, "@context": []}


def parse(body: object, content_type: str = JSON, limit: int = 20) -> list[object]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_body(raw, content_type, max_messages=limit, max_depth=16).payloads


def refusal(body: object, content_type: str = JSON, limit: int = 20) -> tuple[int, str]:
    with pytest.raises(BodyError) as caught:
        parse(body, content_type, limit)
    return caught.value.status, caught.value.message


def test_a_body_is_one_activity_an_array_or_an_envelope() -> None:
    assert parse(ACTIVITY) == [ACTIVITY]
    assert parse([ACTIVITY, 1, None]) == [ACTIVITY, 1, None]
    batch = parse_body(
        json.dumps({"requestId": "r-1", "messages": [ACTIVITY]}).encode(),
        "application/json; charset=utf-8",
        max_messages=20,
        max_depth=16,
    )
    assert batch.payloads == [ACTIVITY] and batch.body_request_id == "r-1"
    # An activity that happens to have "messages" is still an activity.
    odd = {**ACTIVITY, "messages": []}
    assert parse(odd) == [odd]


def test_refused_bodies_in_the_order_of_the_checks() -> None:
    assert refusal(b"{nope") == (400, NOT_JSON)
    assert refusal([]) == (400, NOT_PAYLOADS)
    assert refusal(None) == (400, NOT_PAYLOADS)
    assert refusal("text") == (400, NOT_PAYLOADS)
    assert refusal({"messages": []}) == (400, NOT_PAYLOADS)
    assert refusal([ACTIVITY], content_type="text/plain") == (400, NOT_PAYLOADS)
    assert refusal(b"{nope", content_type="application/x-ndjson") == (400, NOT_PAYLOADS)
    assert refusal([ACTIVITY] * 3, limit=2) == (413, "payload limit exceeded (max 2)")
    deep: object = ACTIVITY
    for _ in range(20):
        deep = [deep]
    assert refusal(deep) == (400, "request body is nested too deeply")


def test_too_deep_counts_containers() -> None:
    assert not too_deep({"a": [1, {"b": 2}]}, 3)
    assert too_deep({"a": [1, {"b": []}]}, 3)
    assert not too_deep("text", 0)


def test_request_id_sources_and_checks() -> None:
    headers = {"x-request-id": " h1 ", "x-sockethub-request-id": "h2"}
    assert pick_request_id(headers, "b", required=True) == "h1"
    assert pick_request_id({"x-sockethub-request-id": "h2"}, "b", required=True) == "h2"
    assert pick_request_id({"x-request-id": "  "}, "b", required=True) == "b"
    assert pick_request_id({}, None, required=False) is None
    for bad, text in [
        (None, "requestId is required"),
        (" ", "requestId is required"),
        ("a b", "requestId contains invalid characters"),
        ("a/b", "requestId contains invalid characters"),
        ("x" * 129, "requestId must be at most 128 characters"),
    ]:
        with pytest.raises(BodyError) as caught:
            pick_request_id({}, bad, required=True)
        assert (caught.value.status, caught.value.message) == (400, text)
    assert pick_request_id({}, "A-z_0.9:x" + "x" * 119, required=True)


def test_activity_ids_are_stable_per_request_id_and_index() -> None:
    first = activity_id("p", "req", 0)
    assert first == activity_id("p", "req", 0)
    assert len(first) == 32
    others = {activity_id("p", "req", 1), activity_id("p", "req2", 0), activity_id("q", "req", 0)}
    assert first not in others and len(others) == 3


def test_payload_kinds() -> None:
    assert is_activity(ACTIVITY) and not is_credentials(ACTIVITY)
    assert is_credentials({**ACTIVITY, "type": "credentials"})
    for other in (None, 3, "s", [], {"type": "echo"}, {"actor": {}}):
        assert not is_activity(other) and not is_credentials(other)


def test_credentials_lines_never_carry_the_secret() -> None:
    payload = {**ACTIVITY, "type": "credentials", "object": {"password": "hunter2"}}
    ok = credentials_line(payload, {**payload}, "r")
    assert ok["type"] == "credentials-ack" and ok["actor"] == {"id": "a@dummy", "type": "person"}
    assert "hunter2" not in json.dumps(ok) and "error" not in ok
    refused = credentials_line(payload, {**payload, "error": "bad"}, "r")
    assert refused["error"] == "bad" and "hunter2" not in json.dumps(refused)
    anonymous = credentials_line({"type": "credentials", "actor": {}}, {"error": "why"}, "r")
    assert anonymous == error_line("why", "r")
    assert credentials_line({"type": "credentials", "actor": 1}, {}, "r")["error"] == (
        "invalid credentials payload"
    )


async def test_lines_come_in_payload_order_whatever_order_they_complete() -> None:
    lines = OrderedLines(3)
    loop = asyncio.get_running_loop()
    seen: list[object] = []

    async def read() -> None:
        async for line in lines.lines(loop.time() + 30, lambda: {"late": True}):
            seen.append(line["n"])

    reader = asyncio.create_task(read())
    for index in (2, 0, 1):
        await lines.filler(index)({"n": index})
        await asyncio.sleep(0)
    await asyncio.wait_for(reader, 10)
    assert seen == [0, 1, 2]
    assert not lines.fill(1, {"n": "again"})  # a payload is answered once


async def test_unanswered_slots_get_the_timeout_line_at_the_deadline() -> None:
    lines = OrderedLines(2)
    lines.fill(1, {"n": 1})
    loop = asyncio.get_running_loop()
    got = [
        line async for line in lines.lines(loop.time(), lambda: error_line("request timeout", "r"))
    ]
    assert got[0]["error"] == "request timeout" and got[1] == {"n": 1}
    assert error_line(UNSUPPORTED, "r")["actor"] == {
        "type": "Application",
        "name": "sockethub-server",
    }


def test_settings_keep_the_path_apart_and_a_blank_token_asks_for_none() -> None:
    assert GatewaySettings(secret="s" * 32).http_actions is False
    assert GatewaySettings(secret="s" * 32, http_actions_token="").http_actions_token is None
    token = GatewaySettings(secret="s" * 32, http_actions_token="t").http_actions_token
    assert token is not None and token.get_secret_value() == "t"
    for path in ("/sockethub", "/sockethub/http", "relative"):
        with pytest.raises(ValidationError):
            GatewaySettings(secret="s" * 32, http_actions_path=path)


def test_address_blocks_are_visible_and_idle_windows_pruned() -> None:
    now = [100.0]
    limiter = RateLimiter(1, 5.0, lambda: now[0])
    limiter.check("a", "a")
    limiter.check("a", "a")  # over: blocks the address
    assert limiter.address_blocked_for("a") == 5.0
    assert limiter.address_blocked_for("b") == 0.0
    limiter.check("b")
    now[0] += 2
    limiter.prune(keep=0)
    assert len(limiter) == 1  # "a" still blocks; "b" counted nothing for a second
