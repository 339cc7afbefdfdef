"""Connection state recovery through a ``kill -9`` of the gateway, with Node's
socket.io-client (which implements the client side of Socket.IO v4's recovery)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest

from gateway.recovery import RecoveryIndex
from gateway.settings import GatewaySettings
from schemas.topics import TopicLayout
from sockethub.runtime.liveness import heartbeat_key
from sockethub.runtime.redis_client import redis_client
from tests.fixtures.gateway import GatewayFactory, GatewayProcess, dummy, http_get
from tests.fixtures.recovery import (
    NodeClient,
    kill9,
    logged_requests,
    replacement,
    sigterm,
)
from tests.fixtures.runners import RunnerProcess

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


def metrics_of(gateway: GatewayProcess) -> str:
    status, body = http_get(f"{gateway.internal_url}/metrics")
    assert status == 200
    return body.decode()


async def _settle_after(client: NodeClient, acks: list[Any]) -> list[Any]:
    """One more echo on the recovered session, then a pause for anything late or
    duplicated: adds every ack to ``acks`` and returns the ``message`` events."""
    client.send(dummy("echo", "after", id="after"))
    while True:
        ack = await client.next("ack")
        acks.append(ack)
        if ack["id"] == "after":
            break
    await asyncio.sleep(2)  # anything else would come now
    acks += client.drain("ack")
    messages: list[Any] = client.drain("message")
    return messages


async def test_a_session_resumes_on_another_gateway_after_kill_9(
    gateway_factory: GatewayFactory,
    dummy_runner: RunnerProcess,
    shared_gateway_prefix: str,
    stack_env: dict[str, str],
    redis_url: str,
) -> None:
    a = gateway_factory(topic_prefix=shared_gateway_prefix)
    client = await NodeClient.start(a)
    try:
        first = await client.next("connect")
        assert first["recovered"] is False
        client.send(dummy("echo", "warm", id="warm"))
        assert (await client.next("ack"))["id"] == "warm"

        ids = [f"e{n}" for n in range(40)]
        for n in ids:
            client.send(dummy("echo", n, id=n))
        acks = [await client.next("ack")]  # the batch is under way: some answered, some not
        kill9(a)
        killed_at = time.monotonic()
        await client.next("disconnect")

        b = replacement(gateway_factory, a)
        again = await client.next("connect")
        recovered_in = time.monotonic() - killed_at
        assert again == {"id": first["id"], "recovered": True, "pid": first["pid"]}
        messages = await _settle_after(client, acks)
        requests = await logged_requests(stack_env, shared_gateway_prefix, "dummy", first["id"])
        produced = {str(r.correlation_id) for r in requests}
    finally:
        await client.close()

    acked = Counter(ack["id"] for ack in acks if ack["id"] in ids)
    pushed = Counter(m["object"]["content"] for m in messages)
    answered = acked + pushed
    unanswered = (produced & set(ids)) - set(answered)
    print(
        f"\nrecovered in {recovered_in:.1f} s; of {len(ids)} sent at the kill: "
        f"{len(produced & set(ids))} reached the log, {sum(acked.values())} acknowledged before "
        f"the kill, {sum(pushed.values())} delivered as missed messages, "
        f"{len(unanswered)} never answered"
    )
    assert all(n == 1 for n in answered.values()), answered  # none twice
    # Every request in the log is answered: by its ack, or as a missed message.
    assert unanswered == set(), unanswered
    assert set(answered) <= produced
    assert all("error" not in m for m in messages)
    assert all(isinstance(o, str) and o for o in client.offsets)
    assert [a["id"] for a in acks if a["id"] == "after"] == ["after"]
    assert b.gateway_id != a.gateway_id
    assert 'sockethub_sessions_recovered_total{outcome="recovered"} 1.0' in metrics_of(b)


async def test_a_reconnect_after_the_window_gets_a_fresh_session(
    gateway_factory: GatewayFactory,
    dummy_runner: RunnerProcess,
    shared_gateway_prefix: str,
) -> None:
    window = 2
    a = gateway_factory(topic_prefix=shared_gateway_prefix, recovery_window=window)
    client = await NodeClient.start(a)
    try:
        first = await client.next("connect")
        client.send(dummy("echo", "before", id="before"))
        assert (await client.next("ack"))["id"] == "before"
        kill9(a)
        await client.next("disconnect")
        # The entry outlives the last refresh by window + window // 4 at most.
        await asyncio.sleep(window * 2 + 3)
        b = replacement(gateway_factory, a, recovery_window=window)
        again = await client.next("connect")
        assert again["recovered"] is False
        assert again["id"] != first["id"]
        client.send(dummy("echo", "fresh", id="fresh"))
        ack = await client.next("ack")
        assert ack["id"] == "fresh" and "error" not in ack
        assert client.drain("message") == []
        assert 'sockethub_sessions_recovered_total{outcome="expired"} 1.0' in metrics_of(b)
    finally:
        await client.close()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_a_clean_stop_parks_the_session_for_another_gateway(
    gateway_factory: GatewayFactory,
    dummy_runner: RunnerProcess,
    shared_gateway_prefix: str,
    redis_url: str,
    transport: str,
) -> None:
    """SIGTERM (a rolling restart) with requests under way: the client is not told to go
    away; it reconnects to the next gateway and recovers there, and every request is
    answered exactly once (none lost, unlike a kill). The stopped
    gateway's liveness key is gone at once and the credentials expire with the entry."""
    prefix = shared_gateway_prefix
    a = gateway_factory(topic_prefix=prefix)
    redis = redis_client(redis_url)
    client = await NodeClient.start(a, transport)
    try:
        first = await client.next("connect")
        sid = first["id"]
        stored = await client.call(dummy("credentials", object={"type": "credentials"}),
                                   "credentials")  # fmt: skip
        assert "error" not in stored, stored
        alive = heartbeat_key(prefix, TopicLayout(GatewaySettings(topic_prefix=prefix)).replies(
            a.gateway_id))  # fmt: skip
        assert await redis.exists(alive)
        # A polling client's POST carries at most 16 packets (engine.io's limit).
        ids = [f"t{n}" for n in range(40 if transport == "websocket" else 12)]
        for n in ids:
            client.send(dummy("echo", n, id=n))
        acks = [await client.next("ack")]  # the batch is under way
        stopping = asyncio.ensure_future(sigterm(a))
        reason = await client.next("disconnect")
        await stopping
        stopped_at = time.monotonic()
        assert not await redis.exists(alive)
        parked = RecoveryIndex(redis, prefix, GatewaySettings().recovery_window).stopped_ttl
        credentials_ttl = await redis.ttl(f"{prefix}:creds:{{{sid}}}:index")  # set to expire
        assert 0 < credentials_ttl <= parked, credentials_ttl
        entry_ttl = await redis.ttl(RecoveryIndex(redis, prefix, 1).key(first["pid"]))
        assert 0 < entry_ttl <= parked, entry_ttl

        b = replacement(gateway_factory, a)
        again = await client.next("connect")
        recovered_in = time.monotonic() - stopped_at
        assert again == {"id": sid, "recovered": True, "pid": first["pid"]}
        messages = await _settle_after(client, acks)
        # Never ended (no session_closed goes without this): its credentials are all there,
        # with their full sliding expiry again now that it is recovered.
        creds = f"{prefix}:creds:{{{sid}}}"
        assert not await redis.exists(f"{creds}:closed")
        items = await redis.hkeys(f"{creds}:index")
        assert len(items) == 1 and await redis.exists(*items, f"{creds}:secret") == 2
        assert await redis.ttl(f"{creds}:index") > parked
    finally:
        await client.close()
        await redis.aclose()

    acked = Counter(ack["id"] for ack in acks if ack["id"] in ids)
    pushed = Counter(m["object"]["content"] for m in messages)
    answered = acked + pushed
    print(
        f"\n[{transport}] SIGTERM: client saw {reason!r}; recovered {recovered_in:.1f} s after "
        f"the stop; of {len(ids)} sent: {sum(acked.values())} acknowledged, "
        f"{sum(pushed.values())} delivered as missed"
    )
    # Not "io server disconnect", after which socket.io-client does not reconnect.
    assert reason in ("transport close", "transport error"), reason
    assert all("error" not in a for a in acks), acks
    assert all(n == 1 for n in answered.values()), answered
    assert set(answered) == set(ids)  # none lost, none twice
    assert all("error" not in m for m in messages)
    assert b.gateway_id != a.gateway_id
    assert 'sockethub_sessions_recovered_total{outcome="recovered"} 1.0' in metrics_of(b)
