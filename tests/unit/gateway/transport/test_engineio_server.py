"""gateway/transport/engineio_server.py through real uvicorn, engine.io and socket.io, with
real clients on 127.0.0.1: acks, the heartbeat, disconnects and the outgoing queue."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest
import socketio
from websockets.exceptions import ConnectionClosed

from gateway.transport.engineio_server import (
    LeanAsyncSocket,
    LeanEngineIOServer,
    PacketQueue,
    ReadDeadline,
)
from tests.unit.gateway.transport.harness import (
    PATH,
    WAIT,
    RawPeer,
    Served,
    eventually,
    lean_server,
    serving,
)


def _echoing(**kwargs: Any) -> Any:
    sio = lean_server(**kwargs)

    async def echo(sid: str, *args: Any) -> Any:
        return args[0] if len(args) == 1 else args

    sio.on("echo", echo)
    return sio


@contextlib.asynccontextmanager
async def _client(served: Served, transports: list[str]) -> Any:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(served.url, socketio_path=PATH, transports=transports, wait_timeout=WAIT)
    try:
        yield client
    finally:
        await client.disconnect()


async def test_a_websocket_connection_runs_on_the_lean_socket() -> None:
    sio = _echoing()
    assert isinstance(sio.eio, LeanEngineIOServer)
    async with serving(sio) as served, RawPeer.connected(served):
        (eio_socket,) = sio.eio.sockets.values()
        assert type(eio_socket) is LeanAsyncSocket
        assert isinstance(eio_socket.queue, PacketQueue)


async def test_acks_both_ways_with_text_and_binary_data() -> None:
    sio = _echoing()
    async with serving(sio) as served, _client(served, ["websocket"]) as client:
        assert await client.call("echo", {"a": [1, "two"]}, timeout=WAIT) == {"a": [1, "two"]}
        blob = bytes(range(256)) * 10
        assert await client.call("echo", {"blob": blob}, timeout=WAIT) == {"blob": blob}

        async def ask(data: Any) -> Any:
            return ["answer", data]

        client.on("ask", ask)
        (sid,) = (s for s, _ in sio.manager.get_participants("/", None))
        assert await sio.call("ask", b"\x00\x01", to=sid, timeout=WAIT) == ["answer", b"\x00\x01"]


async def test_pings_keep_an_idle_connection_alive() -> None:
    sio = _echoing(ping_interval=0.2, ping_timeout=0.5)
    disconnects: list[object] = []

    async def disconnect(sid: str, reason: object = None) -> None:
        disconnects.append(reason)

    sio.on("disconnect", disconnect)
    async with serving(sio) as served, RawPeer.connected(served) as peer:
        # many ping intervals, far past interval + timeout: the peer answers every ping
        # and sends nothing else
        async with asyncio.timeout(WAIT):
            while peer.pings < 8:
                with contextlib.suppress(TimeoutError):
                    await peer.frame(within=0.5)
        assert disconnects == [] and len(sio.eio.sockets) == 1
        await peer.emit("echo", "still here", ack=5)
        assert await peer.frame() == '435["still here"]'


async def test_a_silent_client_is_dropped_after_the_ping_timeout() -> None:
    interval, timeout = 0.3, 0.4
    sio = _echoing(ping_interval=interval, ping_timeout=timeout)
    disconnects: list[object] = []

    async def disconnect(sid: str, reason: object = None) -> None:
        disconnects.append(reason)

    sio.on("disconnect", disconnect)
    async with serving(sio) as served, RawPeer.connected(served) as peer:
        peer.answer_pings = False
        silent_since = time.monotonic()
        with pytest.raises(ConnectionClosed):
            while True:  # the server closes the websocket
                await peer.frame()
        waited = time.monotonic() - silent_since
        await eventually(lambda: disconnects != [], "the disconnect handler ran")
        assert peer.pings >= 1
        # not before the peer could have answered (a lower bound: a slow machine only
        # makes it later)
        assert waited >= interval + timeout * 0.9
        assert disconnects in ([sio.reason.PING_TIMEOUT], [sio.reason.TRANSPORT_CLOSE])
        await eventually(lambda: not sio.eio.sockets, "engine.io forgot the socket")
        await eventually(lambda: not served.server.server_state.connections, "uvicorn too")


async def test_a_server_side_disconnect_frees_the_connection() -> None:
    sio = _echoing()
    reasons: list[object] = []

    async def disconnect(sid: str, reason: object = None) -> None:
        reasons.append(reason)

    sio.on("disconnect", disconnect)
    async with serving(sio) as served, RawPeer.connected(served) as peer:
        (eio_sid,) = sio.eio.sockets
        await sio.disconnect(peer.sid)  # leaves the namespace: the connection stays
        assert await peer.frame() == "41"  # socket.io DISCONNECT
        assert reasons == [sio.reason.SERVER_DISCONNECT]
        await sio.eio.disconnect(eio_sid)  # the engine.io connection itself
        assert await peer.frame() == "1"  # engine.io CLOSE, which the client answers by
        await peer.ws.close()  # closing the websocket
        await eventually(lambda: not sio.eio.sockets, "engine.io forgot the socket")
        state = served.server.server_state
        await eventually(lambda: not state.connections and not state.tasks, "uvicorn too")
        assert not sio.manager.is_connected(peer.sid, "/")


async def test_the_outgoing_queue_keeps_order_across_bursts() -> None:
    """Events emitted in bursts, while the peer's acks and pings interleave, arrive in the
    order they were emitted, none lost, and the queue ends empty."""
    sio = _echoing(ping_interval=0.2, ping_timeout=5)
    async with serving(sio) as served, RawPeer.connected(served) as peer:
        (eio_socket,) = sio.eio.sockets.values()
        sent = 0
        for burst in range(20):
            for _ in range(50):
                await sio.emit("n", sent, to=peer.sid)
                sent += 1
            await peer.emit("echo", burst, ack=burst)
            await asyncio.sleep(0.01 * (burst % 3))
        got: list[int] = []
        acks: list[str] = []
        while len(got) < sent or len(acks) < 20:
            frame = await peer.frame()
            assert isinstance(frame, str)
            if frame.startswith('42["n",'):
                got.append(int(frame[len('42["n",') : -1]))
            else:
                acks.append(frame)
        assert got == list(range(sent))
        assert acks == [f"43{i}[{i}]" for i in range(20)]
        assert eio_socket.queue.qsize() == 0


async def test_a_connection_upgraded_from_long_polling_works() -> None:
    sio = _echoing(ping_interval=0.2, ping_timeout=1)
    async with serving(sio) as served, _client(served, ["polling", "websocket"]) as client:
        await eventually(lambda: client.eio.current_transport == "websocket", "the client upgraded")
        await asyncio.sleep(0.6)  # a few ping intervals over the upgraded socket
        assert await client.call("echo", [1, "two"], timeout=WAIT) == [1, "two"]


async def test_a_long_polling_connection_works() -> None:
    sio = _echoing(ping_interval=0.2, ping_timeout=1)
    async with serving(sio) as served, _client(served, ["polling"]) as client:
        await asyncio.sleep(0.6)  # a few ping intervals, each a poll
        assert await client.call("echo", {"x": 1}, timeout=WAIT) == {"x": 1}
        assert client.eio.current_transport == "polling"


# -- the structures on their own -------------------------------------------------------


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
    await asyncio.wait_for(joined, WAIT)
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
    assert await asyncio.wait_for(queue.get(), WAIT) == "x"


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
                await asyncio.sleep(WAIT)  # a read that gets no packet
            except asyncio.CancelledError:
                assert deadline.expired
                ended.append(loop.time() - deadline.read_since)
        finally:
            deadline.cancel()

    await asyncio.wait_for(connection(), WAIT)
    assert len(ended) == 1 and ended[0] >= 0.09


async def test_a_long_polling_client_takes_a_burst_of_more_than_16_packets() -> None:
    """engine.io's payload decoders refuse more than 16 packets in one polling answer (the
    client drops the connection): a burst waits for the next GET instead."""
    # A short ping interval ends the last pending GET soon, so that the client's
    # disconnect and the server's stop need not wait for the default 25 s.
    sio = lean_server(ping_interval=1, ping_timeout=2)
    burst = 40

    async def start(sid: str, *_: Any) -> None:
        for n in range(burst):
            await sio.emit_now(sid, "tick", n)

    sio.on("start", start)
    async with serving(sio) as served:
        client = socketio.AsyncClient(reconnection=False)
        ticks: list[int] = []
        done = asyncio.Event()

        def tick(n: int) -> None:
            ticks.append(n)
            if len(ticks) == burst:
                done.set()

        client.on("tick", tick)
        await client.connect(
            served.url, socketio_path=PATH, transports=["polling"], wait_timeout=WAIT
        )
        try:
            await client.emit("start")
            await asyncio.wait_for(done.wait(), WAIT)
            assert sorted(ticks) == list(range(burst))
            assert client.connected
        finally:
            await client.disconnect()
