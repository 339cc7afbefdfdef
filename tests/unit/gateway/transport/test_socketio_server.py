"""What the gateway needs of SockethubServer, checked through a real python-socketio server
behind uvicorn and a real python-socketio client on 127.0.0.1: one ACK frame per event
that asked for one, none otherwise, ``ACK_WANTED`` inside handlers, a session's events
handled in arrival order, and a late answer to a closed connection dropped quietly."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import socketio

from gateway.transport.socketio_server import ACK_WANTED, Reply, SockethubServer
from tests.unit.gateway.transport.harness import PATH, WAIT, socketio_client

"""Bound for anything a test waits for: a loaded 2-core machine is slow."""


class Harness:
    """A server whose handlers record what they see, and the ACK frames it sends."""

    def __init__(self) -> None:
        self.sio = SockethubServer(async_mode="asgi", async_handlers=True)
        self.seen: list[tuple[str, Any]] = []
        self.ack_wanted: list[bool] = []
        self.replies: list[Reply | None] = []
        self.acks: list[tuple[int, list[Any]]] = []
        self.ready = True
        self.hold_direct = False
        self.gone = asyncio.Event()
        self.sid = ""
        self.sio.on("connect", self.connect)
        self.sio.on("disconnect", self.disconnect)
        self.sio.on("task", self.task)
        self.sio.on("probe", self.probe)
        self.sio.on_direct("message", self.message, lambda sid: self.ready)
        send = self.sio.eio.send

        async def recording_send(eio_sid: str, data: Any) -> None:
            pkt = socketio.packet.Packet(encoded_packet=data)
            if pkt.packet_type == socketio.packet.ACK:
                self.acks.append((pkt.id, pkt.data))
            await send(eio_sid, data)

        self.sio.eio.send = recording_send

    async def connect(self, sid: str, environ: object, auth: object = None) -> None:
        self.sid = sid

    async def disconnect(self, sid: str, reason: object = None) -> None:
        self.gone.set()

    async def task(self, sid: str, payload: Any = None) -> Any:
        self.seen.append(("task", payload))
        return {"task": payload}

    async def probe(self, sid: str, *args: Any) -> Any:
        self.ack_wanted.append(ACK_WANTED.get())
        return "probed"

    async def message(self, sid: str, args: list[Any], reply: Reply | None) -> None:
        self.seen.append(("message", args[0] if args else None))
        self.replies.append(reply)
        if reply is not None and not self.hold_direct:
            await reply({"message": args[0]})

    def eio_sid(self) -> str:
        return str(self.sio.manager.eio_sid_from_sid(self.sid, "/"))

    async def inject(self, event: str, payload: Any, ack_id: int | None = None) -> None:
        """Hand the server one event packet as its connection reader would."""
        pkt = self.sio.packet_class(socketio.packet.EVENT, data=[event, payload], id=ack_id)
        await self.sio._handle_eio_message(self.eio_sid(), pkt.encode())


@contextlib.asynccontextmanager
async def connected() -> AsyncIterator[tuple[Harness, socketio.AsyncClient]]:
    harness = Harness()
    async with socketio_client(harness.sio) as client:
        await until(lambda: bool(harness.sid))
        yield harness, client


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not check():  # noqa: ASYNC110 - polling what the server recorded
            await asyncio.sleep(0.01)


async def test_an_event_with_an_ack_id_gets_one_ack_with_the_answer() -> None:
    async with connected() as (harness, client):
        assert await client.call("task", "t1", timeout=WAIT) == {"task": "t1"}
        assert await client.call("message", "m1", timeout=WAIT) == {"message": "m1"}
        assert await client.call("probe", timeout=WAIT) == "probed"  # after the others
        ids = [ack_id for ack_id, _ in harness.acks]
        assert len(ids) == 3 and len(set(ids)) == 3
        assert [data for _, data in harness.acks] == [
            [{"task": "t1"}],
            [{"message": "m1"}],
            ["probed"],
        ]


async def test_an_event_without_an_ack_id_gets_none() -> None:
    async with connected() as (harness, client):
        await client.emit("task", "t1")
        await client.emit("message", "m1")
        assert await client.call("probe", timeout=WAIT) == "probed"
        assert harness.seen == [("task", "t1"), ("message", "m1")]
        assert harness.replies == [None]
        assert [data for _, data in harness.acks] == [["probed"]]


async def test_handlers_know_whether_an_ack_is_wanted() -> None:
    async with connected() as (harness, client):
        await client.emit("probe")
        await client.call("message", "m1", timeout=WAIT)  # in the reader, between the two
        await client.call("probe", timeout=WAIT)
        await client.emit("probe")
        await until(lambda: len(harness.ack_wanted) == 3)
        assert harness.ack_wanted == [False, True, False]


async def test_a_sessions_events_are_handled_in_arrival_order() -> None:
    async with connected() as (harness, client):
        sent = []
        for n in range(30):
            event = "message" if n % 3 else "task"
            sent.append((event, n))
            await client.emit(event, n)
        await until(lambda: len(harness.seen) == len(sent))
        assert harness.seen == sent


async def test_a_direct_event_waits_for_the_tasks_of_earlier_events() -> None:
    """Packets handed over back to back, before any task could start: a ``message``
    behind an unstarted task runs after it, in a task of its own."""
    async with connected() as (harness, _):
        await harness.inject("task", 1)
        await harness.inject("message", 2)
        await harness.inject("task", 3)
        await harness.inject("message", 4)
        assert harness.seen == []  # nothing overtook the first task
        await until(lambda: len(harness.seen) == 4)
        assert harness.seen == [("task", 1), ("message", 2), ("task", 3), ("message", 4)]
        await harness.inject("message", 5)  # no task left waiting: runs in the reader
        assert harness.seen[-1] == ("message", 5)
        harness.ready = False  # the handlers' side says no: a task, still in order
        await harness.inject("message", 6)
        await harness.inject("task", 7)
        assert harness.seen[-1] == ("message", 5)
        await until(lambda: len(harness.seen) == 7)
        assert harness.seen[-2:] == [("message", 6), ("task", 7)]


async def test_an_answer_after_the_disconnect_is_dropped() -> None:
    async with connected() as (harness, client):
        harness.hold_direct = True
        await harness.inject("message", "m1", ack_id=7)
        (reply,) = harness.replies
        assert reply is not None
        eio_sid = harness.eio_sid()
        await client.disconnect()
        await asyncio.wait_for(harness.gone.wait(), WAIT)
        await until(lambda: eio_sid not in harness.sio.eio.sockets)
        await reply({"late": True})  # returns quietly: there is nobody to send it to
        harness.hold_direct = False
        harness.sid = ""
        await client.connect(
            client.connection_url, socketio_path=PATH, transports=["websocket"], wait_timeout=WAIT
        )
        assert await client.call("message", "m2", timeout=WAIT) == {"message": "m2"}
