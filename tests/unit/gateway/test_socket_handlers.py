"""ProtocolHandlers against in-process fakes of the Socket.IO server, the Kafka bridge and
the credential store: admission, limits, every way a message is answered, order within a
session, and the end of a session."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from structlog.testing import capture_logs

from gateway.address_cap import AddressCap, Admission
from gateway.kafka_bridge import DeliveryError
from gateway.limits import RATE_LIMITED, TOO_MANY_CONNECTIONS
from gateway.metrics import GatewayMetrics
from gateway.requests import NOT_QUEUED, PendingRequest
from gateway.settings import GatewaySettings
from gateway.socket_handlers import ProtocolHandlers
from schemas.envelopes import PlatformEvent, Record, Request, RequestKind, Result
from schemas.platform_registry import PlatformRegistry, canonical_context
from schemas.topics import TopicLayout

WAIT = 10.0
"""Bound for what a test waits for; generous for a loaded machine."""
ADDRESS = "127.0.0.1"
ACTOR = {"id": "jimmy@dummy", "type": "person", "name": "Jimmy"}


def echo(content: str = "hi", **extra: Any) -> dict[str, Any]:
    return {
        "@context": canonical_context("dummy"),
        "type": "echo",
        "actor": dict(ACTOR),
        "object": {"type": "message", "content": content},
        **extra,
    }


def credentials() -> dict[str, Any]:
    return {
        "@context": canonical_context("dummy"),
        "type": "credentials",
        "actor": dict(ACTOR),
        "object": {"type": "credentials", "token": "s3cret"},
    }


class Server:
    """The parts of SockethubServer the handlers use; ``message`` runs as the adapter runs
    it: now while the handlers say the session is ready, otherwise in a task."""

    not_handled = object()

    def __init__(self) -> None:
        self.handlers: dict[str, Callable[..., Awaitable[Any]]] = {}
        self.emitted: list[tuple[str, str, Any]] = []
        self.tasks: list[asyncio.Task[Any]] = []
        self.message_tasks = 0

    def on(self, event: str, handler: Callable[..., Awaitable[Any]]) -> None:
        self.handlers[event] = handler

    def on_slow_reader(self, handler: Callable[[str, int], None]) -> None:
        self.slow_reader = handler

    def on_direct(self, event: str, handler: Any, ready: Callable[[str], bool]) -> None:
        self.direct = handler
        self.ready = ready

    async def emit(self, event: str, data: Any, to: str) -> None:
        self.emitted.append((to, event, data))

    async def emit_now(self, sid: str, event: str, *args: Any) -> None:
        self.emitted.append((sid, event, args[0] if len(args) == 1 else args))

    async def message(self, sid: str, payload: Any, acks: list[Any] | None) -> None:
        reply = None if acks is None else _collect(acks)
        if self.ready(sid):
            await self.direct(sid, [payload], reply)
        else:
            self.message_tasks += 1
            self.tasks.append(asyncio.ensure_future(self.direct(sid, [payload], reply)))

    def event(self, event: str, sid: str, payload: Any) -> asyncio.Task[Any]:
        """A task-path event, as python-socketio runs it (its return value is the ack)."""
        task = asyncio.ensure_future(self.handlers[event](sid, payload))
        self.tasks.append(task)
        return task


def _collect(acks: list[Any]) -> Callable[[Any], Awaitable[None]]:
    async def reply(answer: Any) -> None:
        acks.append(answer)

    return reply


class Bridge:
    """The bridge's pending map and producer, in memory; the test plays the runners."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.layout = TopicLayout(settings)
        self.reply_topic = self.layout.replies("gw")
        self.pending: dict[str, PendingRequest] = {}
        self.produced: list[tuple[str, Record, str]] = []
        self.deliveries: dict[str, asyncio.Future[object]] = {}
        self.refuse = False
        self.log: list[str] = []
        self.on_event_handler: Callable[[PlatformEvent], Awaitable[None]] | None = None

    def on_event(self, handler: Callable[[PlatformEvent], Awaitable[None]]) -> None:
        self.on_event_handler = handler

    async def produce(self, topic: str, record: Record, key: str) -> asyncio.Future[object]:
        await asyncio.sleep(0)
        if self.refuse:
            raise DeliveryError("broker gone")
        self.produced.append((topic, record, key))
        self.log.append(f"produce {getattr(record, 'verb', '?')}")
        return asyncio.get_running_loop().create_future()

    async def submit(self, pending: PendingRequest, key: str) -> None:
        request = pending.request
        self.pending[request.activity_id] = pending
        try:
            delivery = await self.produce(self.layout.requests(request.platform), request, key)
        except BaseException:
            self.pending.pop(request.activity_id, None)
            raise
        self.deliveries[request.activity_id] = delivery
        delivery.add_done_callback(pending.delivery_done)

    def forget(self, activity_id: str) -> bool:
        return self.pending.pop(activity_id, None) is not None

    def requests(self) -> list[Request]:
        return [
            r
            for _, r, _ in self.produced
            if isinstance(r, Request) and r.kind is RequestKind.ACTIVITY
        ]

    async def answer(self, request: Request, error: str | None = None) -> None:
        """What the reply reader does with a runner's result."""
        activity = {**request.activity, "actor": {"id": "dummy", "type": "platform"}}
        result = Result(
            request.activity_id,
            request.session_id,
            self.reply_topic,
            "dummy",
            "echo",
            activity,
            error=error,
        )
        pending = self.pending.pop(request.activity_id, None)
        if pending is not None:
            await pending.resolve(result)


class Store:
    def __init__(self) -> None:
        self.gate: asyncio.Event | None = None
        self.log: list[str] = []
        self.stored: list[tuple[str, str, str]] = []
        self.ended: list[str] = []

    async def put(self, sid: str, platform: str, actor: str, activity: object) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.stored.append((sid, platform, actor))
        self.log.append("store credentials")

    async def end_session(self, sid: str, grace: int, keep_platforms: object) -> None:
        self.ended.append(sid)


class BlockedElsewhere(AddressCap):
    """The cap as Redis answers when another gateway rate-blocked the address."""

    async def acquire(self, address: str) -> Admission:
        admission = await super().acquire(address)
        return Admission(admission.allowed, blocked_for=30.0)


class Gateway:
    def __init__(self, cap: AddressCap | None = None, **settings: Any) -> None:
        self.settings = GatewaySettings(**settings)
        self.server = Server()
        self.bridge = Bridge(self.settings)
        self.store = Store()
        self.metrics = GatewayMetrics(self.settings.gateway_id)
        self.handlers = ProtocolHandlers(
            self.server,  # type: ignore[arg-type]
            self.settings,
            PlatformRegistry(self.settings.platform_ids()),
            self.bridge,  # type: ignore[arg-type]
            self.store,  # type: ignore[arg-type]
            self.metrics,
            cap,
        )

    async def connect(
        self, sid: str = "s1", address: str = ADDRESS, forwarded_for: str | None = None
    ) -> bool:
        headers = [] if forwarded_for is None else [(b"x-forwarded-for", forwarded_for.encode())]
        environ = {"asgi.scope": {"client": (address, 4000), "headers": headers}}
        return await self.server.handlers["connect"](sid, environ)

    async def settle(self) -> None:
        for _ in range(20):
            await asyncio.sleep(0)
        if self.server.tasks:
            await asyncio.wait_for(asyncio.gather(*self.server.tasks), WAIT)

    def count(self, direction: str, outcome: str, platform: str = "dummy") -> float:
        value = self.metrics.registry.get_sample_value(
            "sockethub_gateway_activities_total",
            {"platform": platform, "direction": direction, "outcome": outcome},
        )
        return value or 0.0


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not check():  # noqa: ASYNC110 - the fakes keep plain lists
            await asyncio.sleep(0.005)


# -- admission ---------------------------------------------------------------------------


async def test_the_connection_cap_refuses_with_an_error_event() -> None:
    gw = Gateway(max_connections_per_ip=1)
    assert await gw.connect("s1")
    assert not await gw.connect("s2")
    assert [(to, event, data["summary"]) for to, event, data in gw.server.emitted] == [
        ("s2", "error", TOO_MANY_CONNECTIONS)
    ]
    assert await gw.connect("s3", "127.0.0.2")
    await gw.server.handlers["disconnect"]("s1")
    assert await gw.connect("s4")


async def test_sessions_are_counted_per_gateway() -> None:
    gw = Gateway(gateway_id="gw-7", max_connections_per_ip=1)

    def sessions() -> float | None:
        return gw.metrics.registry.get_sample_value(
            "sockethub_gateway_sessions", {"gateway": "gw-7"}
        )

    assert sessions() == 0
    assert await gw.connect("s1")
    assert not await gw.connect("s2")  # refused by the cap: never a session
    assert await gw.connect("s3", "127.0.0.2")
    assert sessions() == 2
    await gw.server.handlers["disconnect"]("s1")
    assert sessions() == 1


async def test_behind_a_trusted_proxy_the_cap_counts_the_forwarded_client() -> None:
    gw = Gateway(max_connections_per_ip=1, trusted_proxies="127.0.0.1/32")
    assert await gw.connect("s1", forwarded_for="127.0.0.2")
    assert await gw.connect("s2", forwarded_for="127.0.0.3")
    assert not await gw.connect("s3", forwarded_for="127.0.0.2")
    # From an untrusted peer the header is the client's own text: the peer is counted.
    assert await gw.connect("s4", "127.0.0.9", forwarded_for="127.0.0.5")
    assert not await gw.connect("s5", "127.0.0.9", forwarded_for="127.0.0.6")
    assert gw.handlers.sessions.get("s2").address == "127.0.0.3"  # type: ignore[union-attr]


async def test_a_rate_block_outlives_a_reconnect_from_the_same_address() -> None:
    gw = Gateway(rate_limit=2, rate_block_seconds=60)
    await gw.connect("s1")
    for n in range(3):
        await gw.server.message("s1", echo(str(n)), [])
    await gw.server.handlers["disconnect"]("s1")
    await gw.connect("s2")
    await gw.server.message("s2", echo("again"), [])
    await gw.connect("s3", "127.0.0.2")
    await gw.server.message("s3", echo("other"), [])
    await gw.settle()
    assert len(gw.bridge.requests()) == 3  # two of s1's, s3's
    errors = [(to, data["summary"]) for to, event, data in gw.server.emitted if event == "error"]
    assert errors == [("s1", RATE_LIMITED), ("s2", RATE_LIMITED)]


async def test_a_rate_block_from_another_gateway_holds_for_a_new_session() -> None:
    gw = Gateway(cap=BlockedElsewhere(20))
    await gw.connect("s1")
    await gw.server.message("s1", echo("blocked"), [])
    await gw.settle()
    assert gw.bridge.requests() == []
    assert [(to, data["summary"]) for to, event, data in gw.server.emitted] == [
        ("s1", RATE_LIMITED)
    ]


async def test_the_rate_limit_drops_events_and_announces_the_block_once() -> None:
    gw = Gateway(rate_limit=2, rate_block_seconds=60)
    await gw.connect()
    acks: list[Any] = []
    for n in range(4):
        await gw.server.message("s1", echo(str(n)), acks)
    assert len(gw.bridge.requests()) == 2
    errors = [data for to, event, data in gw.server.emitted if event == "error"]
    assert [e["summary"] for e in errors] == [RATE_LIMITED]
    refused = await gw.server.event("schemas", "s1", None)
    assert refused is gw.server.not_handled


async def test_beyond_the_inflight_limit_a_message_is_answered_at_once() -> None:
    gw = Gateway(max_inflight_per_session=1)
    await gw.connect()
    first: list[Any] = []
    second: list[Any] = []
    await gw.server.message("s1", echo("one"), first)
    await gw.server.message("s1", echo("two"), second)
    assert first == [] and len(gw.bridge.requests()) == 1
    assert second == [
        {**echo("two"), "error": "Error: too many requests in flight for this session (limit 1)"}
    ]
    await gw.bridge.answer(gw.bridge.requests()[0])
    await gw.server.message("s1", echo("three"), second)
    assert len(first) == 1 and len(gw.bridge.requests()) == 2


async def test_an_invalid_activity_is_answered_with_its_error() -> None:
    gw = Gateway()
    await gw.connect()
    acks: list[Any] = []
    await gw.server.message("s1", {"type": "echo"}, acks)
    await gw.server.message("s1", "not an object", acks)
    assert [a["error"] for a in acks] == [
        "activity stream must contain an @context array.",
        "message received is not an object.",
    ]
    assert gw.bridge.requests() == [] and gw.handlers.sessions.get("s1").inflight == 0  # type: ignore[union-attr]
    assert gw.count("in", "invalid", "unknown") == 2


# -- the answers of a message ---------------------------------------------------------------


async def test_the_result_is_the_acknowledgement() -> None:
    gw = Gateway()
    await gw.connect()
    acks: list[Any] = []
    await gw.server.message("s1", echo("hi", id="m1"), acks)
    (request,) = gw.bridge.requests()
    assert request.correlation_id == "m1" and request.session_id == "s1"
    assert request.reply_route == gw.bridge.reply_topic
    await gw.bridge.answer(request)
    assert acks == [{**request.activity, "actor": {"id": "dummy", "type": "platform"}}]
    assert gw.count("in", "accepted") == 1 and gw.count("out", "ok") == 1
    assert gw.handlers.sessions.get("s1").inflight == 0  # type: ignore[union-attr]


async def test_a_failed_result_carries_its_error() -> None:
    gw = Gateway()
    await gw.connect()
    acks: list[Any] = []
    await gw.server.message("s1", echo("hi"), acks)
    await gw.bridge.answer(gw.bridge.requests()[0], error="Error: boom")
    assert acks[0]["error"] == "Error: boom" and gw.count("out", "error") == 1


async def test_an_unanswered_request_times_out() -> None:
    gw = Gateway(request_timeout=0.05)
    await gw.connect()
    acks: list[Any] = []
    await gw.server.message("s1", echo("hi"), acks)
    await until(lambda: bool(acks))
    assert acks == [{**echo("hi"), "error": "Error: request timed out after 0.05 seconds"}]
    await gw.bridge.answer(gw.bridge.requests()[0])  # too late: nobody waits for it
    assert len(acks) == 1 and gw.count("out", "timeout") == 1


async def test_a_failed_delivery_is_answered_once() -> None:
    gw = Gateway()
    await gw.connect()
    acks: list[Any] = []
    await gw.server.message("s1", echo("hi"), acks)
    (request,) = gw.bridge.requests()
    gw.bridge.deliveries[request.activity_id].set_exception(DeliveryError("lost"))
    await until(lambda: bool(acks))
    await gw.bridge.answer(request)
    assert acks == [{**echo("hi"), "error": NOT_QUEUED}]


async def test_a_produce_that_fails_is_answered_at_once() -> None:
    gw = Gateway()
    await gw.connect()
    gw.bridge.refuse = True
    acks: list[Any] = []
    await gw.server.message("s1", echo("hi"), acks)
    assert acks == [{**echo("hi"), "error": NOT_QUEUED}]
    assert gw.bridge.pending == {} and gw.count("in", "error") == 1


async def test_a_message_without_a_callback_is_carried_out() -> None:
    gw = Gateway()
    await gw.connect()
    await gw.server.message("s1", echo("hi"), None)
    await gw.bridge.answer(gw.bridge.requests()[0])
    assert gw.count("out", "ok") == 1


# -- order and the end of a session ---------------------------------------------------------


async def test_a_message_after_credentials_is_produced_after_they_are_stored() -> None:
    gw = Gateway()
    await gw.connect()
    gw.store.gate = asyncio.Event()
    cred_ack = gw.server.event("credentials", "s1", credentials())
    await asyncio.sleep(0)  # the credentials' task holds the session lock
    acks: list[Any] = []
    # Bounded: a message run in the reader here would wait for the lock forever.
    await asyncio.wait_for(gw.server.message("s1", echo("after"), acks), WAIT)
    await asyncio.wait_for(gw.server.message("s1", echo("later"), acks), WAIT)
    assert gw.server.message_tasks == 2 and gw.bridge.requests() == []
    gw.store.gate.set()
    await gw.settle()
    assert (await cred_ack)["type"] == "credentials"
    assert (
        gw.store.log + gw.bridge.log
        == ["store credentials", "produce credentials"] + ["produce echo"] * 2
    )
    order = [r.activity["object"]["content"] for r in gw.bridge.requests()]
    assert order == ["after", "later"]
    # Once the lock is free again, messages run where they arrive.
    await gw.server.message("s1", echo("now"), acks)
    assert gw.server.message_tasks == 2 and len(gw.bridge.requests()) == 3


async def test_a_disconnect_drops_pending_answers_and_closes_the_session() -> None:
    gw = Gateway(request_timeout=0.05)
    await gw.connect()
    acks: list[Any] = []
    await gw.server.message("s1", echo("hi"), acks)
    (request,) = gw.bridge.requests()
    await gw.server.handlers["disconnect"]("s1", "client disconnect")
    assert gw.bridge.pending == {}
    await gw.bridge.answer(request)
    await asyncio.sleep(0.1)  # past the request's timeout: its timer is gone too
    await gw.handlers.close()
    assert acks == []
    closed = [
        r
        for _, r, _ in gw.bridge.produced
        if getattr(r, "kind", None) is RequestKind.SESSION_CLOSED
    ]
    assert [(r.platform, r.session_id) for r in closed] == [("dummy", "s1")]  # type: ignore[attr-defined]
    assert gw.store.ended == ["s1"]


async def test_a_message_queued_behind_the_lock_does_nothing_once_the_session_ends() -> None:
    gw = Gateway()
    await gw.connect()
    gw.store.gate = asyncio.Event()
    gw.server.event("credentials", "s1", credentials())
    await asyncio.sleep(0)
    acks: list[Any] = []
    await gw.server.message("s1", echo("queued"), acks)
    await gw.server.handlers["disconnect"]("s1", "transport close")
    gw.store.gate.set()
    await gw.settle()
    await gw.handlers.close()
    assert gw.bridge.requests() == [] and acks == []


async def test_platform_events_go_to_live_sessions_only() -> None:
    gw = Gateway()
    await gw.connect()
    assert gw.bridge.on_event_handler is not None
    activity = {"type": "message", "actor": {"id": "irc"}, "object": {"content": "yo"}}
    await gw.bridge.on_event_handler(
        PlatformEvent("gone", gw.bridge.reply_topic, "dummy", "message", dict(activity))
    )
    assert gw.server.emitted == []
    await gw.bridge.on_event_handler(
        PlatformEvent(
            "s1", gw.bridge.reply_topic, "dummy", "message", dict(activity), error="Error: x"
        )
    )
    assert gw.server.emitted == [("s1", "message", {**activity, "error": "Error: x"})]


async def test_a_slow_reader_is_logged_with_its_session_and_the_limit_and_counted() -> None:
    gw = Gateway(max_outbound_bytes=1 << 20)
    await gw.connect("s1")
    with capture_logs() as logs:
        gw.server.slow_reader("s1", 1 << 20)
    assert [(e["event"], e["session_id"], e["limit"], e["setting"]) for e in logs] == [
        ("slow_reader", "s1", 1 << 20, "SOCKETHUB_MAX_OUTBOUND_BYTES")
    ]
    assert gw.metrics.registry.get_sample_value("sockethub_gateway_slow_readers_total") == 1.0
