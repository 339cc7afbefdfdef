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
from dataclasses import dataclass, field
from typing import Any

from gateway.shaping import Dialect

JSONDict = dict[str, Any]
MAX_ACTIVITY_OBJECTS = 256
"""G2 ``activity-object`` registrations kept per session (oldest dropped first)."""


@dataclass
class Session:
    sid: str
    address: str
    connected_at: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    inflight: int = 0
    """Events accepted and not yet answered (queued for the lock or awaiting a result)."""
    used: set[tuple[str, str]] = field(default_factory=set)
    """(platform, partition key) pairs this session sent requests under: each gets a
    session-closed request under the same key, so it reaches every runner involved."""
    dialect: Dialect = "g3"
    """The dialect of the session's latest activity (used to shape unsolicited events)."""
    objects: OrderedDict[str, JSONDict] = field(default_factory=OrderedDict)

    def remember_object(self, obj: JSONDict) -> None:
        key = str(obj["id"])
        self.objects.pop(key, None)
        self.objects[key] = obj
        while len(self.objects) > MAX_ACTIVITY_OBJECTS:
            self.objects.popitem(last=False)

    def lookup_object(self, object_id: str) -> JSONDict | None:
        return self.objects.get(object_id)


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
