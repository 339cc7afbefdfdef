"""The connection pool of persistent platforms (IRC, XMPP).

A connection is identified by a :class:`ConnectionKey`: the actor id plus a
scope, which is a keyed hash of the credentials when they carry a password or
token (sessions with identical secret-bearing credentials share one
connection, spec section 4) and the session id otherwise (a private
connection). Sessions attach to a :class:`Slot`; unsolicited events fan out to
every attached session with its own reply route; a slot without sessions is
closed after a grace period. Each change of a slot is written to the desired
state store, so another runner can re-establish it (see
:mod:`platform_runners.persistent_platform`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import structlog
from aiokafka.partitioner import murmur2

from platform_runners.persistent_state import StateStore
from platform_runners.platform import Context, Emitter, PlatformError
from schemas.envelopes import JSONDict
from sockethub.runtime.credentials import share_key

log = structlog.get_logger("platform_runners.persistent")

C = TypeVar("C")


def uninitialized(verb: str) -> PlatformError:
    """The spec's error for a verb on a connection that does not exist."""
    return PlatformError(f"{verb} called on uninitialized platform")


@dataclass(frozen=True, slots=True)
class ConnectionKey:
    actor_id: str
    scope: str
    """``shared:<hmac of the credentials>`` or ``session:<session id>``."""

    def encode(self) -> bytes:
        return json.dumps([self.actor_id, self.scope], separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> ConnectionKey:
        actor_id, scope = json.loads(raw)
        return cls(str(actor_id), str(scope))


def connection_key(
    secret: Any, platform: str, actor_id: str, credentials: JSONDict, session_id: str
) -> ConnectionKey:
    """Shared scope for secret-bearing credentials, else private to the session."""
    digest = share_key(secret, platform, actor_id, credentials)
    if digest is None:
        return ConnectionKey(actor_id, f"session:{session_id}")
    return ConnectionKey(actor_id, f"shared:{digest}")


def default_partition(actor_id: str, partitions: int) -> int:
    """Kafka's default partition for a record keyed by ``actor_id``."""
    return int(murmur2(actor_id.encode()) & 0x7FFFFFFF) % partitions


@dataclass(eq=False)
class Slot(Generic[C]):
    """One (possibly shared) connection and what the sessions asked of it."""

    key: ConnectionKey
    partition: int
    actor: JSONDict
    credentials_session: str
    """Whose stored credentials re-establish the connection (a session id, never a secret)."""
    sessions: dict[str, str] = field(default_factory=dict)
    """Attached session id -> reply route."""
    rooms: dict[str, JSONDict] = field(default_factory=dict)
    """Joined rooms: platform's room name -> the target object the client used."""
    extra: JSONDict = field(default_factory=dict)
    """Platform-specific, non-secret state (the current IRC nick, say)."""
    connection: C | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once no establishment (first connect or restoration) is in progress."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    grace: asyncio.TimerHandle | None = None
    closed: bool = False

    @property
    def actor_id(self) -> str:
        return self.key.actor_id

    def desired_state(self, platform: str) -> JSONDict:
        return {
            "platform": platform,
            "partition": self.partition,
            "actor": self.actor,
            "scope": self.key.scope,
            "credentials_session": self.credentials_session,
            "sessions": dict(self.sessions),
            "rooms": dict(self.rooms),
            "extra": dict(self.extra),
        }

    @classmethod
    def from_state(cls, key: ConnectionKey, partition: int, state: JSONDict) -> Slot[C]:
        return cls(
            key=key,
            partition=partition,
            actor=dict(state.get("actor") or {"id": key.actor_id}),
            credentials_session=str(state.get("credentials_session", "")),
            sessions={str(k): str(v) for k, v in (state.get("sessions") or {}).items()},
            rooms={str(k): dict(v) for k, v in (state.get("rooms") or {}).items()},
            extra=dict(state.get("extra") or {}),
        )


class ConnectionPool(Generic[C]):
    """Slots by key and by (session, actor); fan-out; grace timers; desired-state writes."""

    def __init__(
        self,
        platform: str,
        emitter: Emitter,
        *,
        store: StateStore | None,
        grace: float,
        partitions: int,
        secret: Any = None,
        close: Callable[[Slot[C]], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.platform = platform
        self.emitter = emitter
        self.store = store
        self.grace = grace
        self.partitions = partitions
        # Without a server secret, equal credentials still hash alike within this process.
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._close = close
        self.slots: dict[ConnectionKey, Slot[C]] = {}
        self._attached: dict[tuple[str, str], ConnectionKey] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lookup -----------------------------------------------------------------------------

    def key_for(self, ctx: Context, credentials: JSONDict) -> ConnectionKey:
        return connection_key(
            self._secret, self.platform, ctx.actor_id, credentials, ctx.session_id
        )

    def partition_for(self, ctx: Context) -> int:
        if ctx.partition is not None:
            return ctx.partition
        return default_partition(ctx.actor_id, self.partitions)

    def find(self, session_id: str, actor_id: str) -> Slot[C] | None:
        key = self._attached.get((session_id, actor_id))
        return self.slots.get(key) if key is not None else None

    async def require(self, ctx: Context, *, wait: float = 60.0) -> tuple[Slot[C], C]:
        """The session's live connection for the actor, or the spec's uninitialized error."""
        slot = self.find(ctx.session_id, ctx.actor_id)
        if slot is None:
            raise uninitialized(ctx.request.verb)
        if not slot.ready.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await slot.ready.wait()
        if slot.closed or slot.connection is None:
            raise uninitialized(ctx.request.verb)
        return slot, slot.connection

    def sessions_of(self, session_id: str) -> list[Slot[C]]:
        return [self.slots[k] for (s, _), k in self._attached.items() if s == session_id]

    # -- membership -------------------------------------------------------------------------

    def add(self, slot: Slot[C]) -> None:
        self.slots[slot.key] = slot
        for session_id in slot.sessions:
            self._attached[(session_id, slot.actor_id)] = slot.key

    def attach(self, slot: Slot[C], session_id: str, reply_route: str) -> None:
        """Attach (moving the session off another connection of the same actor)."""
        old = self.find(session_id, slot.actor_id)
        if old is not None and old is not slot:
            self.detach(old, session_id)
            self.spawn(self.save(old))
        slot.sessions[session_id] = reply_route
        self._attached[(session_id, slot.actor_id)] = slot.key
        if slot.credentials_session not in slot.sessions:
            slot.credentials_session = session_id
        if slot.grace is not None:
            slot.grace.cancel()
            slot.grace = None

    def detach(self, slot: Slot[C], session_id: str) -> None:
        """Detach; a slot left without sessions closes after the grace period."""
        slot.sessions.pop(session_id, None)
        if self._attached.get((session_id, slot.actor_id)) == slot.key:
            del self._attached[(session_id, slot.actor_id)]
        if slot.credentials_session == session_id and slot.sessions:
            slot.credentials_session = next(iter(slot.sessions))
        if not slot.sessions and slot.grace is None and not slot.closed:
            loop = asyncio.get_running_loop()
            slot.grace = loop.call_later(self.grace, lambda: self.spawn(self._expire(slot)))

    async def _expire(self, slot: Slot[C]) -> None:
        slot.grace = None
        if slot.sessions or slot.closed:
            return
        log.info("persistent.grace.expired", platform=self.platform, actor=slot.actor_id)
        await self.discard(slot, forget=True)

    async def discard(self, slot: Slot[C], *, forget: bool) -> None:
        """Close and drop the slot; ``forget`` also tombstones its desired state (a closure on
        purpose, not a hand-over to another runner)."""
        if slot.closed:
            return
        slot.closed = True
        if slot.grace is not None:
            slot.grace.cancel()
            slot.grace = None
        if self.slots.get(slot.key) is slot:
            del self.slots[slot.key]
        for session_id in list(slot.sessions):
            if self._attached.get((session_id, slot.actor_id)) == slot.key:
                del self._attached[(session_id, slot.actor_id)]
        slot.ready.set()
        if self._close is not None:
            try:
                await self._close(slot)
            except Exception as exc:
                log.warning("persistent.close.failed", platform=self.platform, error=repr(exc))
        if forget:
            await self._write(slot.partition, slot.key, None)

    # -- desired state ------------------------------------------------------------------------

    async def save(self, slot: Slot[C]) -> None:
        if slot.closed:
            return
        await self._write(slot.partition, slot.key, slot.desired_state(self.platform))

    async def forget(self, partition: int, key: ConnectionKey) -> None:
        await self._write(partition, key, None)

    async def _write(self, partition: int, key: ConnectionKey, value: JSONDict | None) -> None:
        if self.store is None:
            return
        try:
            await self.store.put(partition, key.encode(), value)
        except Exception as exc:  # the live connection matters more than its record
            log.warning("persistent.state.write_failed", platform=self.platform, error=repr(exc))

    # -- events -------------------------------------------------------------------------------

    def broadcast(
        self,
        slot: Slot[C],
        activity: JSONDict,
        *,
        verb: str | None = None,
        error: str | None = None,
    ) -> int:
        """Send an unsolicited event to every attached session; returns how many got it."""
        sent = 0
        for session_id, route in list(slot.sessions.items()):
            body = copy.deepcopy(activity)
            if self.emitter.emit(session_id, body, verb=verb, error=error, reply_route=route):
                sent += 1
        return sent

    def error_event(self, slot: Slot[C], error: str) -> JSONDict:
        """The shape of the runner's crash notice: a platform actor, the connection's actor as
        target, and an ``error`` text."""
        return {
            "type": "error",
            "actor": {"id": self.platform, "type": "platform"},
            "target": copy.deepcopy(slot.actor),
            "error": error,
        }

    def broadcast_error(self, slot: Slot[C], error: str) -> int:
        return self.broadcast(slot, self.error_event(slot, error), verb="error", error=error)

    # -- tasks --------------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close_all(self, partitions: set[int] | None = None) -> None:
        """Close (without forgetting) every slot, or those of ``partitions``."""
        doomed = [s for s in self.slots.values() if partitions is None or s.partition in partitions]
        await asyncio.gather(*(self.discard(s, forget=False) for s in doomed))
        if partitions is None:
            for task in list(self._tasks):
                task.cancel()
