"""A pending request is answered exactly once: by its result, its timeout, a failed delivery
or the end of its session, whichever comes first."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.kafka_bridge import DeliveryError
from gateway.metrics import GatewayMetrics
from gateway.requests import NOT_QUEUED, PendingRequest, RequestTracker, send_answer
from gateway.sessions import Session
from schemas.envelopes import Request, Result

ACTIVITY: dict[str, Any] = {"type": "echo", "id": "m1", "actor": {"id": "a", "type": "person"}}


class Bridge:
    """The bridge's pending map, with produce outcomes chosen by the test."""

    def __init__(self, fail: bool = False) -> None:
        self.pending: dict[str, PendingRequest] = {}
        self.fail = fail
        self.delivery: asyncio.Future[object] | None = None

    async def submit(self, pending: PendingRequest, key: str) -> None:
        self.pending[pending.request.activity_id] = pending
        await asyncio.sleep(0)
        if self.fail:
            self.pending.pop(pending.request.activity_id, None)
            raise DeliveryError("broker gone")
        self.delivery = asyncio.get_running_loop().create_future()
        self.delivery.add_done_callback(pending.delivery_done)

    def forget(self, activity_id: str) -> bool:
        return self.pending.pop(activity_id, None) is not None

    async def reply(self, result: Result) -> None:
        """What the reply reader does with a result."""
        pending = self.pending.pop(result.activity_id, None)
        if pending is not None:
            await pending.resolve(result)


class Acks:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()

    async def __call__(self, answer: dict[str, Any]) -> None:
        self.sent.append(answer)
        self.arrived.set()


def request() -> Request:
    return Request("s1", "replies", "dummy", "echo", dict(ACTIVITY), correlation_id="m1")


def result(req: Request, activity: dict[str, Any], error: str | None = None) -> Result:
    return Result(req.activity_id, "s1", "replies", "dummy", "echo", activity, error=error)


async def submitted(
    within: float = 60.0, fail: bool = False
) -> tuple[Bridge, RequestTracker, Session, Acks, Request, dict[str, Any] | None]:
    bridge = Bridge(fail=fail)
    tracker = RequestTracker(bridge, GatewayMetrics(), within)
    session = Session("s1", "127.0.0.1")
    session.inflight = 1  # the slot the handler took at admission
    acks = Acks()
    req = request()
    refusal = await tracker.submit(session, req, "s1", dict(ACTIVITY), "g3", acks)
    return bridge, tracker, session, acks, req, refusal


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_the_result_answers_once() -> None:
    bridge, _tracker, session, acks, req, refusal = await submitted()
    assert refusal is None
    assert session.inflight == 1 and session.requests and req.activity_id in bridge.pending
    answered = result(req, {**ACTIVITY, "actor": {"id": "dummy"}})
    await bridge.reply(answered)
    await bridge.reply(answered)
    assert acks.sent == [{**ACTIVITY, "actor": {"id": "dummy"}}]
    assert session.inflight == 0 and not session.requests and not bridge.pending
    assert bridge.delivery is not None
    bridge.delivery.set_exception(DeliveryError("late"))  # settles after the answer
    await settle()
    assert len(acks.sent) == 1


async def test_a_result_with_an_error_carries_it() -> None:
    bridge, _, _, acks, req, _ = await submitted()
    await bridge.reply(result(req, dict(ACTIVITY), error="Error: boom"))
    assert acks.sent == [{**ACTIVITY, "error": "Error: boom"}]


async def test_the_timeout_answers_and_a_late_result_is_ignored() -> None:
    bridge, _tracker, session, acks, req, _ = await submitted(within=0.01)
    pending_requests = session.requests
    await asyncio.wait_for(acks.arrived.wait(), 10)
    assert acks.sent == [{**ACTIVITY, "error": "Error: request timed out after 0.01 seconds"}]
    assert session.inflight == 0 and not bridge.pending
    late = result(req, dict(ACTIVITY))
    await bridge.reply(late)  # no longer in the bridge's map
    (pending,) = pending_requests
    await pending.resolve(late)  # nor answerable if it were
    assert len(acks.sent) == 1


async def test_a_failed_delivery_answers_once() -> None:
    bridge, tracker, session, acks, req, _ = await submitted()
    assert bridge.delivery is not None
    bridge.delivery.set_exception(DeliveryError("lost"))
    await settle()
    await tracker.close()
    assert acks.sent == [{**ACTIVITY, "error": NOT_QUEUED}]
    assert session.inflight == 0 and not bridge.pending
    await bridge.reply(result(req, dict(ACTIVITY)))
    assert len(acks.sent) == 1


async def test_a_produce_that_fails_is_refused_now() -> None:
    _bridge, _, session, acks, _, refusal = await submitted(fail=True)
    assert refusal == {**ACTIVITY, "error": NOT_QUEUED}
    assert acks.sent == [] and session.inflight == 0 and not session.requests


async def test_the_end_of_the_session_answers_nothing() -> None:
    bridge, _, session, acks, req, _ = await submitted(within=0.01)
    for pending in session.requests:
        pending.drop()
    assert session.inflight == 0 and not bridge.pending
    await asyncio.sleep(0.05)  # past the timeout: the timer was cancelled
    await bridge.reply(result(req, dict(ACTIVITY)))
    assert acks.sent == []


async def test_an_ack_to_a_closed_connection_is_dropped() -> None:
    async def closed(answer: dict[str, Any]) -> None:
        raise ConnectionError("closed")

    await send_answer(closed, {"ok": True})
    await send_answer(None, {"ok": True})


async def test_g2_answers_keep_their_shape() -> None:
    bridge = Bridge()
    tracker = RequestTracker(bridge, GatewayMetrics(), 60)
    session = Session("s1", "127.0.0.1")
    session.inflight = 1
    acks = Acks()
    payload = {"context": "dummy", "type": "fail", "actor": "a", "object": "x"}
    req = request()
    assert await tracker.submit(session, req, "s1", payload, "g2", acks) is None
    await bridge.reply(result(req, dict(ACTIVITY), error="Error: x"))
    assert acks.sent == [{"context": "error", "error": "Error: x", "content": payload}]


async def test_the_ack_hook_runs_after_the_ack_went_out() -> None:
    """Connection state recovery tells the client the result's position after its ack: a
    position sent first would cover a result whose ack a dying gateway never sent."""
    bridge, tracker, session, acks, req, _ = await submitted()
    order: list[str] = []

    async def after_ack(who: Session) -> None:
        assert who is session
        order.append(f"hook after {len(acks.sent)} ack(s)")

    tracker.on_acked = after_ack
    await bridge.reply(result(req, dict(ACTIVITY)))
    await bridge.reply(result(req, dict(ACTIVITY)))  # a duplicate: no second ack, no hook
    assert order == ["hook after 1 ack(s)"]
