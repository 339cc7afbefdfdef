"""Limits (spec sections 1 and 7): rate, connections per address, payload size,
in-flight requests per session, and allowed origins."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import socketio

from tests.fixtures.gateway import (
    Client,
    GatewayFactory,
    GatewayProcess,
    _start_gateway,
    dummy,
    fetch,
    wait_ready,
)
from tests.fixtures.runners import RunnerProcess

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

RATE_LIMITED = "rate limit exceeded, temporarily blocked"
TOO_MANY = "too many concurrent connections from this address"


@pytest.fixture(scope="module")
def limited(
    stack_env: dict[str, str],
    shared_gateway_prefix: str,
    dummy_runner: RunnerProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    gateway = _start_gateway(
        stack_env,
        Path(tmp_path_factory.mktemp("limited")),
        topic_prefix=shared_gateway_prefix,
        rate_limit=10,
        rate_block_seconds=2,
        max_payload=4096,
        max_inflight_per_session=2,
        request_timeout=4,
    )
    try:
        wait_ready(gateway)
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture
async def bystander(limited: GatewayProcess) -> AsyncIterator[Client]:
    """Another session on the same gateway: it must never notice the abuse."""
    client = await Client(limited.url).connect()
    yield client
    assert client.sio.connected
    ack = await client.call("message", dummy("echo", id="bystander"))
    assert ack["id"] == "bystander" and "error" not in ack
    assert client.events["error"].empty()
    await client.close()


async def test_rate_limit_announces_a_block_then_recovers(
    limited: GatewayProcess, bystander: Client
) -> None:
    client = await Client(limited.url).connect()
    try:
        for i in range(30):
            await client.emit("message", dummy("echo", id=f"flood-{i}"))
        event = await client.next_event("error", wait=30)
        assert event == {
            "type": "Error",
            "@context": [
                "https://www.w3.org/ns/activitystreams",
                "https://sockethub.org/ns/context/v1.jsonld",
            ],
            "actor": {"type": "Application", "name": "sockethub-server"},
            "summary": RATE_LIMITED,
        }
        with pytest.raises(socketio.exceptions.TimeoutError):
            await client.call("message", dummy("echo", id="blocked"), wait=1)
        await asyncio.sleep(2.5)
        ack = await client.call("message", dummy("echo", id="after-block"))
        assert ack["id"] == "after-block" and "error" not in ack
        assert client.sio.connected
        assert client.events["error"].qsize() == 0, "the block is announced once"
    finally:
        await client.close()


async def test_in_flight_bound_answers_with_an_error(
    limited: GatewayProcess, bystander: Client
) -> None:
    client = await Client(limited.url).connect()
    try:
        hangs = [asyncio.create_task(client.call("message", dummy("hang"))) for _ in range(2)]
        await asyncio.sleep(0.5)
        refused = await client.call("message", dummy("echo", id="third"))
        assert refused == {
            **dummy("echo", id="third"),
            "error": "Error: too many requests in flight for this session (limit 2)",
        }
        for hang in hangs:
            assert (await hang)["error"] == "Error: request timed out after 4 seconds"
    finally:
        await client.close()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_oversized_payload_disconnects(
    limited: GatewayProcess, bystander: Client, transport: str
) -> None:
    client = await Client(limited.url, transport=transport).connect()
    try:
        ok = await client.call("message", dummy("echo", "x" * 3000, id="fits"))
        assert ok["id"] == "fits"
        await client.emit("message", dummy("echo", "x" * 10_000, id="too-big"))
        await asyncio.wait_for(client.disconnected.wait(), 60)
    finally:
        await client.close()
    again = await Client(limited.url, transport=transport).connect()
    try:
        assert (await again.call("message", dummy("echo", id="again")))["id"] == "again"
    finally:
        await again.close()


async def test_origins_outside_the_allow_list_are_refused(limited: GatewayProcess) -> None:
    handshake = f"{limited.url}/sockethub/?EIO=4&transport=polling"
    status, _ = await fetch(handshake, headers={"Origin": "http://evil.example"})
    assert status == 400
    status, body = await fetch(handshake, headers={"Origin": "http://127.0.0.1:10550"})
    assert status == 200 and b'"sid"' in body
    client = await Client(limited.url).connect(headers={"Origin": "http://localhost:10550"})
    try:
        assert (await client.call("message", dummy("echo", id="o")))["id"] == "o"
    finally:
        await client.close()


async def test_connection_cap_per_address(
    gateway_factory: GatewayFactory, shared_gateway_prefix: str, dummy_runner: RunnerProcess
) -> None:
    gateway = gateway_factory(
        topic_prefix=shared_gateway_prefix,
        max_connections_per_ip=3,
        trusted_proxies="127.0.0.1/32",
    )
    # The cap counts across gateways: these clients have an address no other test uses.
    forwarded = {"X-Forwarded-For": "127.0.21.2"}
    clients = [await Client(gateway.url).connect(forwarded) for _ in range(3)]
    try:
        extra = Client(gateway.url)
        await extra.connect(forwarded)
        event = await extra.next_event("error", wait=30)
        assert event["summary"] == TOO_MANY and event["type"] == "Error"
        await asyncio.wait_for(extra.disconnected.wait(), 30)
        for client in clients:
            assert client.sio.connected
            assert (await client.call("message", dummy("echo", id="held")))["id"] == "held"
        await clients.pop().close()
        await asyncio.sleep(0.5)
        clients.append(await Client(gateway.url).connect(forwarded))
        assert (await clients[-1].call("message", dummy("echo", id="new")))["id"] == "new"
        assert clients[-1].events["error"].empty()
    finally:
        for client in clients:
            await client.close()
