"""A base class for persistent platforms: connect, disconnect, session ends, hand-overs.

Subclasses (IRC, XMPP) implement :meth:`PersistentPlatform.open_connection`,
:meth:`~PersistentPlatform.close_connection` and usually
:meth:`~PersistentPlatform.restore_rooms`, and use ``await self.pool.require(ctx)``
in their other verbs. This class does the rest:

- ``connect`` reads the session's credentials, finds or opens the connection
  for its key, attaches the session and records the desired state;
- ``disconnect`` detaches the session (the connection closes when it was the last);
- a session end detaches it everywhere (the connection closes after the grace);
- on partition assignment it reads the desired state of those partitions and
  re-establishes each connection (and its rooms) with the credentials in
  Redis, then tells the attached sessions: a ``connect`` event with a note, or
  an ``error`` event when that failed;
- on revocation or shutdown it closes the connections without forgetting them;
- every ``orphan_check_interval`` seconds it detaches the sessions whose gateway died
  without a ``session_closed`` (:mod:`platform_runners.orphans`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Generic

import structlog
from redis.asyncio import Redis

from platform_runners.orphans import OrphanJudge
from platform_runners.persistent import (
    C,
    ConnectionKey,
    ConnectionPool,
    Slot,
    uninitialized,
)
from platform_runners.persistent_state import KafkaStateStore, StateStore
from platform_runners.platform import (
    Context,
    CredentialLookup,
    Emitter,
    Handler,
    Platform,
    PlatformError,
    describe,
)
from platform_runners.settings import PersistentSettings, RunnerSettings
from schemas.envelopes import JSONDict
from schemas.platform_registry import PlatformDescriptor
from sockethub.runtime.credentials import CredentialStore
from sockethub.runtime.liveness import read_heartbeats

log = structlog.get_logger("platform_runners.persistent_platform")

RESTORED_NOTE = "connection re-established by another runner"

HeartbeatReader = Callable[[Sequence[str]], Awaitable[Mapping[str, str | None]]]
"""Reply routes -> their gateway's incarnation, None where the liveness key is missing."""


class PersistentPlatform(Platform, Generic[C]):
    """Connection pooling, desired state and restoration for a persistent platform."""

    def __init__(
        self,
        settings: RunnerSettings,
        descriptor: PlatformDescriptor,
        emitter: Emitter,
        *,
        store: StateStore | None = None,
        credentials: CredentialLookup | None = None,
        options: PersistentSettings | None = None,
        heartbeats: HeartbeatReader | None = None,
    ) -> None:
        super().__init__(settings, descriptor, emitter)
        self.options = options or settings.persistent
        self.store: StateStore = store or KafkaStateStore(settings, descriptor.id)
        self.credential_lookup = credentials
        self._redis: Redis | None = None
        self._heartbeats = heartbeats
        # A session of a dead gateway may be recovered by another one within the recovery
        # window (its client reconnects): its connections ride through until then.
        self.orphans = OrphanJudge(
            confirm=2 * settings.heartbeat_interval + settings.recovery_window
        )
        self._watch: asyncio.Task[None] | None = None
        self.pool: ConnectionPool[C] = ConnectionPool(
            descriptor.id,
            emitter,
            store=self.store,
            grace=self.options.connection_grace,
            partitions=settings.request_partitions,
            secret=settings.secret,
            close=self._close_slot,
        )
        self._loading: dict[int, asyncio.Event] = {}

    # -- what subclasses implement ----------------------------------------------------------

    @abstractmethod
    async def open_connection(self, slot: Slot[C], credentials: JSONDict) -> C:
        """Connect and log in; raise PlatformError with a client-facing text on failure."""

    @abstractmethod
    async def close_connection(self, slot: Slot[C], connection: C) -> None:
        """Log out and close."""

    async def restore_rooms(self, slot: Slot[C], connection: C) -> None:
        """Re-join ``slot.rooms`` after a restoration."""

    @abstractmethod
    def verb_handlers(self) -> Mapping[str, Handler]:
        """Handlers of the verbs other than ``connect`` and ``disconnect``."""

    def handlers(self) -> Mapping[str, Handler]:
        return {"connect": self.connect, "disconnect": self.disconnect, **self.verb_handlers()}

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self.credential_lookup is None and self.settings.secret is not None:
            self._redis = Redis.from_url(self.settings.redis_url)
            self.credential_lookup = CredentialStore(
                self._redis, self.settings.secret, prefix=self.settings.topic_prefix
            )
        await self.store.start()
        if self.options.orphan_check_interval > 0:
            if self._heartbeats is None:
                if self._redis is None:
                    self._redis = Redis.from_url(self.settings.redis_url)
                redis, prefix = self._redis, self.settings.topic_prefix
                self._heartbeats = lambda routes: read_heartbeats(redis, prefix, routes)
            self._watch = asyncio.create_task(self._watch_orphans(), name="orphan-watch")

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
            self._watch = None
        await self.pool.close_all()
        await self.store.stop()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()

    async def _close_slot(self, slot: Slot[C]) -> None:
        connection, slot.connection = slot.connection, None
        if connection is not None:
            await self.close_connection(slot, connection)

    # -- connect / disconnect -----------------------------------------------------------------

    async def _await_loading(self, ctx: Context) -> None:
        """Requests wait while their partition's desired state is being read."""
        events = (
            [self._loading[ctx.partition]]
            if ctx.partition in self._loading
            else list(self._loading.values())
            if ctx.partition is None
            else []
        )
        for event in events:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.restore_wait):
                    await event.wait()

    async def require(self, ctx: Context) -> tuple[Slot[C], C]:
        await self._await_loading(ctx)
        return await self.pool.require(ctx, wait=self.options.restore_wait)

    async def connect(self, ctx: Context) -> JSONDict | None:
        await self._await_loading(ctx)
        credentials = await ctx.credentials()
        key = self.pool.key_for(ctx, credentials)
        while True:
            slot = self.pool.slots.get(key)
            if slot is None:
                actor = copy.deepcopy(ctx.activity.get("actor") or {"id": ctx.actor_id})
                slot = Slot(key, self.pool.partition_for(ctx), actor, ctx.session_id)
                self.pool.add(slot)
            async with slot.lock:
                if slot.closed:
                    continue  # closed meanwhile (a failed attempt of another session): anew
                if slot.connection is None:
                    await self._establish(slot, credentials)
                self.pool.attach(slot, ctx.session_id, ctx.request.reply_route)
                await self.pool.save(slot)
                return await self.connected(ctx, slot)

    async def _establish(self, slot: Slot[C], credentials: JSONDict) -> None:
        slot.ready.clear()
        try:
            slot.connection = await self.open_connection(slot, credentials)
        except BaseException:
            await self.pool.discard(slot, forget=False)
            raise
        finally:
            slot.ready.set()

    async def connected(self, ctx: Context, slot: Slot[C]) -> JSONDict | None:
        """The ``connect`` result (default: the request itself)."""
        return None

    async def disconnect(self, ctx: Context) -> JSONDict | None:
        await self._await_loading(ctx)
        slot = self.pool.find(ctx.session_id, ctx.actor_id)
        if slot is None:
            return None  # already disconnected: nothing to do
        self.pool.detach(slot, ctx.session_id)
        if slot.sessions:
            await self.pool.save(slot)
        else:
            await self.pool.discard(slot, forget=True)
        return None

    async def session_closed(self, session_id: str) -> None:
        for slot in self.pool.sessions_of(session_id):
            self.pool.detach(slot, session_id)
            await self.pool.save(slot)

    async def session_resumed(self, session_id: str, reply_route: str) -> None:
        for slot in self.pool.sessions_of(session_id):
            self.pool.attach(slot, session_id, reply_route)
            await self.pool.save(slot)

    # -- orphans ------------------------------------------------------------------------------

    async def _watch_orphans(self) -> None:
        while True:
            await asyncio.sleep(self.options.orphan_check_interval)
            try:
                await self.release_orphans()
            except Exception as exc:  # the watch must outlive any one check
                log.error("persistent.orphans.check_failed", error=repr(exc))

    async def release_orphans(self) -> int:
        """One check: detach the sessions whose gateway is gone; returns how many."""
        assert self._heartbeats is not None
        held = {
            (session_id, route)
            for slot in self.pool.slots.values()
            if not slot.closed
            for session_id, route in slot.sessions.items()
        }
        beats: Mapping[str, str | None] = {}
        if held:
            try:
                async with asyncio.timeout(max(1.0, self.options.orphan_check_interval)):
                    beats = await self._heartbeats(sorted({route for _, route in held}))
            except Exception as exc:
                log.warning("persistent.orphans.unreadable", error=type(exc).__name__)
                self.orphans.read_failed()
                return 0
        released = 0
        for session_id, route in sorted(self.orphans.judge(held, beats, time.monotonic())):
            for slot in self.pool.sessions_of(session_id):
                # Judged on a snapshot: a session attached anew meanwhile keeps its connection.
                if slot.sessions.get(session_id) != route:
                    continue
                log.info(
                    "persistent.orphan.released",
                    platform=self.descriptor.id,
                    session_id=session_id,
                    actor=slot.actor_id,
                )
                self.pool.detach(slot, session_id)
                if self.settings.recovery_window > 0 and not slot.sessions:
                    # The window was the grace: nothing can come back for this session now.
                    await self.pool.discard(slot, forget=True)
                else:
                    await self.pool.save(slot)
                released += 1
        return released

    # -- hand-over ----------------------------------------------------------------------------

    async def partitions_assigned(self, partitions: set[int]) -> None:
        fresh = {p for p in partitions if p not in self._loading}
        if not fresh:
            return
        done = asyncio.Event()
        for p in fresh:
            self._loading[p] = done
        self.pool.spawn(self._restore_partitions(fresh, done))

    async def partitions_revoked(self, partitions: set[int]) -> None:
        for p in partitions:
            self._loading.pop(p, None)
        await self.pool.close_all(partitions)

    async def _restore_partitions(self, partitions: set[int], done: asyncio.Event) -> None:
        try:
            records = await self.store.load(partitions)
        except Exception as exc:
            log.error(
                "persistent.restore.load_failed", platform=self.descriptor.id, error=repr(exc)
            )
            records = {}
        restoring: list[Slot[C]] = []
        for raw_key, state in records.items():
            partition = int(state.get("partition", -1))
            try:
                key = ConnectionKey.decode(raw_key)
            except ValueError:
                continue
            if key in self.pool.slots:
                continue
            if not state.get("sessions"):  # it was in its grace period: let it go
                await self.pool.forget(partition, key)
                continue
            slot: Slot[C] = Slot.from_state(key, partition, state)
            slot.ready.clear()
            self.pool.add(slot)
            restoring.append(slot)
        for p in partitions:
            if self._loading.get(p) is done:
                del self._loading[p]
        done.set()
        await asyncio.gather(*(self._restore(slot) for slot in restoring))

    async def _restore(self, slot: Slot[C]) -> None:
        async with slot.lock:
            try:
                credentials = await self._stored_credentials(slot)
                if credentials is None:
                    raise PlatformError(
                        f"credentials not found for {self.descriptor.id}:{slot.actor_id}"
                    )
                slot.connection = await self.open_connection(slot, credentials)
                await self.restore_rooms(slot, slot.connection)
            except Exception as exc:
                error = f"connection could not be re-established: {describe(exc)}"
                log.warning("persistent.restore.failed", actor=slot.actor_id, error=error)
                self.pool.broadcast_error(slot, f"Error: {error}")
                await self.pool.discard(slot, forget=True)
                return
            finally:
                slot.ready.set()
            await self.pool.save(slot)
        log.info("persistent.restored", platform=self.descriptor.id, actor=slot.actor_id)
        self.pool.broadcast(slot, self.restored_event(slot), verb="connect")

    async def _stored_credentials(self, slot: Slot[C]) -> JSONDict | None:
        """The recorded session's credentials, else those of another attached session."""
        if self.credential_lookup is None:
            return None
        order = [
            slot.credentials_session,
            *(s for s in slot.sessions if s != slot.credentials_session),
        ]
        for session_id in order:
            try:
                found = await self.credential_lookup.get(
                    session_id, self.descriptor.id, slot.actor_id
                )
            except Exception as exc:
                log.warning("persistent.restore.credentials_unreadable", error=type(exc).__name__)
                continue
            if found is not None:
                slot.credentials_session = session_id
                return found
        return None

    def restored_event(self, slot: Slot[C]) -> JSONDict:
        return {
            "type": "connect",
            "actor": copy.deepcopy(slot.actor),
            "object": {"type": "note", "content": RESTORED_NOTE},
        }


__all__ = ["PersistentPlatform", "PersistentSettings", "uninitialized"]
