"""The bounded outgoing queue (``max_queue_bytes``): a peer that does not read what it is sent
is disconnected and its state released, over websocket and long-polling, while other peers
go on; the queue on its own."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import httpx
import pytest
from engineio import packet
from websockets.exceptions import ConnectionClosed

from gateway.transport.engineio_server import PACKET_OVERHEAD, PacketQueue, packet_cost
from tests.unit.gateway.transport.harness import (
    PATH,
    WAIT,
    RawPeer,
    eventually,
    lean_server,
    serving,
)

LIMIT = 512 * 1024
CHUNK = "x" * 65536


def _server(limit: int = LIMIT) -> Any:
    sio = lean_server(max_queue_bytes=limit)
    slow: list[tuple[str, int]] = []
    reasons: list[object] = []

    async def echo(sid: str, data: Any) -> Any:
        return data

    async def disconnect(sid: str, reason: object = None) -> None:
        reasons.append(reason)

    sio.on("echo", echo)
    sio.on("disconnect", disconnect)
    sio.on_slow_reader(lambda sid, limit: slow.append((sid, limit)))
    return sio, slow, reasons


async def _flood(sio: Any, sid: str, until: Any) -> int:
    """Emit 64 KiB events to ``sid``, yielding between them so that its writer runs, until
    ``until()``; bounded so a broken bound fails rather than eating the machine."""
    for sent in range(4000):
        if until():
            return sent
        await sio.emit("big", CHUNK, to=sid)
        await asyncio.sleep(0)
    raise AssertionError("the slow reader was never disconnected")


async def test_a_websocket_peer_that_stops_reading_is_disconnected() -> None:
    sio, slow, reasons = _server()
    async with serving(sio) as served, RawPeer.connected(served) as fast:
        async with RawPeer.connected(served, receive_buffer=4096) as stalled:
            (stalled_eio,) = (e for e in sio.eio.sockets if e != fast.opened["sid"])
            await _flood(sio, stalled.sid, lambda: bool(slow))
            assert slow == [(stalled.sid, LIMIT)]
            await eventually(lambda: reasons != [], "the disconnect handler ran")
            assert reasons == [sio.reason.TRANSPORT_ERROR]
            await eventually(lambda: stalled_eio not in sio.eio.sockets, "engine.io forgot it")
            assert stalled_eio not in sio.environ
            assert not sio.manager.is_connected(stalled.sid, "/")
            # The TCP connection was dropped, not left to flush: the peer, reading again,
            # finds it closed after at most what was already in flight.
            with pytest.raises(ConnectionClosed):
                for _ in range(10000):
                    await stalled.frame()
            state = served.server.server_state
            await eventually(lambda: len(state.connections) == 1, "uvicorn dropped it")
        # The other peer was never affected.
        await fast.emit("echo", {"still": "here"}, ack=7)
        assert await fast.frame() == '437[{"still":"here"}]'
        assert len(sio.eio.sockets) == 1


async def test_a_peer_that_reads_keeps_up_under_the_same_limit() -> None:
    sio, slow, _ = _server()
    async with serving(sio) as served, RawPeer.connected(served) as peer:
        for i in range(64):  # 4 MiB in all, eight times the limit
            await sio.emit("big", CHUNK, to=peer.sid)
            assert await peer.frame() == f'42["big","{CHUNK}"]', i
        assert slow == []
        assert len(sio.eio.sockets) == 1


async def test_a_polling_peer_that_stops_polling_is_disconnected() -> None:
    sio, slow, reasons = _server()
    async with serving(sio) as served, httpx.AsyncClient(timeout=WAIT) as http:
        url = f"{served.url}/{PATH}/?EIO=4&transport=polling"
        opened = (await http.get(url)).text
        assert opened.startswith("0{")
        eio_sid = httpx.Response(200, text=opened[1:]).json()["sid"]
        url += f"&sid={eio_sid}"
        assert (await http.post(url, content="40")).text == "OK"
        joined = (await http.get(url)).text
        assert joined.startswith("40{")
        sid = httpx.Response(200, text=joined[2:]).json()["sid"]
        await _flood(sio, sid, lambda: bool(slow))  # and no GET meanwhile
        assert slow == [(sid, LIMIT)]
        await eventually(lambda: reasons == [sio.reason.TRANSPORT_ERROR], "disconnected")
        assert not sio.manager.is_connected(sid, "/")
        socket = sio.eio.sockets.get(eio_sid)
        assert socket is None or (socket.closed and socket.queue.qsize() <= 1)


# -- the queue on its own ------------------------------------------------------------------


def _msg(size: int) -> Any:
    return packet.Packet(packet.MESSAGE, data="y" * size)


async def test_a_bounded_queue_overflows_once_and_then_takes_only_the_stop() -> None:
    queue: PacketQueue[Any] = PacketQueue()
    overflows: list[int] = []
    queue.bound(3 * (100 + PACKET_OVERHEAD), lambda: overflows.append(1))
    for _ in range(3):
        queue.put_nowait(_msg(100))
    assert queue.queued_bytes == 3 * packet_cost(_msg(100))
    got = queue.get_nowait()
    queue.task_done()
    assert packet_cost(got) == 100 + PACKET_OVERHEAD
    queue.put_nowait(_msg(100))  # back to the limit exactly: accepted
    assert overflows == []
    queue.put_nowait(_msg(1))  # one byte over: everything queued is let go
    assert overflows == [1]
    assert queue.get_nowait() is None  # the writer's stop
    queue.task_done()
    queue.put_nowait(_msg(1))
    queue.put_nowait(None)
    assert queue.qsize() == 1 and queue.get_nowait() is None
    queue.task_done()
    await asyncio.wait_for(queue.join(), WAIT)  # the dropped packets count as done
    assert overflows == [1]


async def test_an_unbounded_queue_counts_nothing() -> None:
    queue: PacketQueue[Any] = PacketQueue()
    for _ in range(1000):
        queue.put_nowait(_msg(10000))
    assert queue.qsize() == 1000 and queue.queued_bytes == 0


async def test_the_overflow_callback_holds_no_reference_to_the_socket() -> None:
    """The queue's callback is a partial of the server and the sid: a closed socket is freed
    by reference counting, with no cycle through its own queue."""
    sio, _, _ = _server()
    async with serving(sio) as served, RawPeer.connected(served):
        (socket,) = sio.eio.sockets.values()
        callback = socket.queue._overflow
        assert callback is not None
        assert socket not in gc.get_referents(callback)
