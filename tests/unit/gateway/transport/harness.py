"""Real uvicorn serving a real Socket.IO server on 127.0.0.1, and a raw engine.io client over
a real websocket: what the transport adapters' behaviour tests drive."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import socketio
import uvicorn
import websockets.asyncio.client
from websockets.asyncio.client import ClientConnection

from gateway.transport.engineio_server import LeanSockethubServer
from gateway.transport.uvicorn_protocol import LeanWebSocketProtocol
from sockethub.devstack.processes import free_port

PATH = "sockethub"
WAIT = 20.0
"""Generous bound for anything the tests wait for: a loaded 2-core machine is slow."""


def lean_server(**kwargs: Any) -> LeanSockethubServer:
    """A Socket.IO server built as the gateway builds its own."""
    kwargs.setdefault("async_mode", "asgi")
    kwargs.setdefault("always_connect", True)
    kwargs.setdefault("async_handlers", True)
    return LeanSockethubServer(**kwargs)


@dataclass
class Served:
    url: str
    port: int
    server: uvicorn.Server

    def ws_url(self, query: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}/{PATH}/?EIO=4&transport=websocket{query}"


@contextlib.asynccontextmanager
async def serving(sio: socketio.AsyncServer, **config: Any) -> AsyncIterator[Served]:
    """``sio`` behind uvicorn with the gateway's websocket settings, on a free port."""
    port = free_port()
    config.setdefault("ws", LeanWebSocketProtocol)
    server = uvicorn.Server(
        uvicorn.Config(
            socketio.ASGIApp(sio, socketio_path=PATH),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            # as the gateway by default: engine.io's heartbeat only, no compression
            ws_ping_interval=None,
            ws_per_message_deflate=False,
            **config,
        )
    )
    task = asyncio.ensure_future(server.serve())
    async with asyncio.timeout(WAIT):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    try:
        yield Served(f"http://127.0.0.1:{port}", port, server)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT)


@contextlib.asynccontextmanager
async def socketio_client(sio: socketio.AsyncServer) -> AsyncIterator[socketio.AsyncClient]:
    """``sio`` served as by :func:`serving`, with a python-socketio client connected over
    websocket; the client disconnects on the way out."""
    async with serving(sio) as served:
        client = socketio.AsyncClient(reconnection=False)
        try:
            await client.connect(
                served.url, socketio_path=PATH, transports=["websocket"], wait_timeout=WAIT
            )
            yield client
        finally:
            with contextlib.suppress(Exception):
                await client.disconnect()


async def eventually(check: Callable[[], bool], what: str, within: float = WAIT) -> None:
    """Wait until ``check()`` holds; fail with ``what`` if it does not within ``within``."""
    try:
        async with asyncio.timeout(within):
            while not check():  # noqa: ASYNC110 - polls state no event reports
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not within {within} s: {what}") from None


@dataclass
class RawPeer:
    """An engine.io v4 / Socket.IO v5 client speaking the wire protocol itself, so the tests
    see every frame: ``2`` pings (answered with ``3`` while ``answer_pings``), ``4x`` messages,
    and binary frames."""

    ws: ClientConnection
    sid: str = ""
    pings: int = 0
    answer_pings: bool = True
    opened: dict[str, Any] = field(default_factory=dict)

    @classmethod
    @contextlib.asynccontextmanager
    async def connected(
        cls, served: Served, query: str = "", receive_buffer: int = 0, **options: Any
    ) -> AsyncIterator[RawPeer]:
        """A connected peer; ``receive_buffer`` caps its socket's kernel receive buffer
        (no autotuning), so a peer that stops reading backs up onto the server soon."""
        options.setdefault("compression", None)  # so that bytes sent are bytes on the wire
        if receive_buffer:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", served.port))
            options["sock"] = sock
        async with websockets.asyncio.client.connect(served.ws_url(query), **options) as ws:
            peer = cls(ws)
            opened = await peer.frame()
            assert isinstance(opened, str) and opened.startswith("0{"), opened
            peer.opened = json.loads(opened[1:])
            await ws.send("40")
            joined = await peer.frame()
            assert isinstance(joined, str) and joined.startswith("40{"), joined
            peer.sid = json.loads(joined[2:])["sid"]
            yield peer

    async def frame(self, within: float = WAIT) -> str | bytes:
        """The next frame that is not a ping."""
        async with asyncio.timeout(within):
            while True:
                data = await self.ws.recv()
                if data == "2":
                    self.pings += 1
                    if self.answer_pings:
                        await self.ws.send("3")
                    continue
                return data

    async def emit(self, event: str, *args: Any, ack: int | None = None) -> None:
        ack_id = "" if ack is None else str(ack)
        await self.ws.send(f"42{ack_id}{json.dumps([event, *args])}")
