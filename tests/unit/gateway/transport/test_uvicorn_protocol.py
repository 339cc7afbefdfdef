"""gateway/transport/uvicorn_protocol.py through real uvicorn, engine.io and socket.io, with a
real websocket client on 127.0.0.1: what the gateway relies on from its websocket server."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
import uvicorn
import websockets.asyncio.client

from gateway.server import uvicorn_config
from gateway.settings import GatewaySettings
from gateway.socket_handlers import client_address
from gateway.transport.uvicorn_protocol import Flag, LeanWebSocketProtocol, ReceiveQueue
from tests.unit.gateway.transport.harness import (
    WAIT,
    RawPeer,
    eventually,
    free_port,
    lean_server,
    serving,
)


def _echoing(**kwargs: Any) -> Any:
    sio = lean_server(**kwargs)

    async def echo(sid: str, *args: Any) -> Any:
        return args

    sio.on("echo", echo)
    return sio


def _ack(frame: str | bytes, ack_id: int, binary: bool = False) -> list[Any]:
    assert isinstance(frame, str)
    prefix = f"461-{ack_id}" if binary else f"43{ack_id}"
    assert frame.startswith(prefix), frame
    answer: list[Any] = json.loads(frame[len(prefix) :])
    return answer


async def test_text_and_binary_frames_go_both_ways() -> None:
    async with serving(_echoing()) as served, RawPeer.connected(served) as peer:
        await peer.emit("echo", {"text": "héllo"}, [1, 2], ack=7)
        assert _ack(await peer.frame(), 7) == [{"text": "héllo"}, [1, 2]]
        # a binary event: its text header, then the attachment as a binary frame
        blob = bytes(range(256)) * 40
        await peer.ws.send('451-3["echo",{"_placeholder":true,"num":0}]')
        await peer.ws.send(blob)
        assert _ack(await peer.frame(), 3, binary=True) == [{"_placeholder": True, "num": 0}]
        assert await peer.frame() == blob


async def test_the_connect_handler_sees_client_address_query_and_headers() -> None:
    sio = _echoing(cors_allowed_origins=["http://127.0.0.1"])
    seen: list[dict[str, Any]] = []

    async def connect(sid: str, environ: dict[str, Any], auth: object = None) -> None:
        seen.append(
            {
                "address": client_address(environ),
                "query": environ["QUERY_STRING"],
                "scope_query": environ["asgi.scope"]["query_string"],
                "header": environ.get("HTTP_X_SOCKETHUB_TEST"),
                "origin": environ.get("HTTP_ORIGIN"),
            }
        )

    sio.on("connect", connect)
    async with (
        serving(sio) as served,
        RawPeer.connected(
            served,
            query="&token=a%20b",
            additional_headers={"X-Sockethub-Test": "yes"},
            origin="http://127.0.0.1",  # type: ignore[arg-type]
        ) as peer,
    ):
        assert seen == [
            {
                "address": "127.0.0.1",
                "query": "EIO=4&transport=websocket&token=a%20b",
                "scope_query": b"EIO=4&transport=websocket&token=a%20b",
                "header": "yes",
                "origin": "http://127.0.0.1",
            }
        ]
        # after the handshake, and after some traffic, the environ still has them
        await peer.emit("echo", 1, ack=1)
        _ack(await peer.frame(), 1)
        environ = sio.get_environ(peer.sid)
        assert environ["HTTP_X_SOCKETHUB_TEST"] == "yes"
        assert client_address(environ) == "127.0.0.1"


async def test_the_lean_protocol_serves_and_lets_the_handshake_go() -> None:
    sio = _echoing()
    sends: list[Any] = []

    async def connect(sid: str, environ: dict[str, Any], auth: object = None) -> None:
        sends.append(environ["asgi.send"])

    sio.on("connect", connect)
    async with serving(sio) as served, RawPeer.connected(served) as peer:
        protocol = sends[0].__self__
        assert type(protocol) is LeanWebSocketProtocol
        assert isinstance(protocol.queue, ReceiveQueue)
        assert isinstance(protocol.writable, Flag)
        await peer.emit("echo", "x", ack=2)
        assert _ack(await peer.frame(), 2) == ["x"]
        assert protocol.request is None and protocol.response is None
        assert protocol.scope["headers"] == []


async def test_a_slow_reader_gets_every_message_in_order() -> None:
    """The client stops reading: the server's socket buffers fill, uvicorn pauses the
    writer, engine.io's queue holds the rest; all of it arrives, in order, once it reads."""
    sio = lean_server()
    sends: list[Any] = []

    async def connect(sid: str, environ: dict[str, Any], auth: object = None) -> None:
        sends.append(environ["asgi.send"])

    sio.on("connect", connect)
    count, payload = 3000, "p" * 8192
    async with (
        serving(sio) as served,
        RawPeer.connected(served, receive_buffer=32768, max_queue=4) as peer,
    ):
        protocol = sends[0].__self__
        (eio_socket,) = sio.eio.sockets.values()

        async def flood() -> None:
            for i in range(count):
                await sio.emit("n", [i, payload], to=peer.sid)

        flooding = asyncio.ensure_future(flood())
        # the peer reads nothing: the writer is paused with packets still queued
        await eventually(
            lambda: not protocol.writable.is_set() and eio_socket.queue.qsize() > 0,
            "uvicorn paused the writer while engine.io's queue held packets",
        )
        await asyncio.wait_for(flooding, WAIT)
        received = []
        for _ in range(count):
            frame = await peer.frame()
            assert isinstance(frame, str) and frame.startswith("42"), frame[:20]
            event, (i, data) = json.loads(frame[2:])
            assert event == "n" and data == payload
            received.append(i)
        assert received == list(range(count))
        await eventually(lambda: eio_socket.queue.qsize() == 0, "the queue drained")
        assert protocol.writable.is_set()


@pytest.mark.parametrize("how", ["close", "abort"])
async def test_a_client_going_away_frees_the_connection(how: str) -> None:
    sio = _echoing()
    reasons: list[object] = []

    async def disconnect(sid: str, reason: object = None) -> None:
        reasons.append(reason)

    sio.on("disconnect", disconnect)
    async with serving(sio) as served:
        state = served.server.server_state
        async with RawPeer.connected(served) as peer:
            await peer.emit("echo", 1, ack=1)
            _ack(await peer.frame(), 1)
            assert len(sio.eio.sockets) == 1 and len(state.connections) == 1
            if how == "abort":
                peer.ws.transport.abort()
        await eventually(lambda: reasons != [], "the disconnect handler ran")
        await eventually(lambda: not sio.eio.sockets, "engine.io forgot the socket")
        await eventually(lambda: not state.connections, "uvicorn forgot the connection")
        await eventually(lambda: not state.tasks, "the connection's ASGI task ended")
        assert reasons == [sio.reason.TRANSPORT_CLOSE]
        assert not sio.manager.is_connected(peer.sid, "/")


# -- the gateway's uvicorn settings --------------------------------------------------


def test_the_gateway_serves_with_the_lean_protocol() -> None:
    settings = GatewaySettings(secret="s" * 32, max_payload=5000)
    config = uvicorn_config(settings)
    assert config.ws is LeanWebSocketProtocol
    assert config.ws_max_size == 5000
    assert config.lifespan == "on"
    assert config.ws_ping_interval is None, "engine.io's heartbeat is the only one"


def test_websocket_compression_is_a_setting_and_off_by_default() -> None:
    assert uvicorn_config(GatewaySettings(secret="s" * 32)).ws_per_message_deflate is False
    on = GatewaySettings(secret="s" * 32, ws_compression=True)
    assert uvicorn_config(on).ws_per_message_deflate is True


@pytest.mark.parametrize("compression", [False, True])
async def test_the_gateway_negotiates_permessage_deflate_only_when_configured(
    compression: bool,
) -> None:
    port = free_port()
    settings = GatewaySettings(
        secret="s" * 32, port=port, allowed_origins="*", ws_compression=compression
    )
    config = uvicorn_config(settings)
    config.host = "127.0.0.1"
    config.lifespan = "off"  # no Kafka here: only the websocket handshake is under test
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    async with asyncio.timeout(WAIT):
        while not server.started:  # noqa: ASYNC110 - uvicorn sets a plain flag
            await asyncio.sleep(0.01)
    try:
        url = f"ws://127.0.0.1:{port}/sockethub/?EIO=4&transport=websocket"
        async with websockets.asyncio.client.connect(url, compression="deflate") as ws:
            assert str(await ws.recv()).startswith("0{")  # engine.io OPEN
            offered = ws.response.headers.get("Sec-WebSocket-Extensions")
            assert (offered is not None and "permessage-deflate" in offered) is compression
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT)


# -- the structures on their own -------------------------------------------------------


async def test_receive_queue_hands_items_over_in_order() -> None:
    queue: ReceiveQueue[int] = ReceiveQueue()
    assert queue.empty()
    getter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait(1)
    queue.put_nowait(2)
    assert await getter == 1
    assert not queue.empty() and queue.qsize() == 1
    assert await queue.get() == 2
    assert queue.empty()


async def test_receive_queue_survives_a_cancelled_get() -> None:
    queue: ReceiveQueue[int] = ReceiveQueue()
    getter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    getter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await getter
    queue.put_nowait(7)
    assert await asyncio.wait_for(queue.get(), WAIT) == 7


async def test_flag_wakes_its_waiters() -> None:
    flag = Flag()
    assert not flag.is_set()
    waiter = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    flag.set()
    assert await waiter is True
    flag.clear()
    assert not flag.is_set()
    flag.set()
    assert await flag.wait() is True
