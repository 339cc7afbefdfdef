"""Connection state recovery through a ``kill -9`` of the gateway, with Node's
socket.io-client (which implements the client side of Socket.IO v4's recovery)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from tests.fixtures.gateway import GatewayFactory, GatewayProcess, dummy, http_get
from tests.fixtures.recovery import NodeClient, kill9, logged_requests, replacement
from tests.fixtures.runners import RunnerProcess

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


def metrics_of(gateway: GatewayProcess) -> str:
    status, body = http_get(f"{gateway.internal_url}/metrics")
    assert status == 200
    return body.decode()


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
        client.send(dummy("echo", "after", id="after"))
        while True:
            ack = await client.next("ack")
            acks.append(ack)
            if ack["id"] == "after":
                break
        await asyncio.sleep(2)  # anything else would come now
        acks += client.drain("ack")
        messages = client.drain("message")
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
