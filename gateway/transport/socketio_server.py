"""python-socketio's server with the hooks the gateway needs (library internals).

The overrides of ``_handle_event``, ``_handle_event_internal`` and ``_send_packet`` are
python-socketio internals; they live here and nowhere else, pinned by the lock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import socketio

from gateway.packets import SockethubPacket

ACK_WANTED: ContextVar[bool] = ContextVar("ack_wanted", default=True)


InlineMessage = Callable[[str, str, int | None, list[Any]], Awaitable[bool]]


class SockethubServer(socketio.AsyncServer):  # type: ignore[misc]
    """An AsyncServer whose handlers can tell whether the client asked for an ack.

    The ``schemas`` event needs that (without a callback the registry goes out
    as an event instead). Handlers run as one task each (``async_handlers``),
    so a context variable set here is private to the event being handled.

    Except ``message`` events, when :attr:`inline_message` takes them: it runs in
    the connection's reader and declines (returns False) while an earlier event of
    the session holds or waits for the session lock; events whose task has not
    started yet (and so has not reached the lock) are counted per session, and
    while there are any, messages take the task path too. Either way a session's
    events reach the lock, or produce their request, in arrival order.

    Packets are :class:`SockethubPacket` (orjson where its text is json's).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("serializer", SockethubPacket)
        super().__init__(*args, **kwargs)
        self.inline_message: InlineMessage | None = None
        self._unstarted: dict[str, int] = {}

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> None:
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if not self.manager.is_connected(sid, namespace):
            return
        inline = self.inline_message
        if (
            inline is not None
            and namespace == "/"
            and data[0] == "message"
            and sid not in self._unstarted
            and await inline(sid, eio_sid, id, data[1:])
        ):
            return
        self._unstarted[sid] = self._unstarted.get(sid, 0) + 1
        await super()._handle_event(eio_sid, namespace, id, data)

    async def _handle_event_internal(
        self, server: Any, sid: str, eio_sid: str, data: Any, namespace: str, id: Any
    ) -> None:
        unstarted = self._unstarted.pop(sid, 1)
        if unstarted > 1:
            self._unstarted[sid] = unstarted - 1
        ACK_WANTED.set(id is not None)
        await super()._handle_event_internal(server, sid, eio_sid, data, namespace, id)

    async def send_ack(self, eio_sid: str, ack_id: int, answer: object) -> None:
        """What python-socketio sends for a handler that returned ``answer``."""
        await self._send_packet(
            eio_sid, self.packet_class(socketio.packet.ACK, namespace="/", id=ack_id, data=[answer])
        )
