"""uvicorn's websocket protocol with lighter per-connection state (library internals).

The gateway serves websockets with uvicorn's ``websockets-sansio`` protocol, passed as
``ws=`` to ``uvicorn.Config`` (a documented hook). :class:`LeanWebSocketProtocol`
subclasses it and relies on these internals of uvicorn and websockets:

- ``WebSocketsSansIOProtocol.__init__`` sets ``self.queue`` (an ``asyncio.Queue`` of ASGI
  receive events) and ``self.writable`` (an ``asyncio.Event``); the protocol uses only
  ``put_nowait``/``get``/``empty`` of the one and ``set``/``clear``/``wait``/``is_set`` of
  the other, so they are replaced by :class:`ReceiveQueue` and :class:`Flag`.
- ``WebSocketsSansIOProtocol.start_keepalive`` is called once, right after the 101
  response went out; ``self.request`` and ``self.response`` (the parsed handshake) are not
  read after it, nor is ``self.scope["headers"]`` once the ASGI app has accepted.
- ``WebSocketsSansIOProtocol.handle_connect`` builds ``self.scope`` (with its
  ``extensions`` dict) before the ASGI app starts; the ``sockethub.abort`` extension added
  there lets the engine.io adapter drop a peer that does not read.
- websockets' ``ServerProtocol`` keeps the handshake request referenced from its suspended
  parser, so the request's headers are emptied, not just let go.

``tests/unit/gateway/transport/test_uvicorn_protocol.py`` drives it through real uvicorn
with a real websocket client; docs/transport.md says what each part buys.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Generic, TypeVar

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

T = TypeVar("T")


class ReceiveQueue(Generic[T]):
    """The part of ``asyncio.Queue`` uvicorn's protocol uses: ``put_nowait``, ``get``,
    ``empty``, for one consumer at a time (the ASGI app's ``receive``); its deque exists
    only while events wait."""

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

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None and scope.get("type") == "websocket":
            # What the engine.io adapter calls to drop a peer that does not read: a close
            # frame would wait behind the unsent data, and closing the transport would wait
            # for it to flush.
            scope["extensions"]["sockethub.abort"] = self.transport.abort

    def start_keepalive(self) -> None:
        # Called once, right after the handshake's 101 response was sent: the parsed
        # request and response are not read after that. The request stays referenced by
        # the suspended parser of websockets' ServerProtocol, so its headers are emptied.
        self.request.headers.clear()
        self.request = None  # type: ignore[assignment]
        self.response = None  # type: ignore[assignment]
        # engine.io has copied the handshake headers into its environ (HTTP_*) before the
        # app accepted; nothing reads the scope's list after that.
        self.scope["headers"] = []
        super().start_keepalive()
