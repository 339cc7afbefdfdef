"""Lighter per-connection state for idle websocket connections (library internals).

Most of a gateway's connections are idle, and each one's memory is mostly held by the
libraries. Two hooks make it smaller; both lean on library internals, so they live here
and ``tests/unit/gateway/test_lean_connections.py`` fails loudly if a library changes
under them:

- :class:`LeanWebSocketProtocol` is uvicorn's ``websockets-sansio`` protocol (passed as
  ``ws=`` to ``uvicorn.Config``, a documented hook) with a one-consumer receive queue and a
  plain flag instead of an ``asyncio.Queue`` and an ``asyncio.Event`` (about 2.5 KiB of
  deques per connection), and without the handshake's parsed request and response, which
  uvicorn keeps for the whole connection but does not read after the handshake (nor
  the ASGI scope's copy of the handshake headers, once the connection is accepted).
- :class:`LeanEngineIOServer` is engine.io's server (python-socketio's
  ``_engineio_server_class`` hook) whose ``create_queue`` (engine.io's own documented
  factory for a socket's outgoing packet queue) returns a :class:`PacketQueue`: the
  ``asyncio.Queue`` methods engine.io uses, with its storage created only while packets
  are waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, Generic, TypeVar

import engineio
from engineio import exceptions, packet
from engineio.async_socket import AsyncSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from gateway.transport.socketio_server import SockethubServer

T = TypeVar("T")


class ReceiveQueue(Generic[T]):
    """The part of ``asyncio.Queue`` uvicorn's protocol uses: ``put_nowait``, ``get``,
    ``empty``, for one consumer at a time (the ASGI app's ``receive``)."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[T] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: T) -> None:
        items = self._items
        if items is None:
            items = self._items = deque()
        items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> T:
        while not self._items:
            if self._waiter is not None:
                raise RuntimeError("ReceiveQueue.get() has one consumer at a time")
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        items = self._items
        item = items.popleft()
        if not items:
            self._items = None
        return item

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items) if self._items else 0


class Flag:
    """The part of ``asyncio.Event`` uvicorn's protocol uses (``writable``); its waiters'
    list exists only while someone waits."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        self._value = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol with lighter per-connection state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = ReceiveQueue()  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]
        self.writable.set()

    def start_keepalive(self) -> None:
        # uvicorn calls this once, right after it has sent the handshake's 101 response;
        # the parsed request and response (two Headers, ~3 KiB) are not read after that.
        # The request also stays referenced by the suspended parser of websockets'
        # ServerProtocol, so its headers are emptied, not just let go.
        self.request.headers.clear()
        self.request = None  # type: ignore[assignment]
        self.response = None  # type: ignore[assignment]
        # The scope's copy of the handshake headers (~1.3 KiB): engine.io has already
        # copied them into its environ (HTTP_*), and nothing reads the scope's list once
        # the connection is accepted.
        self.scope["headers"] = []
        super().start_keepalive()


class PacketQueue(Generic[T]):
    """What engine.io's socket uses of ``asyncio.Queue`` (``put``, ``put_nowait``, ``get``,
    ``get_nowait``, ``task_done``, ``join``, ``empty``, ``qsize``): unbounded, its item
    deque and waiter lists created only while needed."""

    __slots__ = ("_getters", "_items", "_joiners", "_unfinished")

    def __init__(self) -> None:
        self._items: deque[T] | None = None
        self._getters: list[asyncio.Future[None]] | None = None
        self._joiners: list[asyncio.Future[None]] | None = None
        self._unfinished = 0

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: T) -> None:
        items = self._items
        if items is None:
            items = self._items = deque()
        items.append(item)
        self._unfinished += 1
        getters = self._getters
        while getters:
            getter = getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                break

    async def put(self, item: T) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> T:
        items = self._items
        if not items:
            raise asyncio.QueueEmpty
        item = items.popleft()
        if not items:
            self._items = None
        return item

    async def get(self) -> T:
        while not self._items:
            getter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()
                if self._getters is not None and getter in self._getters:
                    self._getters.remove(getter)
                if self._items and not getter.cancelled():  # pragma: no cover
                    self._wake_next_getter()
                raise
            finally:
                if not self._getters:
                    self._getters = None
        return self.get_nowait()

    def _wake_next_getter(self) -> None:  # pragma: no cover
        while self._getters:
            getter = self._getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                return

    def task_done(self) -> None:
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0 and self._joiners:
            joiners, self._joiners = self._joiners, None
            for joiner in joiners:
                if not joiner.done():
                    joiner.set_result(None)

    async def join(self) -> None:
        if self._unfinished == 0:
            return
        joiner: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._joiners is None:
            self._joiners = []
        self._joiners.append(joiner)
        await joiner


class ReadDeadline:
    """Ends a websocket read that has waited ``limit`` seconds, with one timer per
    connection instead of engine.io's task and ``wait_for`` per packet read.

    Only a read is ever cancelled (never the packet handling in between): the timer
    checks ``reading`` and, if the read is still young, comes back when it would be due.
    """

    __slots__ = ("_handle", "_loop", "_task", "expired", "limit", "read_since", "reading")

    def __init__(self, limit: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self.limit = limit
        self.reading = False
        self.read_since = 0.0
        self.expired = False
        self._handle = self._loop.call_later(limit, self._check)

    def _check(self) -> None:
        now = self._loop.time()
        due = self.read_since + self.limit
        if self.reading and now >= due and self._task is not None:
            self.expired = True
            self._task.cancel()
            return
        self._handle = self._loop.call_at(due if self.reading else now + self.limit, self._check)

    def cancel(self) -> None:
        self._handle.cancel()


class LeanAsyncSocket(AsyncSocket):  # type: ignore[misc]
    """engine.io's socket without most of its resting tasks and per-packet tasks.

    - ``poll`` (long-polling's wait for packets) bounds its wait with ``asyncio.timeout``
      instead of ``asyncio.wait_for``, which wraps the wait in a task of its own plus a
      future and a callback; the websocket writer waits with no timer at all.
    - The next ping is a timer (``call_later``) instead of a task sleeping through the
      ping interval: when it fires, the PING packet is queued as engine.io's ``_send_ping``
      would (the socket's ``send`` only adds the ping-timeout check, which passes right
      after ``last_ping`` is set).
    - A connection opened as a websocket reads its packets in the handler's task, bounded
      by a :class:`ReadDeadline`, where engine.io starts a task and a ``wait_for`` for
      every packet (about a twentieth of the gateway's CPU per echo). Connections that
      upgrade from long-polling keep engine.io's own handler, probe handshake included.
    """

    connected: bool
    upgraded: bool

    async def _websocket_handler(self, ws: Any) -> None:
        if self.connected:
            await super()._websocket_handler(ws)
            return
        self.connected = True
        self.upgraded = True
        writer = asyncio.ensure_future(self._write_websocket(ws))
        self.server.logger.info("%s: Upgrade to websocket successful", self.sid)
        await self._read_websocket(ws)
        await self.queue.put(None)  # the writer sends what is queued, then stops
        await writer
        await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)

    async def _write_websocket(self, ws: Any) -> None:
        while True:
            packets = await self._next_packets()
            if not packets:
                break
            try:
                for pkt in packets:
                    await ws.send(pkt.encode())
            except Exception:
                break
        await ws.close()

    async def _read_websocket(self, ws: Any) -> None:
        """Until the peer closes, a read fails or outlasts ping interval + ping timeout."""
        server = self.server
        largest = server.max_http_buffer_size
        loop = asyncio.get_running_loop()
        deadline = ReadDeadline(server.ping_interval + server.ping_timeout)
        try:
            while True:
                deadline.read_since = loop.time()
                deadline.reading = True
                try:
                    data = await ws.wait()
                except asyncio.CancelledError:
                    # Ours: the read outlasted the deadline. Otherwise the server is
                    # closing the connection; as in engine.io, the socket still closes.
                    if deadline.expired:
                        asyncio.current_task().uncancel()  # type: ignore[union-attr]
                    return
                except Exception:
                    return
                deadline.reading = False
                if data is None or (data and len(data) > largest):
                    return
                try:
                    await self.receive(packet.Packet(encoded_packet=data))
                except exceptions.UnknownPacketError:
                    pass
                except exceptions.SocketIsClosedError:
                    server.logger.info("Receive error -- socket is closed")
                    return
                except Exception:
                    server.logger.exception("Unknown receive error")
        finally:
            deadline.cancel()

    async def poll(self) -> list[Any]:
        try:
            async with asyncio.timeout(self.server.ping_interval + self.server.ping_timeout):
                first = await self.queue.get()
        except (TimeoutError, asyncio.CancelledError):
            raise exceptions.QueueEmpty() from None
        return self._with_queued(first)

    async def _next_packets(self) -> list[Any]:
        """The websocket writer's wait, without ``poll``'s timer: the reader ends a silent
        connection (:class:`ReadDeadline`) and always queues None as its last act."""
        return self._with_queued(await self.queue.get())

    def _with_queued(self, first: Any) -> list[Any]:
        """``first`` and the packets queued behind it; [] once the queue says stop (None)."""
        queue = self.queue
        queue.task_done()
        if first is None:
            return []
        packets = [first]
        while True:
            try:
                pkt = queue.get_nowait()
                queue.task_done()
                if pkt is None:
                    queue.put_nowait(None)
                    break
                packets.append(pkt)
            except asyncio.QueueEmpty:
                break
        return packets

    last_ping: float | None

    def schedule_ping(self) -> None:
        # only schedule a new ping if the previous ping wait cycle completed
        if self.last_ping:
            self.last_ping = None
            asyncio.get_running_loop().call_later(self.server.ping_interval, self._ping_due)

    def _ping_due(self) -> None:
        if self.closing or self.closed:
            return
        self.last_ping = time.time()
        self.queue.put_nowait(packet.Packet(packet.PING))


class LeanEngineIOServer(engineio.AsyncServer):  # type: ignore[misc]
    r"""engine.io's server, whose sockets are :class:`LeanAsyncSocket`\ s queueing their
    outgoing packets in a :class:`PacketQueue`."""

    def create_queue(self, *args: Any, **kwargs: Any) -> PacketQueue[Any]:
        if args or kwargs:  # engine.io creates its sockets' queues without arguments
            return asyncio.Queue(*args, **kwargs)  # type: ignore[return-value]
        return PacketQueue()

    async def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        # engine.io builds its sockets with a hard-wired class; "connect" is triggered
        # right after it stored the new socket, before its first ping is scheduled and
        # before its websocket handler starts. A subclass that adds no state can take over.
        if event == "connect":
            socket = self.sockets.get(args[0])
            if type(socket) is AsyncSocket:
                socket.__class__ = LeanAsyncSocket
        return await super()._trigger_event(event, *args, **kwargs)


class LeanSockethubServer(SockethubServer):
    """The gateway's Socket.IO server, on :class:`LeanEngineIOServer`."""

    def _engineio_server_class(self) -> type[LeanEngineIOServer]:
        return LeanEngineIOServer
