"""gateway/lean_connections.py: the lighter per-connection structures, and guards that fail
loudly when uvicorn or engine.io change the internals they stand in for."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import hashlib
import inspect
import socket
import textwrap
from collections.abc import AsyncIterator
from typing import Any

import engineio
import pytest
import socketio
import uvicorn
import websockets.asyncio.client
from engineio.async_socket import AsyncSocket
from uvicorn.protocols.websockets import websockets_sansio_impl
from websockets.server import ServerProtocol

from gateway.lean_connections import (
    Flag,
    LeanAsyncSocket,
    LeanEngineIOServer,
    LeanSockethubServer,
    LeanWebSocketProtocol,
    PacketQueue,
    ReadDeadline,
    ReceiveQueue,
)
from gateway.server import uvicorn_config
from gateway.settings import GatewaySettings

# -- guards: what the lean classes assume about the libraries --------------------------

REVIEWED = {
    # Library source the lean classes replace or rely on, as reviewed. A change here
    # means: read the new source, check gateway/lean_connections.py still matches it,
    # then update the hash.
    "AsyncSocket.poll": (AsyncSocket.poll, "01a7f5df"),
    "AsyncSocket.schedule_ping": (AsyncSocket.schedule_ping, "ce997339"),
    "AsyncSocket._send_ping": (AsyncSocket._send_ping, "af7d3018"),
    "AsyncSocket.send": (AsyncSocket.send, "e7de91d3"),
    "AsyncSocket._websocket_handler (read and write loops)": (
        AsyncSocket._websocket_handler,
        "3548a405",
    ),
    "AsyncServer._handle_connect": (engineio.AsyncServer._handle_connect, "57f46d81"),
    "WebSocketsSansIOProtocol.handle_connect": (
        websockets_sansio_impl.WebSocketsSansIOProtocol.handle_connect,
        "fa2597da",
    ),
    "websockets ServerProtocol.parse (keeps the handshake request)": (
        ServerProtocol.parse,
        "bca6787e",
    ),
    "WebSocketsSansIOProtocol.receive": (
        websockets_sansio_impl.WebSocketsSansIOProtocol.receive,
        "150d41c7",
    ),
}


def _digest(func: Any) -> str:
    return hashlib.sha256(textwrap.dedent(inspect.getsource(func)).encode()).hexdigest()[:8]


@pytest.mark.parametrize("name", sorted(REVIEWED))
def test_the_library_source_the_lean_classes_rely_on_is_unchanged(name: str) -> None:
    func, reviewed = REVIEWED[name]
    assert _digest(func) == reviewed, (
        f"{name} changed in the installed library: review gateway/lean_connections.py "
        "against it, then update REVIEWED in this test"
    )


def _attributes_used(cls: type, owner: str) -> set[str]:
    """Every ``self.<owner>.<attr>`` in the class's source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    used = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == owner
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "self"
        ):
            used.add(node.attr)
    return used


def test_uvicorn_uses_only_what_the_lean_queue_and_flag_provide() -> None:
    protocol = websockets_sansio_impl.WebSocketsSansIOProtocol
    assert _attributes_used(protocol, "queue") <= {"put_nowait", "get", "empty"}
    assert _attributes_used(protocol, "writable") <= {"set", "clear", "wait", "is_set"}


def test_uvicorn_reads_the_handshake_request_and_response_only_before_keepalive() -> None:
    source = inspect.getsource(websockets_sansio_impl.WebSocketsSansIOProtocol)
    tree = ast.parse(textwrap.dedent(source))
    readers = set()
    for func in ast.walk(tree):
        if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(func):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr in ("request", "response")
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "self"
                ):
                    readers.add(func.name)
    assert readers == {"handle_connect", "send"}
    send = inspect.getsource(websockets_sansio_impl.WebSocketsSansIOProtocol.send)
    # the last use of self.response in send() is the 101 response, right before keepalive
    assert send.rindex("self.response") < send.index("self.start_keepalive()")
    assert send.count("self.start_keepalive()") == 1


def test_engineio_uses_only_what_the_packet_queue_provides() -> None:
    provided = {"put", "put_nowait", "get", "get_nowait", "task_done", "join", "empty", "qsize"}
    for cls in (AsyncSocket, *AsyncSocket.__mro__[1:-1]):
        assert _attributes_used(cls, "queue") <= provided, cls


def test_the_lean_socket_adds_no_state_so_the_class_swap_is_sound() -> None:
    assert LeanAsyncSocket.__mro__[1] is AsyncSocket
    assert "__slots__" not in vars(LeanAsyncSocket)
    assert not hasattr(AsyncSocket, "__slots__")


# -- the structures themselves ------------------------------------------------------------


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
    assert await asyncio.wait_for(queue.get(), 1) == 7


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


async def test_packet_queue_behaves_as_an_unbounded_asyncio_queue() -> None:
    queue: PacketQueue[str] = PacketQueue()
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()
    getter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    await queue.put("a")
    queue.put_nowait("b")
    assert await getter == "a"
    assert queue.qsize() == 1
    assert queue.get_nowait() == "b"
    assert queue.empty()
    joined = asyncio.ensure_future(queue.join())
    await asyncio.sleep(0)
    assert not joined.done()
    queue.task_done()
    await asyncio.sleep(0)
    assert not joined.done()
    queue.task_done()
    await asyncio.wait_for(joined, 1)
    with pytest.raises(ValueError):
        queue.task_done()


async def test_packet_queue_get_can_be_cancelled_and_timed_out() -> None:
    queue: PacketQueue[str] = PacketQueue()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await queue.get()
    getter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    getter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await getter
    queue.put_nowait("x")
    assert await asyncio.wait_for(queue.get(), 1) == "x"


async def test_read_deadline_ends_only_a_read_that_outlasts_it() -> None:
    loop = asyncio.get_running_loop()
    ended: list[float] = []

    async def connection() -> None:
        deadline = ReadDeadline(0.1)
        try:
            await asyncio.sleep(0.3)  # handling a packet, not reading: never cancelled
            deadline.read_since = loop.time()
            deadline.reading = True
            try:
                await asyncio.sleep(5)  # a read that gets no packet
            except asyncio.CancelledError:
                assert deadline.expired
                ended.append(loop.time() - deadline.read_since)
        finally:
            deadline.cancel()

    await asyncio.wait_for(connection(), 3)
    assert len(ended) == 1 and 0.09 <= ended[0] < 2.0


# -- wired into the gateway ----------------------------------------------------------------


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
    port = _free_port()
    settings = GatewaySettings(
        secret="s" * 32, port=port, allowed_origins="*", ws_compression=compression
    )
    config = uvicorn_config(settings)
    config.lifespan = "off"  # no Kafka here: only the websocket handshake is under test
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
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
        await asyncio.wait_for(task, 10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def _serving(sio: socketio.AsyncServer) -> AsyncIterator[str]:
    port = _free_port()
    config = uvicorn.Config(
        socketio.ASGIApp(sio, socketio_path="sockethub"),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        ws=LeanWebSocketProtocol,
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn sets a plain flag
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def test_a_lean_connection_pings_acks_and_disconnects() -> None:
    sio = LeanSockethubServer(async_mode="asgi", ping_interval=0.2, ping_timeout=1)
    assert isinstance(sio.eio, LeanEngineIOServer)
    disconnected = asyncio.Event()
    environs: list[dict[str, Any]] = []

    async def connect(sid: str, environ: dict[str, Any], auth: object = None) -> None:
        environs.append(environ)

    async def echo(sid: str, data: object) -> object:
        return data

    async def disconnect(sid: str, reason: object = None) -> None:
        disconnected.set()

    sio.on("connect", connect, namespace="/sockethub")
    sio.on("echo", echo, namespace="/sockethub")
    sio.on("disconnect", disconnect, namespace="/sockethub")
    async with _serving(sio) as url:
        client = await _connected(url, ["websocket"])
        try:
            (eio_socket,) = sio.eio.sockets.values()
            assert type(eio_socket) is LeanAsyncSocket
            assert isinstance(eio_socket.queue, PacketQueue)
            protocol = environs[0]["asgi.send"].__self__
            assert type(protocol) is LeanWebSocketProtocol
            assert isinstance(protocol.queue, ReceiveQueue)
            assert protocol.request is None and protocol.response is None
            assert protocol.scope["headers"] == []
            assert environs[0]["HTTP_UPGRADE"].lower() == "websocket"
            assert environs[0]["asgi.scope"]["client"][0] == "127.0.0.1"
            # several ping intervals: the client answers every ping and stays connected
            await asyncio.sleep(1.0)
            assert client.connected
            assert eio_socket.last_ping is None or eio_socket.last_ping > 0
            ack = await client.call("echo", {"hello": "world"}, namespace="/sockethub", timeout=5)
            assert ack == {"hello": "world"}
        finally:
            await client.disconnect()
        await asyncio.wait_for(disconnected.wait(), 5)


async def test_a_connection_upgraded_from_long_polling_keeps_engineio_handshake() -> None:
    sio = LeanSockethubServer(async_mode="asgi", ping_interval=0.2, ping_timeout=1)

    async def echo(sid: str, data: object) -> object:
        return data

    sio.on("echo", echo, namespace="/sockethub")
    async with _serving(sio) as url:
        client = await _connected(url, ["polling", "websocket"])
        try:
            for _ in range(100):  # the upgrade follows the polling handshake
                if client.eio.current_transport == "websocket":
                    break
                await asyncio.sleep(0.05)
            assert client.eio.current_transport == "websocket"
            await asyncio.sleep(0.6)  # a few ping intervals over the upgraded socket
            ack = await client.call("echo", [1, "two"], namespace="/sockethub", timeout=5)
            assert ack == [1, "two"]
        finally:
            await client.disconnect()


async def test_a_silent_client_is_dropped_after_the_ping_timeout() -> None:
    sio = LeanSockethubServer(async_mode="asgi", ping_interval=0.2, ping_timeout=0.3)
    disconnected = asyncio.Event()

    async def disconnect(sid: str, reason: object = None) -> None:
        disconnected.set()

    sio.on("disconnect", disconnect, namespace="/sockethub")
    async with _serving(sio) as url:
        client = await _connected(url, ["websocket"])
        try:
            # the client stops answering pings
            client.eio._receive_packet = _ignore_pings(client.eio._receive_packet)
            await asyncio.wait_for(disconnected.wait(), 5)
        finally:
            await client.disconnect()


async def _connected(url: str, transports: list[str]) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(
        url, socketio_path="sockethub", transports=transports, namespaces=["/sockethub"]
    )
    return client


def _ignore_pings(receive: Any) -> Any:
    async def receive_packet(pkt: Any) -> None:
        if pkt.packet_type == engineio.packet.PING:
            return
        await receive(pkt)

    return receive_packet
