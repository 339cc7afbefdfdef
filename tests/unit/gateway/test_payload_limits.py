"""Per-session budgets and the depth cap (issue 21, items 2 and 7): each refusal is an
error ack that names its limit, decided before any recursive work on the payload.

The packet layer is checked on its own, the session budgets through the handlers and
their in-memory fakes, and the whole path (frame size, decoding, handler, ack) through a
real server on 127.0.0.1 fed raw frames."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import socketio

from gateway.app import packet_limits
from gateway.metrics import GatewayMetrics
from gateway.packets import PacketLimits, Refused, SockethubPacket
from gateway.settings import GatewaySettings
from gateway.socket_handlers import ProtocolHandlers
from gateway.transport.socketio_server import SockethubServer
from schemas.platform_registry import PlatformRegistry
from tests.unit.gateway.test_socket_handlers import Bridge, Gateway, Store, echo
from tests.unit.gateway.transport.harness import WAIT, socketio_client
from tests.unit.gateway.transport.test_socketio_server import until

"""Bound for anything a test waits for: a loaded 2-core machine is slow."""
TOO_DEEP = "Error: payload nested deeper than 64 levels (SOCKETHUB_MAX_DEPTH)"
OBJECT_TOO_LARGE = "Error: activity-object larger than 16384 bytes (SOCKETHUB_MAX_OBJECT_BYTES)"

Packet = SockethubPacket.limited(packet_limits(GatewaySettings()))


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def decode(text: str) -> Any:
    return Packet(encoded_packet=text).data


# -- the packet layer --------------------------------------------------------------------


def test_nesting_up_to_the_cap_is_read_as_before() -> None:
    text = '421["message",{"a":' + nested(31) + ',"f":1.5,"n":[NaN]}]'
    data = decode(text)
    assert data[0] == "message" and data[1]["f"] == 1.5 and data[1]["a"] == json.loads(nested(31))
    assert Packet(encoded_packet=text).id == 21


def test_nesting_beyond_the_cap_is_refused_however_deep() -> None:
    for depth in (65, 600, 1100, 100_000):
        assert decode(f'42["message",{nested(depth)}]') == ["message", Refused(TOO_DEEP)]
    # What orjson leaves to the standard library (NaN) is capped the same way.
    for depth in (70, 5000):
        assert decode(f'42["credentials",[NaN,{nested(depth)}]]') == [
            "credentials",
            Refused(TOO_DEEP),
        ]


def test_an_oversized_activity_object_is_refused_without_being_parsed() -> None:
    # Not even valid JSON past the event name: a parse would raise.
    text = '42["activity-object",' + "[" * 20_000
    assert decode(text) == ["activity-object", Refused(OBJECT_TOO_LARGE)]
    fits = '42["activity-object",{"id":"a","type":"b","x":"' + "y" * 16_000 + '"}]'
    assert decode(fits)[1]["id"] == "a"
    # Events without a byte limit are left to the transport's max_payload.
    assert decode('42["message",{"x":"' + "y" * 20_000 + '"}]')[1]["x"] == "y" * 20_000


def test_the_limits_are_the_settings() -> None:
    settings = GatewaySettings(max_depth=40, max_object_bytes=1024)
    limited = SockethubPacket.limited(packet_limits(settings))
    assert limited(encoded_packet=f'42["x",{nested(40)}]').data == ["x", json.loads(nested(40))]
    deep = limited(encoded_packet=f'42["x",{nested(41)}]').data[1]
    assert deep == Refused("Error: payload nested deeper than 40 levels (SOCKETHUB_MAX_DEPTH)")
    big = limited(encoded_packet='42["activity-object","' + "x" * 1100 + '"]').data[1]
    assert "1024 bytes (SOCKETHUB_MAX_OBJECT_BYTES)" in big.reason
    assert PacketLimits(max_depth=3).event_bytes == {}


# -- the session budgets ---------------------------------------------------------------------


def g2_object(n: int, size: int) -> dict[str, Any]:
    obj = {"id": f"obj-{n}", "type": "person", "name": ""}
    obj["name"] = "x" * (size - len(json.dumps(obj, separators=(",", ":"))))
    return obj


async def test_activity_objects_are_capped_per_session() -> None:
    gw = Gateway()
    await gw.connect()
    await gw.connect("s2")
    held = [await gw.server.event("activity-object", "s1", g2_object(n, 16_000)) for n in range(16)]
    assert all(obj["id"] == f"obj-{n}" for n, obj in enumerate(held))
    refused = await gw.server.event("activity-object", "s1", g2_object(16, 16_000))
    assert refused == {
        "context": "error",
        "error": "Error: this session's activity-objects would exceed 262144 bytes "
        "(SOCKETHUB_MAX_SESSION_OBJECT_BYTES)",
        "content": None,
    }
    # Registering an id again replaces it: its old bytes are not counted twice.
    again = await gw.server.event("activity-object", "s1", g2_object(3, 16_000))
    assert again["id"] == "obj-3"
    # Another session has a budget of its own.
    assert (await gw.server.event("activity-object", "s2", g2_object(0, 16_000)))["id"] == "obj-0"
    session = gw.handlers.sessions.get("s1")
    assert session is not None and session.object_bytes == 16 * 16_000


async def test_an_activity_object_over_its_own_limit_is_refused() -> None:
    gw = Gateway(max_object_bytes=1024)
    await gw.connect()
    refused = await gw.server.event("activity-object", "s1", g2_object(0, 2000))
    assert refused["error"] == (
        "Error: activity-object larger than 1024 bytes (SOCKETHUB_MAX_OBJECT_BYTES)"
    )
    refused = await gw.server.event("activity-object", "s1", Refused(TOO_DEEP))
    assert refused == {"context": "error", "error": TOO_DEEP, "content": None}


async def test_message_bytes_in_flight_are_capped_per_session() -> None:
    # Each message is about 1.5 KB (measured as its compact JSON: the fake has no frame).
    gw = Gateway(max_inflight_bytes_per_session=5000)
    await gw.connect()
    acks: list[Any] = []
    for n in range(3):
        await gw.server.message("s1", echo("x" * 1200, id=f"m{n}"), acks)
    assert acks == [] and len(gw.bridge.requests()) == 3
    refused = echo("x" * 1200, id="m3")
    await gw.server.message("s1", refused, acks)
    assert acks == [
        {
            **refused,
            "error": "Error: too many bytes in flight for this session "
            "(limit 5000, SOCKETHUB_MAX_INFLIGHT_BYTES_PER_SESSION)",
        }
    ]
    await gw.bridge.answer(gw.bridge.requests()[0])  # an answer frees its bytes
    await gw.server.message("s1", echo("x" * 1200, id="m4"), acks)
    assert len(gw.bridge.requests()) == 4
    session = gw.handlers.sessions.get("s1")
    assert session is not None and session.inflight == 3
    for request in gw.bridge.requests()[1:]:
        await gw.bridge.answer(request)
    assert session.inflight == 0 and session.inflight_bytes == 0


async def test_refused_payloads_of_every_event_get_error_acks() -> None:
    gw = Gateway()
    await gw.connect()
    acks: list[Any] = []
    await gw.server.message("s1", Refused(TOO_DEEP), acks)
    assert acks == [{"error": TOO_DEEP}]
    assert await gw.server.event("credentials", "s1", Refused(TOO_DEEP)) == {"error": TOO_DEEP}
    assert await gw.server.event("schemas", "s1", Refused(TOO_DEEP)) == {"error": TOO_DEEP}
    session = gw.handlers.sessions.get("s1")
    assert session is not None and session.inflight == 0 and gw.bridge.requests() == []


# -- the whole path, through a real server -------------------------------------------------


class Served:
    """The protocol handlers on a real SockethubServer, recording the ACK frames it sends."""

    def __init__(self) -> None:
        settings = GatewaySettings()
        self.sio = SockethubServer(
            async_mode="asgi", serializer=SockethubPacket.limited(packet_limits(settings))
        )
        self.handlers = ProtocolHandlers(
            self.sio,
            settings,
            PlatformRegistry(settings.platform_ids()),
            Bridge(settings),  # type: ignore[arg-type]
            Store(),  # type: ignore[arg-type]
            GatewayMetrics(),
        )
        self.acks: dict[int, list[Any]] = {}
        send = self.sio.eio.send

        async def recording_send(eio_sid: str, data: Any) -> None:
            pkt = socketio.packet.Packet(encoded_packet=data)
            if pkt.packet_type == socketio.packet.ACK:
                self.acks[pkt.id] = pkt.data
            await send(eio_sid, data)

        self.sio.eio.send = recording_send


@contextlib.asynccontextmanager
async def served() -> AsyncIterator[tuple[Served, socketio.AsyncClient]]:
    gateway = Served()
    async with socketio_client(gateway.sio) as client:
        await until(lambda: len(gateway.handlers.sessions) == 1)
        yield gateway, client


async def test_a_600_deep_payload_gets_an_error_ack_on_every_event() -> None:
    deep = nested(600)  # about 1.2 KB: far under max_payload
    async with served() as (gateway, client):
        for ack_id, event in enumerate(("message", "credentials", "activity-object", "schemas")):
            await client.eio.send(f'2{ack_id}["{event}",{{"actor":{deep}}}]')
        await until(lambda: len(gateway.acks) == 4)
        assert gateway.acks[0] == [{"error": TOO_DEEP}]
        assert gateway.acks[1] == [{"error": TOO_DEEP}]
        assert gateway.acks[2] == [{"context": "error", "error": TOO_DEEP, "content": None}]
        assert gateway.acks[3] == [{"error": TOO_DEEP}]
        assert client.connected


async def test_an_oversized_activity_object_frame_gets_an_error_ack() -> None:
    frame = '21["activity-object",{"id":"big","type":"x","l":[' + "[]," * 80_000 + "[]]}]"
    async with served() as (gateway, client):
        await client.eio.send(frame)
        await until(lambda: 1 in gateway.acks)
        assert gateway.acks[1] == [{"context": "error", "error": OBJECT_TOO_LARGE, "content": None}]
        ok = await client.call("activity-object", {"id": "small", "type": "x"}, timeout=WAIT)
        assert ok == {"id": "small", "type": "x"}
        session = next(iter(gateway.handlers.sessions._by_sid.values()))
        assert session.lookup_object("big") is None
        # The frame's length, its Socket.IO header (type and ack id) included.
        assert 0 < session.object_bytes - len('["activity-object",{"id":"small","type":"x"}]') < 8
