"""Per-session state held by one gateway process.

A session is one Socket.IO connection (its ``sid``). A session's events run in
the connection's reader or as tasks of their own (see
:class:`gateway.transport.socketio_server.SockethubServer`); :attr:`Session.lock` puts
them back in arrival order: a handler enters the lock before its first suspension
point (entrants are served first come, first served), validates, stores credentials
or produces its request, and only then leaves it. So a ``message`` sent right after
``credentials`` is produced after the credentials are in Redis. Waiting for the
platform's answer happens outside the lock.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from gateway.shaping import Dialect

if TYPE_CHECKING:
    from gateway.requests import PendingRequest

JSONDict = dict[str, Any]
MAX_ACTIVITY_OBJECTS = 256
"""G2 ``activity-object`` registrations kept per session (oldest dropped first)."""


class SessionLock:
    """An ``asyncio.Lock`` that counts who holds or waits for it.

    :attr:`users` tells the connection's reader whether an earlier event of the
    session is in, or queued for, the ordered section, without reading asyncio's
    private state.
    """

    __slots__ = ("_lock", "users")

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self.users = 0

    async def __aenter__(self) -> None:
        self.users += 1
        try:
            await self._lock.acquire()
        except BaseException:
            self.users -= 1
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._lock.release()
        self.users -= 1


class Session:
    """One connection's state. Slotted, and its lock, key set, object registry and
    request set are created on first use: most of a gateway's sessions are idle."""

    __slots__ = (
        "_lock",
        "_object_sizes",
        "_objects",
        "_requests",
        "_used",
        "address",
        "cap_key",
        "closed",
        "connected_at",
        "dialect",
        "inflight",
        "inflight_bytes",
        "object_bytes",
        "owns_count",
        "pid",
        "sid",
    )

    def __init__(self, sid: str, address: str, connected_at: float | None = None) -> None:
        self.sid = sid
        self.address = address
        self.cap_key = address
        """What the connection cap and rate blocks count the client under (IPv6: its /64)."""
        self.owns_count = False
        """The session, not its engine.io handshake, holds the cap's count."""
        self.pid: str | None = None
        """Its private id for connection state recovery (:mod:`gateway.recovery`)."""
        self.connected_at = time.monotonic() if connected_at is None else connected_at
        self.inflight = 0
        """Events accepted and not yet answered (queued for the lock or awaiting a result)."""
        self.inflight_bytes = 0
        """Frame bytes of the ``message`` events counted in :attr:`inflight`."""
        self.object_bytes = 0
        """Frame bytes of the registered ``activity-object`` payloads."""
        self.closed = False
        """The connection has ended: events still queued for the lock do nothing."""
        self.dialect: Dialect = "g3"
        """The dialect of the session's latest activity (used to shape unsolicited events)."""
        self._lock: SessionLock | None = None
        self._used: set[tuple[str, str]] | None = None
        self._objects: OrderedDict[str, JSONDict] | None = None
        self._object_sizes: dict[str, int] | None = None
        self._requests: set[PendingRequest] | None = None

    @property
    def lock(self) -> SessionLock:
        lock = self._lock
        if lock is None:
            lock = self._lock = SessionLock()
        return lock

    @property
    def idle(self) -> bool:
        """No event of the session holds or waits for the lock."""
        lock = self._lock
        return lock is None or lock.users == 0

    @property
    def used(self) -> set[tuple[str, str]]:
        """(platform, partition key) pairs this session sent requests under: each gets a
        session-closed request under the same key, so it reaches every runner involved."""
        used = self._used
        if used is None:
            used = self._used = set()
        return used

    def track(self, request: PendingRequest) -> None:
        """``request`` waits for Kafka; the end of the session answers it."""
        requests = self._requests
        if requests is None:
            requests = self._requests = set()
        requests.add(request)

    def untrack(self, request: PendingRequest) -> None:
        if self._requests is not None:
            self._requests.discard(request)

    @property
    def requests(self) -> list[PendingRequest]:
        """The session's requests that are waiting for Kafka."""
        return list(self._requests or ())

    @property
    def objects(self) -> OrderedDict[str, JSONDict]:
        """G2 ``activity-object`` registrations, oldest first."""
        objects = self._objects
        if objects is None:
            objects = self._objects = OrderedDict()
        return objects

    def remember_object(self, obj: JSONDict, size: int = 0, budget: int | None = None) -> bool:
        """Register ``obj``, which arrived in ``size`` bytes; False (nothing changed) if the
        session's objects would then hold more than ``budget`` bytes."""
        key = str(obj["id"])
        sizes = self._object_sizes
        if sizes is None:
            sizes = self._object_sizes = {}
        held = self.object_bytes - sizes.get(key, 0)
        if budget is not None and held + size > budget:
            return False
        self.objects.pop(key, None)
        self.objects[key] = obj
        sizes[key] = size
        self.object_bytes = held + size
        while len(self.objects) > MAX_ACTIVITY_OBJECTS:
            dropped, _ = self.objects.popitem(last=False)
            self.object_bytes -= sizes.pop(dropped, 0)
        return True

    def lookup_object(self, object_id: str) -> JSONDict | None:
        objects = self._objects
        return None if objects is None else objects.get(object_id)


class Sessions:
    """The live sessions of this process, by sid."""

    def __init__(self) -> None:
        self._by_sid: dict[str, Session] = {}

    def open(self, sid: str, address: str) -> Session:
        session = Session(sid=sid, address=address)
        self._by_sid[sid] = session
        return session

    def get(self, sid: str) -> Session | None:
        return self._by_sid.get(sid)

    def close(self, sid: str) -> Session | None:
        session = self._by_sid.pop(sid, None)
        if session is not None:
            session.closed = True
        return session

    def sids(self) -> list[str]:
        return list(self._by_sid)

    def __len__(self) -> int:
        return len(self._by_sid)
