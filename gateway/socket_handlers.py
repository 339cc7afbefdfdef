"""The Socket.IO events of the Sockethub protocol (spec section 2).

Every result and error goes back through the event's acknowledgement (the
handler's return value); platform events go out as ``message`` events.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from gateway.address_cap import AddressCap
from gateway.client_address import ClientAddress, address_key, parse_networks
from gateway.kafka_bridge import REPLY_POSITION, DeliveryError, KafkaBridge
from gateway.limits import RATE_LIMITED, TOO_MANY_CONNECTIONS, RateLimiter, Verdict
from gateway.metrics import GatewayMetrics
from gateway.packets import Refused
from gateway.recovery import Entry, Recovery, RecoveryFailed, Restored
from gateway.requests import Reply, RequestTracker, send_answer
from gateway.sessions import Session, Sessions
from gateway.settings import GatewaySettings
from gateway.shaping import JSONDict, error_ack, error_event, result_ack
from gateway.transport.engineio_server import LeanSockethubServer
from gateway.transport.socketio_server import ACK_WANTED, FRAME_SIZE, SockethubServer
from gateway.validation import (
    ActivityError,
    ValidatedActivity,
    validate_activity_object,
    validate_credentials,
    validate_message,
)
from schemas.envelopes import SESSION_RESUMED, PlatformEvent, Request, RequestKind, Result
from schemas.platform_registry import PlatformRegistry, canonical_context
from schemas.topics import request_key
from sockethub.runtime.credentials import CredentialStore

if TYPE_CHECKING:
    from sockethub.runtime.otel import Tracing

log = structlog.get_logger("gateway.socket")
connection_log = structlog.get_logger("gateway.connection")

NOT_STORED = "Error: credentials could not be stored"
GATEWAY_ID_ACTOR = {"type": "service"}
PID: ContextVar[str | None] = ContextVar("pid", default=None)
"""While a CONNECT is handled: the pid its answer carried."""
ENDED_BY_CLIENT = frozenset({"client disconnect", "server disconnect"})
"""Disconnect reasons that end a session at once; after any other (a lost transport, a
ping timeout) it stays recoverable for the window."""
PARKED = "server shutting down"
"""The disconnect reason of the sessions a stopping gateway parks (:meth:`park_all`)."""
ADMITTED = "sockethub.admitted"
"""Environ key: the engine.io handshake's admission, ``(address, cap key, allowed)``."""
OFFSET_EVENT = "sockethub:offset"
"""Carries only a log position (see ``_acked``); clients have no handler for it."""
EXPIRE_ATTEMPTS = 4
"""Tries at ending a session whose window passed while Redis does not answer."""


def client_address(environ: dict[str, Any]) -> str:
    """The TCP peer's address from the ASGI scope (engine.io's REMOTE_ADDR is a
    placeholder); :class:`ClientAddress` looks behind trusted proxies."""
    return ClientAddress(()).from_environ(environ)


def frame_size(payload: object) -> int:
    """The bytes the event's frame took on the wire; measured again where the transport
    did not say (the length of its compact JSON text)."""
    size = FRAME_SIZE.get()
    if size is not None:
        return size
    try:
        return len(orjson.dumps(payload))
    except TypeError:  # orjson's refusals: too deep, or not JSON
        return sys.maxsize


class ProtocolHandlers:
    """The protocol's events for one :class:`SockethubServer`, over one Kafka bridge and
    one credential store."""

    def __init__(
        self,
        sio: SockethubServer,
        settings: GatewaySettings,
        registry: PlatformRegistry,
        bridge: KafkaBridge,
        store: CredentialStore,
        metrics: GatewayMetrics,
        cap: AddressCap | None = None,
        tracing: Tracing | None = None,
        *,
        recovery: Recovery | None = None,
    ) -> None:
        self._sio = sio
        self._recovery = recovery
        self._entries: dict[str, Entry] = {}
        """sid -> its recovery entry, while the session is open here."""
        self._restoring: dict[str, Restored] = {}
        """sid -> a claimed session whose CONNECT handler has not run yet."""
        self._holding: dict[str, list[tuple[str | None, PlatformEvent]]] = {}
        """sid -> live events that came while its replay was read."""
        self._replayed: dict[str, set[str]] = {}
        """sid -> positions delivered by its replay (the live reader may see them too)."""
        self._refresher: asyncio.Task[None] | None = None
        self._parking = False
        self._parked = 0
        """The gateway is stopping with recovery on: every session it loses is parked for
        another gateway (:meth:`park_all`), none ends."""
        self._no_ack: object = sio.not_handled
        """Returned by a handler to send no acknowledgement at all (a dropped event)."""
        self._settings = settings
        self._registry = registry
        self._bridge = bridge
        self._store = store
        self._metrics = metrics
        self.sessions = Sessions()
        self._requests = RequestTracker(bridge, metrics, settings.request_timeout, tracing)
        self._limiter = RateLimiter(
            settings.rate_limit, settings.rate_block_seconds, on_block=self._share_block
        )
        self._http_limiter = RateLimiter(
            settings.rate_limit, settings.rate_block_seconds, on_block=self._http_block
        )
        """HTTP actions count per client address (no session outlives a request)."""
        self._cap = cap or AddressCap(settings.max_connections_per_ip)
        self._client = ClientAddress(
            parse_networks(settings.trusted_proxies), settings.forwarded_header
        )
        self._handshakes: dict[str, str] = {}
        """engine.io sid -> cap key, for each handshake the cap counted."""
        if isinstance(sio, LeanSockethubServer):
            sio.set_admission(self)
        persistent = (registry.get(p) for p in registry.ids())
        self._persistent = frozenset(d.id for d in persistent if d is not None and d.persistent)
        sio.on("connect", self.connect)
        sio.on("disconnect", self.disconnect)
        sio.on("schemas", self.schemas)
        sio.on("credentials", self.credentials)
        sio.on_direct("message", self.message, self.message_ready)
        sio.on("activity-object", self.activity_object)
        sio.on_slow_reader(self.slow_reader)
        bridge.on_event(self.platform_event)
        if recovery is not None:
            sio.on_resume(self.resume)
            self._requests.on_acked = self._acked

    # -- connection lifecycle ------------------------------------------------

    async def _admission(self, environ: dict[str, Any]) -> tuple[str, str, bool]:
        """The client's address, the key the cap counts it under, and whether the cap
        admitted (and counted) it."""
        address = self._client.from_environ(environ)
        key = address_key(address)
        admission = await self._cap.acquire(key)
        if admission.blocked_for > 0:
            self._limiter.block_address(key, admission.blocked_for)
        return address, key, admission.allowed

    async def opened(self, eio_sid: str, environ: dict[str, Any]) -> None:
        """An engine.io handshake: counted by the cap now, before any Socket.IO CONNECT;
        a refused one is told so, in Sockethub's words, when its CONNECT comes."""
        admitted = await self._admission(environ)
        environ[ADMITTED] = admitted
        if admitted[2]:
            self._handshakes[eio_sid] = admitted[1]

    async def closed(self, eio_sid: str) -> None:
        key = self._handshakes.pop(eio_sid, None)
        if key is not None:
            await self._cap.release(key)

    async def connect(self, sid: str, environ: dict[str, Any], auth: object = None) -> bool:
        """``always_connect`` is on: the client is already connected when this runs,
        so the cap's ``error`` event reaches it before the disconnect."""
        # engine.io keeps the connect request's environ for the whole connection; its
        # "wsgi.input" wraps the handshake body in a class built per request. Nothing
        # reads it after the handshake.
        environ.pop("wsgi.input", None)
        admitted = environ.get(ADMITTED)
        owned = admitted is None  # no engine.io hook: the session holds its own count
        if admitted is None:
            admitted = await self._admission(environ)
        address, key, allowed = admitted
        restored = self._restoring.pop(sid, None)
        if not allowed:
            self._metrics.rejected.labels(reason="connection_cap").inc()
            log.warning("connection_refused_cap", address=address)
            await self._sio.emit("error", error_event(TOO_MANY_CONNECTIONS), to=sid)
            if restored is not None:
                self._abandon(restored.entry)
            return False
        session = self.sessions.open(sid, address)
        session.cap_key, session.owns_count = key, owned
        self._limiter.opened(sid, key)
        self._metrics.session_opened()
        log.info("session_connected", session_id=sid, address=address, recovered=bool(restored))
        if restored is not None:
            await self._restore(session, restored)
        elif self._recovery is not None and PID.get() is not None:
            session.pid = PID.get()
            self._requests.spawn(self._index_new(session))
        return True

    # -- connection state recovery (gateway.recovery) -------------------------------

    async def resume(self, auth: object) -> tuple[str | None, str]:
        """A CONNECT's auth: the sid of the session it recovers, if any, and its pid."""
        assert self._recovery is not None
        pid = auth.get("pid") if isinstance(auth, dict) else None
        if isinstance(pid, str) and 0 < len(pid) <= 64:
            assert isinstance(auth, dict)
            try:
                restored = await self._recovery.claim(
                    pid, auth.get("offset"), self._busy, self._hold
                )
            except RecoveryFailed as failed:
                self._metrics.sessions_recovered.labels(outcome="failed").inc()
                self._abandon(failed.entry)
                restored = None
            except Exception as exc:  # Redis down: a fresh session, as past the window
                self._metrics.sessions_recovered.labels(outcome="failed").inc()
                log.warning("session_recovery_failed", error=repr(exc))
                restored = None
            else:
                outcome = "expired" if restored is None else "recovered"
                self._metrics.sessions_recovered.labels(outcome=outcome).inc()
            if restored is not None:
                self._restoring[restored.entry.sid] = restored
                PID.set(pid)
                return restored.entry.sid, pid
        fresh = self._recovery.new_pid()
        PID.set(fresh)
        return None, fresh

    def _busy(self, sid: str) -> bool:
        return self.sessions.get(sid) is not None or sid in self._holding

    def _hold(self, sid: str) -> None:
        self._holding[sid] = []

    def _abandon(self, entry: Entry) -> None:
        """A claimed session that is not restored after all: ended as at its window's end."""
        self._holding.pop(entry.sid, None)
        session = Session(entry.sid, "")
        session.used.update(entry.used)
        self._requests.spawn(self._end_session(session))

    async def _restore(self, session: Session, restored: Restored) -> None:
        """Attach the recovered state, then send what the client missed, then what came
        live meanwhile; each ``message`` once, in log order."""
        assert self._recovery is not None
        entry = restored.entry
        session.pid = restored.pid
        session.used.update(entry.used)
        session.dialect = entry.dialect  # type: ignore[assignment]
        self._entries[session.sid] = entry
        self._requests.spawn(self._index_put(session.pid, entry))
        # Its credentials may have been set to expire with a parked entry (park_all).
        self._requests.spawn(self._quietly(self._store.expire_session(session.sid)))
        self._start_refresher()
        replayed = self._replayed.setdefault(session.sid, set())
        count = 0
        for at, record in restored.missed:
            if isinstance(record, Result) and record.verb == SESSION_RESUMED:
                continue
            replayed.add(at)
            count += 1
            await self._push(session, record, at)
        held = self._holding.pop(session.sid, [])
        for live_at, event in held:
            if live_at is None or live_at not in replayed:
                await self._push(session, event, live_at)
        log.info("session_recovered", session_id=session.sid, missed=count, live=len(held))

    async def _push(self, session: Session, record: PlatformEvent | Result, at: str | None) -> None:
        activity = record.activity
        if record.error is not None and "error" not in activity:
            activity = {**activity, "error": record.error}
        self._metrics.activity(record.platform, "out", "event")
        payload = result_ack(activity, record.platform, session.dialect)
        if at is None or session.pid is None:
            await self._sio.emit_now(session.sid, "message", payload)
        else:
            await self._sio.emit_now(session.sid, "message", payload, at)

    async def _index_new(self, session: Session) -> None:
        assert self._recovery is not None and session.pid is not None
        try:
            entry = Entry(session.sid, [await self._recovery.segment()])
        except Exception as exc:
            log.warning("recovery_index_failed", session_id=session.sid, error=repr(exc))
            return
        if session.closed:
            return
        entry.used = sorted(session.used)
        entry.dialect = session.dialect
        self._entries[session.sid] = entry
        self._start_refresher()
        await self._index_put(session.pid, entry)

    async def _index_put(self, pid: str, entry: Entry, ttl: int | None = None) -> None:
        assert self._recovery is not None
        try:
            await self._recovery.index.put(pid, entry, ttl)
        except Exception as exc:
            log.warning("recovery_index_failed", session_id=entry.sid, error=repr(exc))

    def _remember_used(self, session: Session) -> None:
        """The session used a new (platform, key): a recovery must tell those runners."""
        entry = self._entries.get(session.sid)
        if entry is None or session.pid is None:
            return
        entry.used, entry.dialect = sorted(session.used), session.dialect
        self._requests.spawn(self._index_put(session.pid, entry))

    async def _acked(self, session: Session) -> None:
        """Socket.IO clients take the last argument of any event as their offset, and acks
        carry none: this event after each ack moves the client's offset past the result,
        so a recovery replays only results whose acks the client never got. One
        connection keeps packets in order, so an offset past the result means the ack
        came first."""
        at = REPLY_POSITION.get()
        if session.pid is not None and at is not None:
            # Queued at once behind the ack (emit_now), so both leave in one write batch.
            await self._sio.emit_now(session.sid, OFFSET_EVENT, at)

    @staticmethod
    async def _quietly(work: Any) -> None:
        try:
            await work
        except Exception as exc:
            log.warning("recovery_index_failed", error=repr(exc))

    def _start_refresher(self) -> None:
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(self._refresh(), name="recovery-refresh")

    async def _refresh(self) -> None:
        """Keep open sessions' entries alive (they expire a window after a gateway dies)."""
        assert self._recovery is not None
        while True:
            await asyncio.sleep(self._recovery.index.refresh_s)
            pids = [s.pid for sid in list(self._entries) if (s := self.sessions.get(sid)) and s.pid]
            if pids:
                await self._quietly(self._recovery.index.refresh(pids))

    async def _expire(self, session: Session, epoch: str) -> None:
        """The window has passed: unless the session was recovered meanwhile, it ends."""
        assert self._recovery is not None and session.pid is not None
        for attempt in range(EXPIRE_ATTEMPTS):
            try:
                taken = await self._recovery.index.take(session.pid, epoch)
            except Exception as exc:
                log.warning("recovery_index_failed", session_id=session.sid, error=repr(exc))
                await asyncio.sleep(1.0 + attempt)
                continue
            if taken is None:
                return  # claimed by a reconnect (here or on another gateway)
            break
        # Redis unreachable throughout: no gateway could claim the session either, and
        # leaving it would hold its credentials and connections, so it ends.
        log.info("session_recovery_expired", session_id=session.sid)
        await self._end_session(session)

    async def disconnect(self, sid: str, reason: object = None) -> None:
        session = self.sessions.close(sid)
        if session is None:
            return
        if session.owns_count:
            await self._cap.release(session.cap_key)
        self._limiter.forget(sid)
        self._metrics.session_closed()
        log.info("session_disconnected", session_id=sid, reason=str(reason))
        for request in session.requests:
            request.drop()
        self._replayed.pop(sid, None)
        entry = self._entries.pop(sid, None)
        if entry is not None and session.pid is not None and self._recovery is not None:
            if self._parking and str(reason) != "client disconnect":
                self._parked += 1
                self._requests.spawn(self._park(session.sid, session.pid, entry))
                return
            if str(reason) not in ENDED_BY_CLIENT:
                # Recoverable for the window: nothing ends yet (credentials, runners' state).
                window = self._recovery.window
                # The entry outlives the timer below, so that the timer, not Redis' expiry,
                # decides; a late timer on a busy loop must still find the entry to end.
                ttl = self._recovery.index.parked_ttl
                self._requests.spawn(self._index_put(session.pid, entry, ttl))
                epoch = entry.epoch
                asyncio.get_running_loop().call_later(
                    window, lambda: self._requests.spawn(self._expire(session, epoch))
                )
                return
            self._requests.spawn(self._quietly(self._recovery.index.take(session.pid)))
        self._requests.spawn(self._end_session(session))

    async def _end_session(self, session: Session, grace: int | None = None) -> None:
        for platform, key in sorted(session.used):
            request = Request(
                session_id=session.sid,
                reply_route=self._bridge.reply_topic,
                platform=platform,
                verb="session_closed",
                activity={
                    "@context": canonical_context(platform),
                    "type": "session_closed",
                    "actor": {"id": session.sid, **GATEWAY_ID_ACTOR},
                },
                kind=RequestKind.SESSION_CLOSED,
            )
            try:
                await self._bridge.produce(self._bridge.layout.requests(platform), request, key)
            except DeliveryError:
                log.warning("session_closed_not_sent", session_id=session.sid, platform=platform)
        try:
            await self._store.end_session(
                session.sid,
                self._settings.session_grace if grace is None else grace,
                keep_platforms=self._persistent,
            )
        except Exception as exc:
            log.warning("credentials_cleanup_failed", session_id=session.sid, error=str(exc))

    async def park_all(self, transports: Callable[[], Awaitable[None]], wait: float) -> None:
        """The gateway stops with recovery on: park every session as a lost transport
        would, for its client to recover on another gateway, and close the transports.

        Acknowledgements stop first, and those under way are waited for (``wait`` seconds
        at most): each result is then either acknowledged before its transport closes or
        left unmarked in the log, so the recovering gateway delivers it, once.
        ``transports()`` closes the connections without a Socket.IO DISCONNECT packet
        (a client that gets one does not reconnect); each close parks its session here.
        No window timer is armed (this process will not run it): past the window the
        runners release the sessions' connections as after a kill, and the credentials
        expire with the index entry."""
        assert self._recovery is not None
        self._parking = True
        await self._requests.hold_acks(wait)
        try:
            await transports()
        except Exception as exc:
            log.warning("transports_not_closed", error=repr(exc))
        for sid in self.sessions.sids():  # a transport that did not report its close
            await self.disconnect(sid, PARKED)
        log.info("sessions_parked", count=self._parked)

    async def _park(self, sid: str, pid: str, entry: Entry) -> None:
        assert self._recovery is not None
        ttl = self._recovery.index.stopped_ttl
        await self._index_put(pid, entry, ttl)
        try:
            await self._store.expire_session(sid, ttl)
        except Exception as exc:
            log.warning("credentials_expiry_not_set", session_id=sid, error=type(exc).__name__)

    async def close(self) -> None:
        """Finish session clean-ups and answers that are under way (on shutdown)."""
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        await self._requests.close()

    def slow_reader(self, sid: str, limit: int) -> None:
        """A session's outgoing queue overflowed; the transport disconnects it next."""
        self._metrics.slow_readers.inc()
        connection_log.warning(
            "slow_reader",
            session_id=sid,
            limit=limit,
            setting="SOCKETHUB_MAX_OUTBOUND_BYTES",
            action="disconnected",
        )

    # -- admission -----------------------------------------------------------

    async def _admit(self, sid: str) -> Session | None:
        """The session, if this event may proceed under the rate limit."""
        session = self.sessions.get(sid)
        if session is None:
            return None
        verdict = self._limiter.check(sid, session.cap_key)
        if verdict is Verdict.ALLOW:
            return session
        self._metrics.rejected.labels(reason="rate_limit").inc()
        if verdict is Verdict.BLOCK:
            log.warning("session_rate_limited", session_id=sid)
            await self._sio.emit("error", error_event(RATE_LIMITED), to=sid)
        return None

    def _share_block(self, key: str, seconds: float) -> None:
        self._requests.spawn(self._cap.share_block(key, seconds))

    def _http_block(self, key: str, seconds: float) -> None:
        self._limiter.block_address(key, seconds)  # the address's new Socket.IO sessions too
        self._share_block(key, seconds)

    def _over_inflight(self, session: Session) -> bool:
        if session.inflight < self._settings.max_inflight_per_session:
            return False
        self._metrics.rejected.labels(reason="inflight").inc()
        return True

    def _inflight_error(self) -> str:
        limit = self._settings.max_inflight_per_session
        return f"Error: too many requests in flight for this session (limit {limit})"

    def _over_inflight_bytes(self, session: Session, size: int) -> bool:
        if session.inflight_bytes + size <= self._settings.max_inflight_bytes_per_session:
            return False
        self._metrics.rejected.labels(reason="inflight_bytes").inc()
        return True

    def _inflight_bytes_error(self) -> str:
        limit = self._settings.max_inflight_bytes_per_session
        return (
            f"Error: too many bytes in flight for this session "
            f"(limit {limit}, SOCKETHUB_MAX_INFLIGHT_BYTES_PER_SESSION)"
        )

    def _refusal(self, args: tuple[object, ...] | list[Any]) -> JSONDict | None:
        """The error ack for an event whose payload the packet layer refused, if it did."""
        for arg in args:
            if isinstance(arg, Refused):
                self._metrics.rejected.labels(reason="payload_limit").inc()
                log.info("payload_refused", reason=arg.reason)
                return {"error": arg.reason}
        return None

    # -- events ----------------------------------------------------------------

    async def schemas(self, sid: str, *args: object) -> object:
        if await self._admit(sid) is None:
            return self._no_ack
        refusal = self._refusal(args)
        if refusal is not None:
            return refusal
        if ACK_WANTED.get():
            return self._registry.schemas_ack(args[0] if args else None)
        await self._sio.emit("schemas", self._registry.payload(), to=sid)
        return None

    async def activity_object(self, sid: str, payload: object = None, *_: object) -> object:
        session = await self._admit(sid)
        if session is None:
            return self._no_ack
        if isinstance(payload, Refused):
            self._refusal([payload])  # counted and logged
            return error_ack(None, payload.reason, "g2")
        size = frame_size(payload)
        limit = self._settings.max_object_bytes
        if size > limit:  # a frame the packet layer did not measure (binary attachments)
            self._metrics.rejected.labels(reason="payload_limit").inc()
            text = f"Error: activity-object larger than {limit} bytes (SOCKETHUB_MAX_OBJECT_BYTES)"
            return error_ack(None, text, "g2")
        async with session.lock:  # later messages of the session may name this object
            try:
                obj = validate_activity_object(payload)
            except ActivityError as err:
                return error_ack(payload, err.message, "g2")
            budget = self._settings.max_session_object_bytes
            if not session.remember_object(obj, size, budget):
                self._metrics.rejected.labels(reason="object_budget").inc()
                text = (
                    f"Error: this session's activity-objects would exceed {budget} bytes "
                    "(SOCKETHUB_MAX_SESSION_OBJECT_BYTES)"
                )
                return error_ack(None, text, "g2")
            return obj

    async def credentials(self, sid: str, payload: object = None, *_: object) -> object:
        session = await self._admit(sid)
        if session is None:
            return self._no_ack
        refusal = self._refusal([payload])
        if refusal is not None:
            return refusal
        if self._over_inflight(session):
            return error_ack(payload, self._inflight_error())
        session.inflight += 1
        try:
            async with session.lock:
                if session.closed:  # nobody to answer, and its credentials were cleared
                    return self._no_ack
                return await self._store_credentials(session, payload)
        finally:
            session.inflight -= 1

    async def _store_credentials(self, session: Session, payload: object) -> JSONDict:
        try:
            valid = validate_credentials(
                payload, self._registry, lookup_object=session.lookup_object
            )
        except ActivityError as err:
            self._metrics.activity("unknown", "in", "invalid")
            return error_ack(payload, err.message)
        session.dialect = valid.dialect
        actor = valid.activity["actor"]
        try:
            await self._store.put(session.sid, valid.platform, str(actor["id"]), valid.activity)
        except Exception as exc:
            log.error("credentials_store_failed", session_id=session.sid, error=type(exc).__name__)
            self._metrics.activity(valid.platform, "in", "error")
            return error_ack(payload, NOT_STORED, valid.dialect)
        persistent = valid.platform in self._persistent
        pair = (valid.platform, request_key(session.sid, valid.activity, persistent=persistent))
        if pair not in session.used:
            session.used.add(pair)
            self._remember_used(session)
        self._metrics.activity(valid.platform, "in", "credentials")
        log.info(
            "credentials_set", session_id=session.sid, platform=valid.platform, actor=actor["id"]
        )
        await self._audit_credentials(session, valid)
        return result_ack(valid.activity, valid.platform, valid.dialect)

    async def _audit_credentials(self, session: Session, valid: ValidatedActivity) -> None:
        """Who set credentials for which platform, and when; never the secret."""
        actor = valid.activity["actor"]
        redacted = {
            "@context": valid.activity["@context"],
            "type": "credentials",
            "actor": {k: actor[k] for k in ("id", "type", "name") if k in actor},
            "object": {"type": "credentials"},
        }
        record = Request(
            session_id=session.sid,
            reply_route=self._bridge.reply_topic,
            platform=valid.platform,
            verb="credentials",
            activity=redacted,
            correlation_id=valid.correlation_id,
            kind=RequestKind.CREDENTIALS,
        )
        try:
            await self._bridge.produce(self._bridge.layout.audit(), record, session.sid)
        except DeliveryError:
            log.warning("credentials_audit_not_sent", session_id=session.sid)

    def message_ready(self, sid: str) -> bool:
        """True if a ``message`` of ``sid`` may run in the connection's reader now: no
        earlier event of the session holds or waits for its lock."""
        session = self.sessions.get(sid)
        return session is None or session.idle

    async def message(self, sid: str, args: list[Any], reply: Reply | None) -> None:
        """The ``message`` event: validate, produce, and answer through ``reply`` once the
        request's result, timeout or delivery failure comes (:mod:`gateway.requests`).

        Run by :class:`SockethubServer` in the connection's reader, or in a task when an
        earlier event of the session is still on its way to the session lock.
        """
        payload = args[0] if args else None
        try:
            session = await self._admit(sid)
            if session is None:
                return
            refused = self._refusal(args)
            if refused is not None:
                await send_answer(reply, refused)
                return
            if self._over_inflight(session):
                self._metrics.activity("unknown", "in", "limited")
                await send_answer(reply, error_ack(payload, self._inflight_error()))
                return
            size = frame_size(payload)
            if self._over_inflight_bytes(session, size):
                self._metrics.activity("unknown", "in", "limited")
                await send_answer(reply, error_ack(payload, self._inflight_bytes_error()))
                return
            session.inflight += 1
            session.inflight_bytes += size
            refusal = await self._submit(session, payload, reply, size)
            if refusal is not None:
                await send_answer(reply, refusal)
        except Exception:
            log.exception("message_failed", session_id=sid)

    async def _submit(
        self,
        session: Session,
        payload: object,
        reply: Reply | None,
        size: int,
        activity_id: str | None = None,
    ) -> JSONDict | None:
        """Produce the message's request: None once it is on its way, or the answer that
        refuses it. Holds the session's in-flight slot and ``size`` in-flight bytes, which
        the request takes over."""
        async with session.lock:
            try:
                prepared = None if session.closed else self._prepare(session, payload, activity_id)
            except BaseException:
                session.inflight -= 1
                session.inflight_bytes -= size
                raise
            if prepared is None or isinstance(prepared, dict):
                session.inflight -= 1
                session.inflight_bytes -= size
                return prepared
            valid, request, key = prepared
            refusal = await self._requests.submit(
                session, request, key, payload, valid.dialect, reply, size
            )
            if refusal is None and (valid.platform, key) not in session.used:
                session.used.add((valid.platform, key))
                self._remember_used(session)
            return refusal

    def _prepare(
        self, session: Session, payload: object, activity_id: str | None = None
    ) -> tuple[ValidatedActivity, Request, str] | JSONDict:
        """The validated activity, its request and partition key, or the error ack."""
        try:
            valid = validate_message(payload, self._registry, lookup_object=session.lookup_object)
        except ActivityError as err:
            self._metrics.activity("unknown", "in", "invalid")
            return error_ack(payload, err.message)
        session.dialect = valid.dialect
        request = Request(
            session_id=session.sid,
            reply_route=self._bridge.reply_topic,
            platform=valid.platform,
            verb=valid.verb,
            activity=valid.activity,
            correlation_id=valid.correlation_id,
        )
        if activity_id is not None:  # an HTTP action's: the same on each retry
            request = dataclasses.replace(request, activity_id=activity_id)
        key = request_key(
            session.sid, valid.activity, persistent=valid.platform in self._persistent
        )
        return valid, request, key

    async def platform_event(self, event: PlatformEvent) -> None:
        at = REPLY_POSITION.get()
        held = self._holding.get(event.session_id)
        if held is not None:  # its replay is being read: after it
            held.append((at, event))
            return
        session = self.sessions.get(event.session_id)
        if session is None:
            log.info("platform_event_for_gone_session", session_id=event.session_id)
            return
        replayed = self._replayed.get(event.session_id)
        if replayed is not None and at in replayed:
            return
        await self._push(session, event, at)

    # -- HTTP actions (gateway.http_actions) -------------------------------------------

    async def http_admit(self, address: str, events: int = 1) -> tuple[bool, float]:
        """Charge ``events`` to the client address's rate window: (allowed, seconds of
        block left). A block learnt from Socket.IO sessions or other gateways holds too."""
        key = address_key(address)
        for _ in range(events):
            if self._limiter.address_blocked_for(key) > 0:
                break
            if self._http_limiter.check(key, key) is not Verdict.ALLOW:
                break
        else:
            return True, 0.0
        self._metrics.rejected.labels(reason="rate_limit").inc()
        left = max(
            self._limiter.address_blocked_for(key), self._http_limiter.address_blocked_for(key)
        )
        return False, left

    async def http_open(self, address: str) -> tuple[str, bool]:
        """Count one HTTP actions request under the connection cap: (cap key, admitted)."""
        key = address_key(address)
        admission = await self._cap.acquire(key)
        if admission.blocked_for > 0:
            self._limiter.block_address(key, admission.blocked_for)
            self._http_limiter.block_address(key, admission.blocked_for)
        if not admission.allowed:
            self._metrics.rejected.labels(reason="connection_cap").inc()
        return key, admission.allowed

    async def http_close(self, key: str, session: Session | None) -> None:
        """The request is over: its cap count, credentials and runner state go (no grace:
        nothing reconnects to an HTTP request)."""
        await self._cap.release(key)
        self._http_limiter.prune()
        if session is not None:
            session.closed = True
            for request in session.requests:
                request.drop()
            await self._end_session(session, grace=0)

    async def http_credentials(self, session: Session, payload: object) -> JSONDict:
        """A ``credentials`` payload of an HTTP request: stored exactly as the event's."""
        async with session.lock:
            return await self._store_credentials(session, payload)

    async def http_message(
        self, session: Session, payload: object, reply: Reply, activity_id: str
    ) -> None:
        """A message of an HTTP request, produced as the ``message`` event's with the
        request's deterministic ``activity_id``; answered through ``reply``, once."""
        if self._over_inflight(session):
            self._metrics.activity("unknown", "in", "limited")
            await reply(error_ack(payload, self._inflight_error()))
            return
        size = frame_size(payload)
        if self._over_inflight_bytes(session, size):
            self._metrics.activity("unknown", "in", "limited")
            await reply(error_ack(payload, self._inflight_bytes_error()))
            return
        session.inflight += 1
        session.inflight_bytes += size
        refusal = await self._submit(session, payload, reply, size, activity_id)
        if refusal is not None:
            await reply(refusal)
