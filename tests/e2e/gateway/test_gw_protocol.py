"""The Sockethub protocol through a real gateway, Kafka, Redis and dummy runner."""

from __future__ import annotations

import asyncio
import json

import pytest
import socketio

from benchmarks.measure import histogram_totals
from tests.fixtures.gateway import DUMMY_CONTEXT, Client, GatewayProcess, dummy, fetch

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

PLATFORM = {"id": "dummy", "type": "platform"}
JIMMY = {"id": "jimmy@dummy", "type": "person", "name": "Jimmy"}


async def test_echo_greet_fail_throw_g3(client: Client) -> None:
    echo = await client.call("message", dummy("echo", "hi", id="m1"))
    assert echo == {
        "@context": DUMMY_CONTEXT,
        "type": "echo",
        "id": "m1",
        "actor": PLATFORM,
        "target": JIMMY,
        "object": {"type": "message", "content": "hi"},
    }
    greet = await client.call("message", dummy("greet", "world"))
    assert greet["object"]["content"] == "Hello world"
    assert greet["actor"] == PLATFORM and greet["target"] == JIMMY
    for verb in ("fail", "throw"):
        failed = await client.call("message", dummy(verb, "boom", id=f"{verb}-1"))
        assert failed["error"] == "Error: boom"
        assert failed["id"] == f"{verb}-1" and failed["type"] == verb
        assert failed["@context"] == DUMMY_CONTEXT


async def test_string_actor_and_object_are_normalised(ws_client: Client) -> None:
    sent = {"@context": DUMMY_CONTEXT, "type": "echo", "actor": "jimmy", "object": "hi"}
    ack = await ws_client.call("message", sent)
    # No actor.type is added by the server: the schema refuses the message (spec 3).
    assert ack["error"].startswith("[dummy] /actor:")
    sent["actor"] = {"id": "jimmy", "type": "person"}
    ack = await ws_client.call("message", sent)
    assert ack["object"] == {"content": "hi"} and ack["target"] == sent["actor"]


async def test_g2_dialect_with_activity_objects(client: Client) -> None:
    person = {"id": "jimmy@g2", "type": "person", "name": "Jimmy Two"}
    assert await client.call("activity-object", person) == person
    ack = await client.call(
        "message",
        {"context": "dummy", "type": "echo", "actor": "jimmy@g2", "object": {"content": "yo"}},
    )
    assert ack["context"] == "dummy"
    assert ack["actor"] == PLATFORM and ack["target"] == person
    assert ack["object"] == {"content": "yo"}
    failed_request = {"context": "dummy", "type": "fail", "actor": "jimmy@g2", "object": "boom"}
    failed = await client.call("message", failed_request)
    assert failed == {"context": "error", "error": "Error: boom", "content": failed_request}
    invalid = {"context": "nope", "type": "echo", "actor": "jimmy@g2"}
    refused = await client.call("message", invalid)
    assert refused["context"] == "error" and refused["content"] == invalid
    assert "nope" in refused["error"]


async def test_schemas_registry_fingerprint_and_event(client: Client) -> None:
    registry = await client.call("schemas")
    assert [p["id"] for p in registry["platforms"]][:1] == ["dummy"]
    assert len(registry["fingerprint"]) == 16
    dummy_entry = registry["platforms"][0]
    assert dummy_entry["contextUrl"] == DUMMY_CONTEXT[2]
    assert "echo" in dummy_entry["types"] and "messages" in dummy_entry["schemas"]
    unchanged = await client.call("schemas", registry["fingerprint"])
    assert unchanged == {"fingerprint": registry["fingerprint"], "unchanged": True}
    assert (await client.call("schemas", "0000000000000000"))["platforms"]
    await client.emit("schemas", None)  # no callback: the registry comes as an event
    pushed = await client.next_event("schemas")
    assert pushed == registry


async def test_credentials_ack_is_the_normalised_activity(ws_client: Client) -> None:
    creds = {
        "@context": DUMMY_CONTEXT,
        "type": "credentials",
        "actor": {"id": "jimmy@dummy", "type": "person"},
        "object": {"type": "credentials", "password": "s3cret"},
    }
    assert await ws_client.call("credentials", creds) == creds
    no_type = await ws_client.call("credentials", {**creds, "actor": "jimmy@dummy"})
    assert no_type["error"].startswith("[dummy] /actor:"), no_type


async def test_timeout_answers_with_an_error(
    served_gateway: GatewayProcess, ws_client: Client
) -> None:
    request = dummy("hang", id="h1")
    other = await Client(served_gateway.url).connect()
    try:
        hang = asyncio.create_task(ws_client.call("message", request))
        # Meanwhile another session is served (the runner keeps one session's order only).
        echo = await other.call("message", dummy("echo", id="meanwhile"))
        assert echo["id"] == "meanwhile" and "error" not in echo
        assert not hang.done()
        ack = await hang
    finally:
        await other.close()
    assert ack == {**request, "error": "Error: request timed out after 5 seconds"}


async def test_no_callback_means_no_answer_and_unknown_events_are_ignored(
    ws_client: Client,
) -> None:
    await ws_client.emit("message", dummy("echo", id="silent"))
    with pytest.raises(socketio.exceptions.TimeoutError):
        await ws_client.call("no-such-event", {"x": 1}, wait=2)
    ack = await ws_client.call("message", dummy("echo", id="loud"))
    assert ack["id"] == "loud"
    await asyncio.sleep(0.5)
    assert ws_client.events["message"].empty(), "a result must never arrive as an event"


async def test_activities_of_one_session_are_answered_in_order(ws_client: Client) -> None:
    calls = [ws_client.call("message", dummy("echo", str(i), id=str(i))) for i in range(30)]
    acks = await asyncio.gather(*calls)
    assert [a["id"] for a in acks] == [str(i) for i in range(30)]


async def test_http_routes(served_gateway: GatewayProcess, ws_client: Client) -> None:
    await ws_client.call("message", dummy("echo"))
    assert await fetch(f"{served_gateway.url}/healthz") == (200, b"ok")
    assert await fetch(f"{served_gateway.internal_url}/healthz") == (200, b"ok")
    status, body = await fetch(f"{served_gateway.internal_url}/readyz")
    assert status == 200
    assert json.loads(body) == {
        "ready": True,
        "kafka": True,
        "redis": True,
        "replies": True,
        "serving": True,
    }
    status, body = await fetch(f"{served_gateway.url}/")
    assert status == 200 and b"/sockethub" in body
    # the public port serves neither probes' details nor metrics
    assert (await fetch(f"{served_gateway.url}/readyz"))[0] == 404
    assert (await fetch(f"{served_gateway.url}/metrics"))[0] == 404
    status, body = await fetch(f"{served_gateway.internal_url}/metrics")
    text = body.decode()
    assert "sockethub_gateway_connections " in text
    accepted = (
        'sockethub_gateway_activities_total{direction="in",outcome="accepted",platform="dummy"}'
    )
    assert accepted in text
    assert 'sockethub_gateway_request_seconds_bucket{le="0.5",platform="dummy"}' in text
    # The answer's hop from the runner's producer to this gateway, by record timestamps.
    hops, seconds = histogram_totals(text)["sockethub_gateway_reply_seconds"]
    assert hops >= 1 and 0 < seconds / hops < 30
    assert "sockethub_gateway_kafka_errors_total 0.0" in text
