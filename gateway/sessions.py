"""Per-session state held by one gateway process.

A session is one Socket.IO connection (its ``sid``). python-socketio runs each
event's handler as its own task; :attr:`Session.lock` puts them back in arrival
order: a handler takes the lock before its first suspension point (asyncio
locks queue waiters first come, first served), validates, stores credentials
or produces its request, and only then releases it. So a ``message`` sent
right after ``credentials`` is produced after the credentials are in Redis.
Waiting for the platform's answer happens outside the lock.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any

from gateway.shaping import Dialect

JSONDict = dict[str, Any]
MAX_ACTIVITY_OBJECTS = 256
"""G2 ``activity-object`` registrations kept per session (oldest dropped first)."""


class Session:
    """One connection's state. Slotted, and its lock, key set and object registry are
    created on first use: most of a gateway's sessions are idle at any moment."""

    __slots__ = (
        "_lock",
        "_objects",
        "_used",
        "address",
        "connected_at",
        "dialect",
        "inflight",
        "sid",
    )

    def __init__(self, sid: str, address: str, connected_at: float | None = None) -> None:
        self.sid = sid
        self.address = address
        self.connected_at = time.monotonic() if connected_at is None else connected_at
        self.inflight = 0
        """Events accepted and not yet answered (queued for the lock or awaiting a result)."""
        self.dialect: Dialect = "g3"
        """The dialect of the session's latest activity (used to shape unsolicited events)."""
        self._lock: asyncio.Lock | None = None
        self._used: set[tuple[str, str]] | None = None
        self._objects: OrderedDict[str, JSONDict] | None = None

    @property
    def lock(self) -> asyncio.Lock:
        lock = self._lock
        if lock is None:
            lock = self._lock = asyncio.Lock()
        return lock

    @property
    def used(self) -> set[tuple[str, str]]:
        """(platform, partition key) pairs this session sent requests under: each gets a
        session-closed request under the same key, so it reaches every runner involved."""
        used = self._used
        if used is None:
            used = self._used = set()
        return used

    @property
    def objects(self) -> OrderedDict[str, JSONDict]:
        """G2 ``activity-object`` registrations, oldest first."""
        objects = self._objects
        if objects is None:
            objects = self._objects = OrderedDict()
        return objects

    def remember_object(self, obj: JSONDict) -> None:
        key = str(obj["id"])
        self.objects.pop(key, None)
        self.objects[key] = obj
        while len(self.objects) > MAX_ACTIVITY_OBJECTS:
            self.objects.popitem(last=False)

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
        return self._by_sid.pop(sid, None)

    def __len__(self) -> int:
        return len(self._by_sid)
