"""The bridge's pending map: a request is registered before its record is produced, leaves
the map on its result, on ``forget`` or on a failed produce, and the bridge's stop drops
what is left."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from structlog.testing import capture_logs

from gateway.kafka_bridge import DeliveryError, KafkaBridge
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings
from schemas.codec import Codec as RealCodec
from schemas.envelopes import Record, Request, Result
from schemas.logcrypt import KeyRing


class Codec:
    """Records pass through as themselves."""

    def encode(self, record: Record) -> tuple[bytes, list[tuple[str, bytes]]]:
        return b"x", []

    async def decode_async(self, value: bytes, headers: object) -> Record:
        return self.decoded

    async def close(self) -> None:
        pass

    decoded: Record


class Producer:
    def __init__(self, bridge: KafkaBridge, fail: bool = False) -> None:
        self.bridge = bridge
        self.fail = fail
        self.registered_when_sent: list[bool] = []
        self.deliveries: list[asyncio.Future[object]] = []

    async def send(self, topic: str, value: bytes, **_: Any) -> asyncio.Future[object]:
        self.registered_when_sent.append(self.bridge.pending > 0)
        if self.fail:
            raise KafkaTimeoutError()
        delivery: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.deliveries.append(delivery)
        return delivery

    async def stop(self) -> None:
        pass


class Pending:
    def __init__(self, request: Request) -> None:
        self.request = request
        self.results: list[Result] = []
        self.deliveries: list[asyncio.Future[object]] = []
        self.dropped = 0

    async def resolve(self, result: Result) -> None:
        self.results.append(result)

    def delivery_done(self, delivery: asyncio.Future[object]) -> None:
        self.deliveries.append(delivery)

    def drop(self) -> None:
        self.dropped += 1


def bridge_with(fail: bool = False) -> tuple[KafkaBridge, Producer, Codec]:
    bridge = KafkaBridge(
        GatewaySettings(), gateway_id="gw", platforms=["dummy"], metrics=GatewayMetrics()
    )
    producer = Producer(bridge, fail)
    codec = Codec()
    bridge._producer = producer  # type: ignore[assignment]
    bridge._codec = codec  # type: ignore[assignment]
    return bridge, producer, codec


def pending_echo() -> Pending:
    activity = {"type": "echo", "actor": {"id": "a", "type": "person"}}
    return Pending(Request("s1", "sockethub.replies.gw", "dummy", "echo", activity))


def result_for(pending: Pending) -> Result:
    req = pending.request
    return Result(req.activity_id, "s1", req.reply_route, "dummy", "echo", req.activity)


async def test_a_request_is_registered_before_it_is_produced_and_leaves_on_its_result() -> None:
    bridge, producer, codec = bridge_with()
    pending = pending_echo()
    await bridge.submit(pending, "s1")
    assert producer.registered_when_sent == [True] and bridge.pending == 1
    producer.deliveries[0].set_result(None)
    await asyncio.sleep(0)
    assert pending.deliveries == producer.deliveries  # the delivery reaches the request

    codec.decoded = result_for(pending)
    await bridge._dispatch(b"x", [])
    await bridge._dispatch(b"x", [])  # a duplicate finds nobody waiting
    assert pending.results == [codec.decoded] and bridge.pending == 0


async def test_forget_takes_a_request_out_once() -> None:
    bridge, _, codec = bridge_with()
    pending = pending_echo()
    await bridge.submit(pending, "s1")
    assert bridge.forget(pending.request.activity_id)
    assert not bridge.forget(pending.request.activity_id)
    codec.decoded = result_for(pending)
    await bridge._dispatch(b"x", [])
    assert pending.results == []


async def test_a_failed_produce_leaves_nothing_registered() -> None:
    bridge, producer, _ = bridge_with(fail=True)
    with pytest.raises(DeliveryError):
        await bridge.submit(pending_echo(), "s1")
    assert producer.registered_when_sent == [True] and bridge.pending == 0


async def test_an_exception_in_one_answer_does_not_stop_the_reader() -> None:
    bridge, _, codec = bridge_with()

    class Broken(Pending):
        async def resolve(self, result: Result) -> None:
            raise RuntimeError("boom")

    broken, fine = Broken(pending_echo().request), pending_echo()
    await bridge.submit(broken, "s1")
    await bridge.submit(fine, "s1")
    codec.decoded = result_for(broken)
    await bridge._dispatch(b"x", [])
    codec.decoded = result_for(fine)
    await bridge._dispatch(b"x", [])
    assert len(fine.results) == 1 and bridge.pending == 0


async def test_stop_drops_the_requests_left() -> None:
    bridge, _, _ = bridge_with()
    pending = pending_echo()
    await bridge.submit(pending, "s1")
    bridge._consumer = None
    await bridge.stop()
    assert pending.dropped == 1 and bridge.pending == 0


async def test_with_log_keys_an_unsealed_reply_is_dropped_and_logged() -> None:
    keys = "k1:" + base64.b64encode(bytes(32)).decode()
    bridge = KafkaBridge(
        GatewaySettings(log_keys=keys),
        gateway_id="gw",
        platforms=["dummy"],
        metrics=GatewayMetrics(),
    )
    bridge._producer = Producer(bridge)  # type: ignore[assignment]
    pending = pending_echo()
    await bridge.submit(pending, "s1")
    forged = RealCodec().encode(result_for(pending))
    with capture_logs() as logs:
        await bridge._dispatch(*forged)
    assert pending.results == [] and bridge.pending == 1
    (failed,) = [e for e in logs if e["event"] == "reply_decode_failed"]
    assert "unsealed result record refused" in failed["error"]
    sealed = RealCodec(KeyRing.parse(keys)).encode(result_for(pending))
    await bridge._dispatch(*sealed)
    assert len(pending.results) == 1 and bridge.pending == 0
