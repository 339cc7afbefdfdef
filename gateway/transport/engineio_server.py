"""engine.io's server with lighter per-connection state (library internals).

python-socketio builds its engine.io server from ``_engineio_server_class`` (a
python-socketio internal), which :class:`LeanSockethubServer` points at
:class:`LeanEngineIOServer`. That server relies on these engine.io internals:

- ``AsyncServer.create_queue``, called without arguments, makes each socket's outgoing
  queue; it returns a :class:`PacketQueue`, and engine.io's socket uses only ``put``,
  ``put_nowait``, ``get``, ``get_nowait``, ``task_done``, ``join``, ``empty`` and
  ``qsize`` of it.
- ``AsyncServer._trigger_event("connect", sid, ...)`` runs right after
  ``_handle_connect`` stored the new ``AsyncSocket`` in ``self.sockets`` and before its
  websocket handler starts: there the socket's class becomes :class:`LeanAsyncSocket`,
  which adds no state of its own.
- :class:`LeanAsyncSocket` replaces ``AsyncSocket._websocket_handler`` (the websocket read
  and write loops) for connections opened as websockets, and relies on the socket's
  ``receive``, ``close``, ``queue``, ``connected``, ``upgraded`` and ``sid``, and on the
  server's ``ping_interval``, ``ping_timeout``, ``max_http_buffer_size``, ``reason`` and
  ``logger``. Long-polling, upgrades and the heartbeat stay engine.io's own.
- The same ``_trigger_event`` hook tells :attr:`LeanEngineIOServer.admission` of each
  engine.io session opened (the handshake, with its environ, before any Socket.IO
  CONNECT) and closed (``"disconnect"``, triggered once per socket by its ``close``).
- ``AsyncSocket.close(wait=False, abort=True, reason=...)`` closes a socket whose bounded
  queue overflowed, and python-socketio's ``environ`` (per engine.io sid) holds the ASGI
  scope whose ``sockethub.abort`` extension then drops the TCP connection.

``tests/unit/gateway/transport/test_engineio_server.py`` drives it through real uvicorn and
engine.io with real clients; docs/transport.md says what each part buys.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import engineio
from engineio import exceptions, packet
from engineio.async_socket import AsyncSocket

from gateway.transport.socketio_server import SockethubServer

T = TypeVar("T")


PACKET_OVERHEAD = 128
"""Bytes charged to the outgoing queue per packet besides its data: the packet object and
its queue slot, so that a flood of tiny packets is bounded too."""

POLL_PACKETS = 16
"""Packets in one long-polling answer at most: what engine.io's payload decoders take."""

ABORT_EXTENSION = "sockethub.abort"
"""ASGI scope extension (set by :class:`~gateway.transport.uvicorn_protocol.
LeanWebSocketProtocol`): a callable that drops the websocket's TCP connection at once, with
whatever is still unsent."""


def packet_cost(pkt: Any) -> int:
    """What one queued engine.io packet is charged: its data's length plus the overhead."""
    if pkt is None:
        return 0
    data = getattr(pkt, "data", None)
    return PACKET_OVERHEAD + (len(data) if isinstance(data, str | bytes) else 0)


class PacketQueue(Generic[T]):
    """What engine.io's socket uses of ``asyncio.Queue`` (``put``, ``put_nowait``, ``get``,
    ``get_nowait``, ``task_done``, ``join``, ``empty``, ``qsize``), its item deque and
    waiter lists created only while needed.

    Unbounded until :meth:`bound` gives it a limit in bytes (:func:`packet_cost`): a packet
    that would take the queue past it empties the queue instead, calls ``on_overflow``
    once, and from then on only None (the writer's stop) is queued, so a peer that does not
    read can never make the queue hold more than the limit.
    """

    __slots__ = ("_bytes", "_getters", "_items", "_joiners", "_limit", "_overflow", "_unfinished")

    def __init__(self) -> None:
        self._items: deque[T] | None = None
        self._getters: list[asyncio.Future[None]] | None = None
        self._joiners: list[asyncio.Future[None]] | None = None
        self._unfinished = 0
        self._bytes = 0
        self._limit = 0
        """0: unbounded; -1: overflowed, only None is accepted."""
        self._overflow: Callable[[], None] | None = None

    def bound(self, limit: int, on_overflow: Callable[[], None]) -> None:
        """Hold at most ``limit`` bytes of packets; past it, ``on_overflow()``."""
        self._limit = limit
        self._overflow = on_overflow

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def _overflowed(self) -> None:
        dropped = len(self._items) if self._items else 0
        self._items = None
        self._bytes = 0
        self._limit = -1
        for _ in range(dropped):
            self.task_done()
        callback, self._overflow = self._overflow, None
        self.put_nowait(None)  # type: ignore[arg-type]  # the writer, or a waiting poll, ends
        if callback is not None:
            callback()

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: T) -> None:
        limit = self._limit
        if limit and item is not None:
            if limit < 0:
                return  # overflowed: the connection is being closed, nothing more goes out
            cost = packet_cost(item)
            if self._bytes + cost > limit:
                self._overflowed()
                return
            self._bytes += cost
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
        if self._limit > 0:
            self._bytes -= packet_cost(item)
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
    """engine.io's socket whose websocket loop runs without per-packet tasks and timers.

    A connection opened as a websocket reads its packets in the handler's own task,
    bounded by one :class:`ReadDeadline`, where engine.io starts a task and a
    ``wait_for`` for every packet it reads; its writer waits on the queue with no timer
    (engine.io's ``poll`` wraps each wait in ``wait_for``): the reader ends a silent
    connection and always queues None, the writer's stop, as its last act. Connections
    that upgrade from long-polling keep engine.io's own handler, probe handshake included.
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
                except ValueError as exc:  # a malformed packet: the peer's fault, no traceback
                    server.logger.info("%s: malformed packet dropped: %s", self.sid, exc)
                except Exception:
                    server.logger.exception("Unknown receive error")
        finally:
            deadline.cancel()

    async def _next_packets(self) -> list[Any]:
        """What engine.io's ``poll`` returns, without its timer: the next packet and those
        queued behind it; [] once the queue says stop (None)."""
        queue = self.queue
        first = await queue.get()
        queue.task_done()
        if first is None:
            return []
        packets = [first]
        while True:
            try:
                pkt = queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            queue.task_done()
            if pkt is None:
                queue.put_nowait(None)
                break
            packets.append(pkt)
        return packets

    async def poll(self) -> list[Any]:
        """engine.io's long-polling answer, at most :data:`POLL_PACKETS` packets long; the
        rest wait for the client's next GET. engine.io's decoders, the server's and
        python-engineio's client, refuse a payload of more than 16 packets, and the client
        then drops the connection: a burst of acks, each followed by its offset event, made
        one."""
        try:
            first = await asyncio.wait_for(
                self.queue.get(), self.server.ping_interval + self.server.ping_timeout
            )
            self.queue.task_done()
        except (TimeoutError, asyncio.CancelledError):
            raise engineio.exceptions.QueueEmpty() from None
        if first is None:
            return []
        packets = [first]
        while len(packets) < POLL_PACKETS:
            try:
                pkt = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            self.queue.task_done()
            if pkt is None:
                self.queue.put_nowait(None)
                break
            packets.append(pkt)
        return packets


class HandshakeHooks(Protocol):
    """Told of every engine.io session: the per-address cap counts handshakes."""

    async def opened(self, eio_sid: str, environ: dict[str, Any]) -> None: ...

    async def closed(self, eio_sid: str) -> None: ...


class LeanEngineIOServer(engineio.AsyncServer):  # type: ignore[misc]
    r"""engine.io's server, whose sockets are :class:`LeanAsyncSocket`\ s queueing their
    outgoing packets in a :class:`PacketQueue`, bounded by ``max_queue_bytes`` (0: none).

    A socket whose queue overflows is closed (engine.io's ``disconnect`` is triggered, with
    the transport-error reason) after ``on_slow_reader(sid)`` was called; ``abort_connection``
    (sid) then drops its websocket's TCP connection, whose writer may be blocked sending to
    a peer that does not read.
    """

    max_queue_bytes = 0
    on_slow_reader: Callable[[str], None] | None = None
    abort_connection: Callable[[str], None] | None = None

    admission: HandshakeHooks | None = None

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
            if socket is not None and self.max_queue_bytes > 0:
                # A partial, not a bound method of the socket: no reference cycle.
                socket.queue.bound(
                    self.max_queue_bytes, functools.partial(self._slow_reader, args[0])
                )
            if self.admission is not None:
                await self.admission.opened(args[0], args[1])
        elif event == "disconnect" and self.admission is not None:
            try:
                return await super()._trigger_event(event, *args, **kwargs)
            finally:
                await self.admission.closed(args[0])
        return await super()._trigger_event(event, *args, **kwargs)

    def _slow_reader(self, sid: str) -> None:
        socket = self.sockets.get(sid)
        if socket is None or socket.closed or socket.closing:
            return
        if self.on_slow_reader is not None:
            self.on_slow_reader(sid)
        task = asyncio.ensure_future(
            socket.close(wait=False, abort=True, reason=self.reason.TRANSPORT_ERROR)
        )
        _closing.add(task)
        task.add_done_callback(_closing.discard)
        if self.abort_connection is not None:
            self.abort_connection(sid)


_closing: set[asyncio.Task[None]] = set()
"""Closes of slow readers' sockets under way (a task needs a reference until it is done)."""


class LeanSockethubServer(SockethubServer):
    """The gateway's Socket.IO server, on :class:`LeanEngineIOServer`.

    ``max_queue_bytes`` bounds each connection's outgoing queue (0: unbounded); a session
    whose queue overflows is reported to the handler given to ``on_slow_reader``, then
    disconnected.
    """

    def __init__(self, *args: Any, max_queue_bytes: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        eio: LeanEngineIOServer = self.eio
        eio.max_queue_bytes = max_queue_bytes
        eio.on_slow_reader = self._slow_reader
        eio.abort_connection = self._abort_connection

    def _engineio_server_class(self) -> type[LeanEngineIOServer]:
        return LeanEngineIOServer

    def set_admission(self, hooks: HandshakeHooks) -> None:
        self.eio.admission = hooks

    def _slow_reader(self, eio_sid: str) -> None:
        sid = self.manager.sid_from_eio_sid(eio_sid, "/")
        if self._on_slow_reader is not None:
            self._on_slow_reader(sid or eio_sid, self.eio.max_queue_bytes)

    def _abort_connection(self, eio_sid: str) -> None:
        environ = self.environ.get(eio_sid) or {}
        scope = environ.get("asgi.scope") or {}
        abort = (scope.get("extensions") or {}).get(ABORT_EXTENSION)
        if callable(abort):
            abort()
