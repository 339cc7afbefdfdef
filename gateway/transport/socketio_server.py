"""python-socketio's server with the hooks the gateway needs (library internals).

This is the only module that uses python-socketio's private API: the overrides of
``_handle_eio_message`` (a frame as received, whose size the budgets need) and
``_handle_event`` (where an event packet arrives, in the connection's reader) and
``_send_packet`` (in :meth:`SockethubServer.send_ack`, an acknowledgement sent after its
handler has returned), and of ``_binary_packet`` (taken over as soon as python-socketio
stores a binary packet, whose attachments are collected here within a byte limit) and
``_handle_eio_disconnect``, and engine.io's sockets (:meth:`SockethubServer.close_transports`).
``tests/unit/gateway/transport/test_socketio_server.py``,
``test_raw_packets.py`` and ``test_fuzz_frames.py`` check
the behaviour the gateway relies on through a real server and client.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import engineio
import socketio

from gateway.packets import Refused, SockethubPacket

ACK_WANTED: ContextVar[bool] = ContextVar("ack_wanted", default=True)
"""Inside an event handler: whether the client asked for an acknowledgement."""

FRAME_SIZE: ContextVar[int | None] = ContextVar("frame_size", default=None)
"""Inside an event handler: the length of the event's frame as it arrived (its JSON
text), a cheap measure of what its payload costs to hold."""

Reply = Callable[[Any], Awaitable[None]]
"""Sends one acknowledgement with the given answer."""
DirectHandler = Callable[[str, list[Any], Reply | None], Awaitable[None]]
"""``(sid, args, reply)``: handles an event and acknowledges it through ``reply`` (None
when the client asked for no acknowledgement), now or later."""
Ready = Callable[[str], bool]
"""True if the session's event may run in the connection's reader right now."""
Resume = Callable[[object], Awaitable[tuple[str | None, str]]]
"""Given a CONNECT's auth: the sid of the session it recovers (None: a fresh one) and the
pid to answer with (Socket.IO's connection state recovery, :mod:`gateway.recovery`)."""

_NO_COUNT = frozenset({"connect", "disconnect"})

MALFORMED_ATTACHMENTS = "Error: malformed binary attachments"


@dataclass
class _Attaching:
    """A binary event or ack whose attachments are arriving; past the byte limit they are
    counted, not kept."""

    packet: Any
    size: int
    received: int = 0
    attachments: list[Any] = field(default_factory=list)


class SockethubServer(socketio.AsyncServer):  # type: ignore[misc]
    """An AsyncServer with direct events, and handlers that know whether an ack is wanted.

    Events registered with :meth:`on` run as python-socketio runs them: one task each
    (``async_handlers``), the return value sent as the acknowledgement.
    :data:`ACK_WANTED` tells the handler whether the client asked for one (the
    ``schemas`` event needs that: without a callback the registry goes out as an event).

    An event registered with :meth:`on_direct` (``message``) skips that task: its handler
    runs in the connection's reader and answers through a ``reply`` callable whenever its
    answer is known. Order within a session is kept: the reader runs it only while no
    earlier event of the session waits for its task to start (counted here) and the
    ``ready`` predicate holds (the handlers' side: nothing of the session holds or waits
    for the session lock). Otherwise the same handler runs in a task of its own, started
    after the earlier events' tasks. Either way a session's events reach the session
    lock, or produce their request, in arrival order.

    Packets are :class:`SockethubPacket` (orjson where its text is json's).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("serializer", SockethubPacket)
        super().__init__(*args, **kwargs)
        self._direct: dict[str, tuple[DirectHandler, Ready]] = {}
        self._counted: set[str] = set()
        self._unstarted: dict[str, int] = {}
        """Per sid: events whose task has been created and has not started yet."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._attaching: dict[str, _Attaching] = {}
        """Per engine.io sid: the binary packet whose attachments are arriving."""
        self._on_slow_reader: Callable[[str, int], None] | None = None
        self._resume: Resume | None = None

    def on(self, event: str, handler: Any = None, namespace: str | None = None) -> Any:
        """python-socketio's ``on``; a coroutine handler of the default namespace is wrapped
        so that its task's start is counted (see the class docstring)."""
        if handler is None:
            return functools.partial(self._on_decorated, event, namespace)
        if (namespace or "/") == "/" and event not in _NO_COUNT:
            if inspect.iscoroutinefunction(handler):
                handler = self._counting(handler)
                self._counted.add(event)
            else:
                self._counted.discard(event)
        return super().on(event, handler, namespace)

    def _on_decorated(self, event: str, namespace: str | None, handler: Any) -> Any:
        self.on(event, handler, namespace)
        return handler

    def on_direct(self, event: str, handler: DirectHandler, ready: Ready) -> None:
        """Run ``event`` of the default namespace without python-socketio's task."""
        self._direct[event] = (handler, ready)

    def on_resume(self, resume: Resume) -> None:
        """Answer CONNECTs of the default namespace with a ``pid``, and let ``resume`` decide
        which session a reconnecting client gets back."""
        self._resume = resume

    async def close_transports(self, reason: str) -> None:
        """Close every engine.io connection without the Socket.IO DISCONNECT packet, after
        sending what is queued: socket.io-client takes a DISCONNECT as final ("io server
        disconnect"), a closed transport as a reason to reconnect (with its pid and offset).
        Each close reports the disconnect, with ``reason``, to the handlers."""
        for socket in list(self.eio.sockets.values()):
            if socket.closed or socket.closing:
                continue
            try:
                # engine.io's CLOSE packet, not Socket.IO's DISCONNECT: a polling client
                # reconnects when its poll returns it.
                await socket.close(wait=False, reason=reason)
                if socket.upgraded:  # the websocket's writer flushes, then closes it
                    socket.queue.put_nowait(None)
            except Exception as exc:  # one broken connection must not keep the others
                self.logger.info("%s: transport not closed: %r", socket.sid, exc)

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        """python-socketio's (with ``always_connect``), but the CONNECT answer carries the
        ``pid`` and, for a recovered session, its old ``sid``: python-socketio neither
        implements Socket.IO's connection state recovery nor lets a sid be chosen."""
        namespace = namespace or "/"
        if self._resume is None or namespace != "/" or not self.always_connect:
            await super()._handle_connect(eio_sid, namespace, data)
            return
        sid, pid = await self._resume(data)
        if sid is not None and not self._pre_connect_as(eio_sid, sid):
            sid, pid = await self._resume(None)  # that sid is open: a fresh session after all
        if sid is None:
            sid = await self.manager.pre_connect(eio_sid, namespace)
        if sid is None:  # this engine.io connection already has the namespace
            await self._send_packet(
                eio_sid,
                self.packet_class(
                    socketio.packet.CONNECT_ERROR, data="Unable to connect", namespace=namespace
                ),
            )
            return  # fmt: skip
        await self._send_packet(eio_sid, self.packet_class(
            socketio.packet.CONNECT, {"sid": sid, "pid": pid}, namespace=namespace))  # fmt: skip
        await self.manager.connect(sid, namespace)
        environ = self.environ[eio_sid]
        try:
            success = await self._trigger_event("connect", namespace, sid, environ, data)
        except ConnectionRefusedError:
            success = False
        if success is False:
            self.manager.pre_disconnect(sid, namespace)
            await self._send_packet(eio_sid, self.packet_class(
                socketio.packet.DISCONNECT, data={"message": "Connection refused by server"},
                namespace=namespace))  # fmt: skip
            await self.manager.disconnect(sid, namespace, ignore_queue=True)

    def _pre_connect_as(self, eio_sid: str, sid: str) -> bool:
        """python-socketio's ``pre_connect`` under a given sid; False if it is in use."""
        manager = self.manager
        in_use = manager.eio_sid_from_sid(sid, "/") is not None
        if in_use or manager.sid_from_eio_sid(eio_sid, "/") is not None:
            return False
        manager.basic_enter_room(sid, "/", None, eio_sid=eio_sid)
        manager.basic_enter_room(sid, "/", sid, eio_sid=eio_sid)
        manager.pending_connect.setdefault("/", []).append(sid)
        return True

    def on_slow_reader(self, handler: Callable[[str, int], None]) -> None:
        """``handler(sid, limit)`` runs when a session's outgoing queue overflows its limit,
        before the session is disconnected (the engine.io adapter bounds the queue)."""
        self._on_slow_reader = handler

    def _counting(self, handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def started(sid: str, *args: Any) -> Any:
            self._started(sid)
            return await handler(sid, *args)

        return started

    def _started(self, sid: str) -> None:
        left = self._unstarted.pop(sid, 1) - 1
        if left > 0:
            self._unstarted[sid] = left

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        """python-socketio's, but binary packets' attachments are collected here.

        python-socketio keeps every attachment a packet announces, however many and however
        large, and a packet whose attachments do not fit its placeholders (or that announces
        none) stays pending for good: every later frame of the connection is refused as an
        unexpected attachment, so no event of it is ever answered again. Here a binary
        packet's frames together are held to ``max_http_buffer_size`` (SOCKETHUB_MAX_PAYLOAD),
        and an event whose attachments are too large or do not fit goes to its handler
        with a :class:`Refused` argument (an error acknowledgement) once they have all arrived.
        """
        size = len(data) if isinstance(data, str | bytes) else 0
        attaching = self._attaching.get(eio_sid)
        if attaching is None:
            # Handlers' tasks start with a copy of this context: each sees its frame's size.
            FRAME_SIZE.set(size if isinstance(data, str | bytes) else None)
            await super()._handle_eio_message(eio_sid, data)
            pkt = self._binary_packet.pop(eio_sid, None)
            if pkt is None:
                return
            attaching = _Attaching(pkt, size)
            if pkt.attachment_count > 0:
                self._attaching[eio_sid] = attaching
                return
        else:
            attaching.received += 1
            attaching.size += size
            if attaching.size <= self.eio.max_http_buffer_size:
                attaching.attachments.append(data)
            else:
                attaching.attachments.clear()
            if attaching.received < attaching.packet.attachment_count:
                return
            del self._attaching[eio_sid]
        await self._binary_complete(eio_sid, attaching)

    async def _binary_complete(self, eio_sid: str, attaching: _Attaching) -> None:
        pkt = attaching.packet
        FRAME_SIZE.set(attaching.size)
        limit = self.eio.max_http_buffer_size
        refusal = None
        if attaching.size > limit:
            refusal = f"Error: event larger than {limit} bytes (SOCKETHUB_MAX_PAYLOAD)"
        else:
            try:
                data = pkt.reconstruct_binary(pkt.data, attaching.attachments)
            except (LookupError, TypeError, ValueError, RecursionError):
                refusal = MALFORMED_ATTACHMENTS
        if pkt.packet_type == socketio.packet.BINARY_ACK:
            if refusal is None:
                await self._handle_ack(eio_sid, pkt.namespace, pkt.id, data)
            return
        if refusal is not None:
            head = pkt.data[0] if isinstance(pkt.data, list) and pkt.data else None
            data = [head, Refused(refusal)]
        await self._handle_event(eio_sid, pkt.namespace, pkt.id, data)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any = None) -> None:
        self._attaching.pop(eio_sid, None)
        await super()._handle_eio_disconnect(eio_sid, reason)

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> None:
        namespace = namespace or "/"
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            return  # no event name: nothing to dispatch (python-socketio would raise)
        if data[0] in self.reserved_events:
            # python-socketio would call the server's own "connect" or "disconnect" handler
            # with the client's arguments: a session closed while its connection lives on.
            return
        # python-socketio creates the handler's task in this call; the task starts
        # with a copy of this context.
        ACK_WANTED.set(id is not None)
        if namespace != "/":
            await super()._handle_event(eio_sid, namespace, id, data)
            return
        event = data[0]
        direct = self._direct.get(event)
        if direct is None and event not in self._counted:
            await super()._handle_event(eio_sid, namespace, id, data)
            return
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if not self.manager.is_connected(sid, namespace):
            return
        if direct is None:
            self._unstarted[sid] = self._unstarted.get(sid, 0) + 1
            await super()._handle_event(eio_sid, namespace, id, data)
            return
        handler, ready = direct
        reply = None if id is None else functools.partial(self.send_ack, eio_sid, id)
        if sid not in self._unstarted and ready(sid):
            await handler(sid, data[1:], reply)
            return
        self._unstarted[sid] = self._unstarted.get(sid, 0) + 1
        task = asyncio.ensure_future(self._run_direct(handler, sid, data[1:], reply))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_direct(
        self, handler: DirectHandler, sid: str, args: list[Any], reply: Reply | None
    ) -> None:
        self._started(sid)
        await handler(sid, args, reply)

    async def emit_now(self, sid: str, event: str, *args: object) -> None:
        """``emit(event, args, to=sid)`` without python-socketio's task per recipient: the
        packet is queued before this returns, with no other task run meanwhile. So packets
        sent to a client this way and by :meth:`send_ack` keep the order of the calls, and
        an ack and the event right after it leave in one write batch."""
        eio_sid = self.manager.eio_sid_from_sid(sid, "/")
        if eio_sid is None:
            return
        packet = self.packet_class(socketio.packet.EVENT, namespace="/", data=[event, *args])
        with contextlib.suppress(engineio.exceptions.SocketIsClosedError):
            await self._send_packet(eio_sid, packet)

    async def send_ack(self, eio_sid: str, ack_id: int, answer: object) -> None:
        """What python-socketio sends for a handler that returned ``answer``; nothing if
        the connection has closed meanwhile (engine.io drops packets to a socket it no
        longer holds, and refuses those to one that is closing)."""
        packet = self.packet_class(socketio.packet.ACK, namespace="/", id=ack_id, data=[answer])
        with contextlib.suppress(engineio.exceptions.SocketIsClosedError):
            await self._send_packet(eio_sid, packet)
